"""Each conv / ReLU / pool / LRN / fc layer of a net, forward and backward, per impl.

The layers are the zfraw layer objects themselves (the code the trainer runs), fed the
activations of one forward pass of the whole net at the given batch. Conv and fc report
GFLOP/s (2 flops per multiply-add; the backward does twice the forward's work: weight and
input gradients) against the matmul ceiling; the others report GB/s of their input and output
tensors (the primitive table has the exact bytes) against the copy ceiling.

3x3 stride-1 conv layers also run in the layout the default did not take: ``<impl>+winograd``
(Winograd F(2x2, 3x3)) where zfraw/layers/conv.py's WINOGRAD setting leaves the device on
im2col, ``<impl>+im2col`` where it chose Winograd; GFLOP/s are effective ones (the direct
convolution's flops over the time), so the two compare directly.
A layer whose primitives have variants in the registry (``numba:scatter`` for col2im, ...)
also runs under each variant, named as the variant.
"""
from __future__ import annotations

import copy

import numpy as np

import zfraw.layers.conv as conv_module
from zfraw import backend, nets
from zfraw.ops import registry

from . import torch_peer
from .cases import impl_device, usable_impls
from .timing import ceiling_device, measure

KINDS = ("conv", "relu", "pool", "lrn", "fc")
PRIMITIVES = {"conv": ("im2col", "col2im"), "pool": ("maxpool_fwd", "maxpool_bwd"),
              "lrn": ("lrn_fwd", "lrn_bwd"), "relu": ("relu_fwd", "relu_bwd")}


WINOGRAD_PRIMITIVES = ("winograd_filter", "winograd_filter_adjoint", "winograd_input",
                       "winograd_input_adjoint", "winograd_output", "winograd_output_adjoint")


def _variants(impl: str, layer) -> list[str]:
    """The variants of ``impl`` that replace a primitive ``layer`` runs (in its layout)."""
    winograd = getattr(layer, "layout", None) == conv_module.WINOGRAD_LAYOUT
    ops = WINOGRAD_PRIMITIVES if winograd else PRIMITIVES.get(layer.kind, ())
    return [v for v in registry.variants(impl)
            if any(v in registry.implementations(op) for op in ops)]


def _inputs(net, x):
    """Each layer's input in one forward pass: {name: x_in}."""
    out = {}
    with registry.use_impl(registry.default_impl("cpu")):
        for layer in net.layers:
            out[layer.name] = x
            x = layer.forward(x)
    return out


def run_layers(arch: str, batch: int, repeat: int, ceilings: dict, with_torch: bool,
               log=print, width: float = 1.0, classes: int = 1000) -> list[dict]:
    """One row per (layer, pass, impl) for every layer of KINDS in ``arch`` at ``width``."""
    rng = np.random.default_rng(0)
    cpu_net = nets.build(arch, num_classes=classes, width=width).train()
    x = rng.standard_normal((batch,) + cpu_net.input_shape, dtype=np.float32)
    inputs = _inputs(cpu_net, x)
    impls = usable_impls()
    dev_nets = {"cpu": cpu_net}
    if "cuda" in impls:
        dev_nets["cuda"] = nets.build(arch, num_classes=classes, width=width).train().to("cuda")
    peers = [(name, dev, torch_peer.mirror(cpu_net, tdev), tdev)
             for name, dev, tdev in (torch_peer.devices() if with_torch else [])]
    rows = []
    for layer, in_shape in zip(cpu_net.layers, cpu_net.shapes):
        if layer.kind not in KINDS:
            continue
        x_in = inputs[layer.name]
        y = layer.forward(x_in)
        dy = rng.standard_normal(y.shape, dtype=np.float32)
        for pass_ in ("forward", "backward"):
            candidates = {}
            for impl in impls:
                device = impl_device(impl)
                dev_layer = dev_nets[device].layer(layer.name)
                xd, dyd = backend.to_device(x_in, device), backend.to_device(dy, device)
                with registry.use_impl(impl):
                    dev_layer.forward(xd)  # the state its backward reads
                candidates[impl] = (_call(impl, dev_layer, pass_, xd, dyd), device)
                for variant in _variants(impl, dev_layer):
                    vl = copy.copy(dev_layer)
                    with registry.use_impl(variant):
                        vl.forward(xd)
                    candidates[variant] = (_call(variant, vl, pass_, xd, dyd), device)
                if impl != "numpy" and _winograd_shape(layer):
                    other = dev_layer.layout != conv_module.WINOGRAD_LAYOUT   # winograd?
                    wl = copy.copy(dev_layer)      # same weights, its own saved state
                    with registry.use_impl(impl), _winograd(device, other):
                        wl.forward(xd)
                    candidates[f"{impl}+{'winograd' if other else 'im2col'}"] = (
                        _call(impl, wl, pass_, xd, dyd, (device, other)), device)
            for name, dev, model, tdev in peers:
                fwd, bwd = torch_peer.layer_calls(model, layer.name, x_in, dy, tdev)
                candidates[name] = (fwd if pass_ == "forward" else bwd, dev)
            times = measure(candidates, repeat=repeat, warmup=1, budget_s=30.0)
            work = _work(layer, in_shape, batch, pass_, x_in, y)
            for name, t in times.items():
                ceiling = ceilings[ceiling_device(candidates[name][1])]
                row = {"layer": layer.name, "kind": layer.kind, "pass": pass_, "impl": name,
                       "device": candidates[name][1], "median_ms": t["median_s"] * 1e3,
                       "min_ms": t["min_s"] * 1e3, "runs": t["runs"],
                       "speedup_vs_numpy": times["numpy"]["median_s"] / t["median_s"]}
                if "flops" in work:
                    row["gflops"] = work["flops"] / t["median_s"] / 1e9
                    row["frac_matmul_ceiling"] = row["gflops"] / ceiling["matmul_gflops"]
                else:
                    row["gbs"] = work["bytes"] / t["median_s"] / 1e9
                    row["frac_copy_ceiling"] = row["gbs"] / ceiling["copy_gbs"]
                rows.append(row)
            log(f"  {layer.name:6s} {pass_:8s} " + "  ".join(
                f"{n} {t['median_s'] * 1e3:8.2f} ms" for n, t in times.items()))
    return rows


class _winograd:
    """Context manager: Winograd on (or off) for ``device`` (None: leave the setting alone)."""

    def __init__(self, device, on: bool = True):
        self.device, self.on = device, on

    def __enter__(self):
        if self.device is not None:
            self.saved = conv_module.WINOGRAD[self.device]
            conv_module.WINOGRAD[self.device] = self.on

    def __exit__(self, *exc):
        if self.device is not None:
            conv_module.WINOGRAD[self.device] = self.saved


def _winograd_shape(layer) -> bool:
    return layer.kind == "conv" and layer.k == 3 and layer.stride == 1 and layer.groups == 1


def _call(impl, layer, pass_, x, dy, winograd=(None, True)):
    """One pass of ``layer`` under ``impl``; ``winograd``: (device, on) for :class:`_winograd`."""
    if pass_ == "forward":
        def fn():
            with registry.use_impl(impl), _winograd(*winograd):
                layer.forward(x)
    else:
        def fn():
            with registry.use_impl(impl), _winograd(*winograd):
                layer.backward(dy)
    return fn


def _work(layer, in_shape, batch, pass_, x, y) -> dict:
    if layer.kind in ("conv", "fc"):
        flops = 2 * layer.macs(in_shape) * batch
        return {"flops": flops if pass_ == "forward" else 2 * flops}
    return {"bytes": int(x.nbytes + y.nbytes)}
