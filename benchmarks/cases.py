"""Each primitive on the shapes it meets in the paper's zf net, for every registered impl.

The geometries are read from the built net (so they follow zfraw/nets/archs.py): im2col and
col2im of conv1..conv3, max pooling of pool1/pool2/pool5, LRN of norm1/norm2, ReLU of relu1
(the largest), the momentum update of fc6.W (the largest parameter) and the loss on (N, 1000).
Throughput is the bytes the primitive must move at least (its array inputs read once and its
outputs written once), so GB/s compares directly with the copy ceiling.
"""
from __future__ import annotations

import numpy as np

from zfraw import backend, nets
from zfraw.layers import Conv2d, LocalResponseNorm, MaxPool2d
from zfraw.ops import registry

from . import torch_peer
from .timing import ceiling_device, measure


def impl_device(impl: str) -> str:
    """Where an impl's (or variant's) arrays live: the numpy reference is timed on the CPU."""
    return registry.impl_device(impl) or "cpu"


def usable_impls() -> list[str]:
    """Every impl that runs here (numpy, numba; cuda on a GPU machine)."""
    return [i for i in registry.IMPLS if registry.available(i)]


def _nbytes(values) -> int:
    out = 0
    for v in values if isinstance(values, (tuple, list)) else (values,):
        if hasattr(v, "nbytes") and getattr(v, "ndim", 0) > 0:
            out += int(v.nbytes)
    return out


def primitive_cases(batch: int, rng) -> list[dict]:
    """[{"case", "op", "args", "bytes"}] with host (NumPy) float32 args."""
    net = nets.build("zf", num_classes=1000)
    f32 = np.float32
    cases = []

    def add(case, op, args, in_place=()):
        ref = registry.implementations(op)["numpy"](*args)
        moved = _nbytes(args) + _nbytes(ref) + _nbytes(in_place)  # in-place writes count once more
        cases.append({"case": case, "op": op, "args": args, "bytes": moved})

    for layer, in_shape in zip(net.layers, net.shapes):
        shape = (batch,) + tuple(in_shape)
        if isinstance(layer, Conv2d) and layer.name in ("conv1", "conv2", "conv3"):
            x = rng.standard_normal(shape, dtype=f32)
            geo = (layer.k, layer.k, layer.stride, layer.pad)
            add(layer.name, "im2col", (x,) + geo)
            cols = registry.implementations("im2col")["numpy"](x, *geo)
            add(layer.name, "col2im", (cols, shape) + geo)
        elif isinstance(layer, MaxPool2d):
            x = rng.standard_normal(shape, dtype=f32)
            geo = (layer.k, layer.stride, layer.pad)
            add(layer.name, "maxpool_fwd", (x,) + geo)
            y, switches = registry.implementations("maxpool_fwd")["numpy"](x, *geo)
            add(layer.name, "maxpool_bwd", (rng.standard_normal(y.shape, dtype=f32), switches,
                                            shape) + geo)
        elif isinstance(layer, LocalResponseNorm):
            x = rng.standard_normal(shape, dtype=f32)
            hyper = (layer.size, layer.alpha, layer.beta)
            add(layer.name, "lrn_fwd", (x,) + hyper + (layer.bias,))
            y, scale = registry.implementations("lrn_fwd")["numpy"](x, *hyper, layer.bias)
            add(layer.name, "lrn_bwd", (rng.standard_normal(shape, dtype=f32), x, y, scale) + hyper)
        elif layer.name == "relu1":
            x = rng.standard_normal(shape, dtype=f32)
            add(layer.name, "relu_fwd", (x,))
            add(layer.name, "relu_bwd", (rng.standard_normal(shape, dtype=f32), np.maximum(x, 0)))
    w = net.layer("fc6").params["W"]
    p, g, v = (rng.standard_normal(w.shape, dtype=f32) * 1e-2 for _ in range(3))
    add("fc6.W", "sgd_update", (p, g, v, 0.01, 0.9, 5e-4), in_place=(p, v))
    logits = rng.standard_normal((batch, 1000), dtype=f32)
    labels = rng.integers(0, 1000, batch)
    add("fc8", "softmax_xent", (logits, labels))
    _, probs = registry.implementations("softmax_xent")["numpy"](logits, labels)
    add("fc8", "softmax_xent_bwd", (probs, labels))
    return cases


def _on_device(args, device):
    return tuple(backend.to_device(a, device) if isinstance(a, np.ndarray) else a for a in args)


def run_primitives(batch: int, repeat: int, ceilings: dict, with_torch: bool,
                   log=print) -> list[dict]:
    """Time every case for every impl and variant (and the torch peer); one result row per
    (case, impl)."""
    rows = []
    for case in primitive_cases(batch, np.random.default_rng(0)):
        op, args = case["op"], case["args"]
        candidates = {}
        for impl, fn in registry.implementations(op).items():
            device = impl_device(impl)
            dev_args = _on_device(args, device)
            candidates[impl] = ((lambda fn=fn, a=dev_args: fn(*a)), device)
        if with_torch:
            for name, call in torch_peer.primitive(op, args).items():
                candidates[name] = call
        times = measure(candidates, repeat=repeat, warmup=2, budget_s=20.0)
        for name, t in times.items():
            device = candidates[name][1]
            gbs = case["bytes"] / t["median_s"] / 1e9
            copy = ceilings[ceiling_device(device)]["copy_gbs"]
            rows.append({"case": case["case"], "op": op, "impl": name, "device": device,
                         "median_ms": t["median_s"] * 1e3, "min_ms": t["min_s"] * 1e3,
                         "runs": t["runs"], "bytes": case["bytes"], "gbs": gbs,
                         "frac_copy_ceiling": gbs / copy,
                         "speedup_vs_numpy": times["numpy"]["median_s"] / t["median_s"]})
        log(f"  {op:17s} {case['case']:6s} " + "  ".join(
            f"{n} {t['median_s'] * 1e3:8.2f} ms" for n, t in times.items()))
    return rows
