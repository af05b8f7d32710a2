"""Weight initialisation: the paper's, and He's for small nets that do not train with it."""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module

SCHEMES = ("paper", "he")


def initialize(net, scheme: str = "paper", seed: int = 0) -> None:
    """Fill every layer's W in place and zero its b.

    'paper': W ~ N(0, 0.01^2) (Zeiler & Fergus Sec. 3). 'he': W ~ N(0, 2/fan_in), which keeps
    activations at unit scale through ReLUs, for narrow or shallow variants.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown init {scheme!r}; choose one of {', '.join(SCHEMES)}")
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if "W" not in layer.params:
            continue
        W = layer.params["W"]
        fan_in = int(np.prod(W.shape[1:]))
        std = 0.01 if scheme == "paper" else np.sqrt(2.0 / fan_in)
        values = (rng.standard_normal(W.shape) * std).astype(W.dtype)  # drawn on the host
        W[...] = get_array_module(W).asarray(values)
        layer.params["b"][...] = 0
