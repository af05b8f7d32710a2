"""Nets built from architecture specs (see archs.py), with a printable summary."""
from __future__ import annotations

import math

import numpy as np

from ..layers import Conv2d, Dropout, Flatten, Linear, LocalResponseNorm, MaxPool2d, ReLU
from .archs import ARCHITECTURES, ARCHS, get_spec
from .net import RULES, Net


def _scaled(n: int, width: float, multiple: int = 1) -> int:
    """n*width rounded to a multiple of ``multiple`` (at least one multiple); n when width=1."""
    if width == 1.0:
        return n
    return max(1, int(round(n * width / multiple))) * multiple


def _conv_multiple(specs, i) -> int:
    """What conv i's scaled channel count must divide by: its own groups and those of the next
    conv, which takes its maps as input (an fc in between ends the chain)."""
    multiple = specs[i][2].get("groups", 1)
    for _, kind, opt in specs[i + 1:]:
        if kind == "fc":
            break
        if kind == "conv":
            return math.lcm(multiple, opt.get("groups", 1))
    return multiple


def _pad(opt):
    """A spec's "pad": an int, or a 4-list (top, left, bottom, right) as ONNX orders it."""
    pad = opt.get("pad", 0)
    return tuple(pad) if isinstance(pad, (list, tuple)) else pad


def build_layers(specs, input_shape, num_classes: int, width: float = 1.0, seed: int = 0,
                 dtype=np.float32):
    """Layers from (name, kind, options) specs, inferring in-channels and in-features by
    propagating the per-example shape. Returns the list of layers.

    Options: conv ``out``, ``k``, ``stride`` (1), ``pad`` (0; an int or a 4-list (top, left,
    bottom, right)), ``groups`` (1; ``out`` after ``width`` scaling must stay divisible);
    pool ``k``, ``stride``, ``pad`` (as conv's), ``ceil_mode`` (False); lrn: LocalResponseNorm's
    keywords; dropout ``p``; fc ``out`` (a width or "classes")."""
    layers, shape = [], tuple(input_shape)
    for i, (name, kind, opt) in enumerate(specs):
        if kind == "conv":
            out = _scaled(opt["out"], width, _conv_multiple(specs, i))
            layer = Conv2d(shape[0], out, opt["k"], opt.get("stride", 1), _pad(opt), dtype=dtype,
                           groups=opt.get("groups", 1))
        elif kind == "fc":
            out = num_classes if opt["out"] == "classes" else _scaled(opt["out"], width)
            layer = Linear(int(np.prod(shape)), out, dtype=dtype)
        elif kind == "relu":
            layer = ReLU()
        elif kind == "pool":
            layer = MaxPool2d(opt["k"], opt["stride"], _pad(opt), opt.get("ceil_mode", False))
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
    """A named architecture (archs.py: 'zf', 'alexnet', 'alexnet-grouped', 'zf-64',
    'alexnet-64', 'zf-32') with ``width`` times the paper's channels and fc units, initialised
    from ``seed`` ('paper' or 'he')."""
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


# The ONNX importer and exporter; the onnx package itself is imported only when they are called.
from .onnx import OnnxImportError, load_onnx, save_onnx  # noqa: E402

__all__ = ["ARCHITECTURES", "ARCHS", "RULES", "Net", "OnnxImportError", "build", "build_layers",
           "get_spec", "load_onnx", "save_onnx"]
