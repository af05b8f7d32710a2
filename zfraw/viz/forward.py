"""Net-backed callables for the analyses that are written against plain functions
(occlusion, invariance, correspondence, aliasing): eval-mode forward passes in chunks,
returning host arrays."""
from __future__ import annotations

import numpy as np

from ..backend import to_device, to_host
from ..ops.loss import softmax


def input_dtype(net) -> np.dtype:
    """The dtype the net computes in, which its inputs are given in: its parameters' (float32
    for a trained net; float64 for one cast for precise checks); float32 without parameters.
    An input in a narrower dtype would make the first layer round in it (the Winograd path's
    input transform runs in the input's dtype)."""
    for _, p, _ in net.params_and_grads():
        return np.dtype(p.dtype)
    return np.dtype(np.float32)


def probs_and_features(net, layers, batch_size: int = 64, probs: bool = True):
    """features(x (N, C, H, W) host) -> (probs (N, K), {layer: activation (N, ...)}), host
    arrays, evaluated ``batch_size`` images at a time with the net in eval mode, the inputs in
    the net's dtype (:func:`input_dtype`). With probs=False the pass stops at the deepest layer
    asked for and probs is None."""
    layers = tuple(layers)
    dtype = input_dtype(net)
    if not probs and not layers:
        raise ValueError("probs_and_features: nothing to compute")
    until = None if probs else max(layers, key=net.index)

    def features(x):
        net.eval()
        out, acts = [], {name: [] for name in layers}
        for i in range(0, len(x), batch_size):
            xb = to_device(np.ascontiguousarray(x[i:i + batch_size], dtype=dtype), net.device)
            top, caps = net.forward(xb, until=until, capture=layers) if layers \
                else (net.forward(xb), {})
            if probs:
                out.append(softmax(to_host(top).astype(np.float64)))
            for name in layers:
                acts[name].append(to_host(caps[name]))
        return (np.concatenate(out) if probs else None,
                {n: np.concatenate(a) for n, a in acts.items()})

    return features


def probs_and_map(net, layer: str, batch_size: int = 64, probs: bool = True):
    """forward(x) -> (probs (N, K), activation of ``layer`` (N, C, h, w)), for occlusion_sweep;
    with probs=False (a net without a classifier) probs is None and the pass stops at
    ``layer``."""
    features = probs_and_features(net, [layer], batch_size, probs)

    def forward(x):
        probs, acts = features(x)
        return probs, acts[layer]

    return forward
