"""Nets built from architecture specs (see archs.py), with a printable summary."""
from __future__ import annotations

import numpy as np

from ..layers import Conv2d, Dropout, Flatten, Linear, LocalResponseNorm, MaxPool2d, ReLU
from .archs import ARCHITECTURES, ARCHS, get_spec
from .net import RULES, Net


def _scaled(n: int, width: float) -> int:
    return max(1, int(round(n * width)))


def build_layers(specs, input_shape, num_classes: int, width: float = 1.0, seed: int = 0,
                 dtype=np.float32):
    """Layers from (name, kind, options) specs, inferring in-channels and in-features by
    propagating the per-example shape. Returns the list of layers."""
    layers, shape = [], tuple(input_shape)
    for i, (name, kind, opt) in enumerate(specs):
        if kind == "conv":
            layer = Conv2d(shape[0], _scaled(opt["out"], width), opt["k"], opt.get("stride", 1),
                           opt.get("pad", 0), dtype=dtype)
        elif kind == "fc":
            out = num_classes if opt["out"] == "classes" else _scaled(opt["out"], width)
            layer = Linear(int(np.prod(shape)), out, dtype=dtype)
        elif kind == "relu":
            layer = ReLU()
        elif kind == "pool":
            layer = MaxPool2d(opt["k"], opt["stride"], opt.get("pad", 0))
        elif kind == "lrn":
            layer = LocalResponseNorm(**opt)
        elif kind == "dropout":
            layer = Dropout(opt.get("p", 0.5), seed=seed * 1000 + i)
        elif kind == "flatten":
            layer = Flatten()
        else:
            raise ValueError(f"{name}: unknown layer kind {kind!r}")
        layer.name = name
        shape = layer.output_shape(shape)
        layers.append(layer)
    return layers


def build(arch: str, num_classes: int = 1000, seed: int = 0, init: str = "paper",
          width: float = 1.0, dtype=np.float32) -> Net:
    """A named architecture ('zf', 'alexnet', 'zf-64', 'alexnet-64', 'zf-32') with ``width``
    times the paper's channels and fc units, initialised from ``seed`` ('paper' or 'he')."""
    from ..optim.init import initialize

    spec = get_spec(arch)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    layers = build_layers(spec["layers"], spec["input"], num_classes, width, seed, dtype)
    net = Net(layers, spec["input"], num_classes, arch=arch)
    initialize(net, init, seed)
    return net


__all__ = ["ARCHITECTURES", "ARCHS", "RULES", "Net", "build", "build_layers", "get_spec"]
