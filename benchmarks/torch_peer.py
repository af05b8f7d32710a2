"""The PyTorch peer column: the same primitives, layers and training step in PyTorch.

Used only by the benchmarks (zfraw itself never imports a framework) and only when ``import
torch`` works. The models mirror the zfraw net layer by layer (built from its layer objects),
so both sides compute the same architecture. PyTorch runs on the CPU with every core, and also
on the GPU when it sees one (timed as device 'torch-cuda'). One difference to keep in mind when
reading the step times: autograd skips the input gradient of the first convolution (the image
needs none), which a zfraw Net computes.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .timing import threads

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # the peer column is optional
    torch = None


def available() -> bool:
    return torch is not None


def version() -> str | None:
    return torch.__version__ if torch is not None else None


def devices() -> list[tuple[str, str, str]]:
    """(column name, timing device, torch device) for each place PyTorch can run here."""
    if torch is None:
        return []
    torch.set_num_threads(threads())   # as zfraw's kernels: every core unless told otherwise
    out = [("torch", "cpu", "cpu")]
    if torch.cuda.is_available():
        out.append(("torch-cuda", "torch-cuda", "cuda"))
    return out


def _t(a, tdev):
    return torch.tensor(a, device=tdev) if isinstance(a, np.ndarray) else a


def _col2im(cols, shape, kh, kw, s, p):
    # zfraw's columns are (C*kh*kw, N*L); F.fold takes (N, C*kh*kw, L): laid out so before timing.
    cols = cols.reshape(cols.shape[0], shape[0], -1).permute(1, 0, 2).contiguous()
    return lambda: F.fold(cols, tuple(shape[2:]), (kh, kw), stride=s, padding=p)


def _maxpool_bwd(dy, switches, shape, k, s, p):
    x = torch.randn(tuple(shape), device=dy.device)
    _, idx = F.max_pool2d(x, k, s, p, return_indices=True)
    bwd = torch.ops.aten.max_pool2d_with_indices_backward
    return lambda: bwd(dy, x, [k, k], [s, s], [p, p], [1, 1], False, idx)


def _lrn_bwd(dy, x, y, scale, size, alpha, beta):
    x = x.clone().requires_grad_()
    out = F.local_response_norm(x, size, alpha, beta, 2.0)
    return lambda: torch.autograd.grad(out, x, dy, retain_graph=True)


def _sgd(p, g, v, lr, m, wd):
    def step():  # the same update as zfraw's, in PyTorch's in-place ops (no fused kernel)
        v.mul_(m).add_(torch.add(g, p, alpha=wd), alpha=-lr)
        p.add_(v)
    return step


# op -> maker(*torch args) -> zero-argument callable doing the peer's version of one call
_PRIMITIVES = {
    "im2col": lambda x, kh, kw, s, p: lambda: F.unfold(x, (kh, kw), stride=s, padding=p),  # (N, K, L)
    "col2im": _col2im,
    "maxpool_fwd": lambda x, k, s, p: lambda: F.max_pool2d(x, k, s, p, return_indices=True),
    "maxpool_bwd": _maxpool_bwd,
    "lrn_fwd": lambda x, size, alpha, beta, bias: lambda: F.local_response_norm(
        x, size, alpha, beta, bias),
    "lrn_bwd": _lrn_bwd,
    "relu_fwd": lambda x: lambda: torch.relu(x),
    "relu_bwd": lambda dy, y: lambda: torch.ops.aten.threshold_backward(dy, y, 0),
    "sgd_update": _sgd,
    "softmax_xent": lambda logits, labels: lambda: F.cross_entropy(logits, labels),
}


def primitive(op: str, args: tuple) -> dict:
    """{column: (fn, timing device)} for PyTorch's version of ``op`` on ``args`` (host arrays);
    empty when PyTorch is absent or has no counterpart."""
    maker = _PRIMITIVES.get(op)
    if maker is None:
        return {}
    out = {}
    for name, device, tdev in devices():
        with torch.no_grad() if op != "lrn_bwd" else torch.enable_grad():
            out[name] = (maker(*(_t(a, tdev) for a in args)), device)
    return out


def mirror(net, tdev: str):
    """An nn.Sequential with the zfraw net's layers, names and hyper-parameters."""
    from zfraw.layers import (Conv2d, Dropout, Flatten, Linear, LocalResponseNorm, MaxPool2d,
                              ReLU)

    modules = {}
    for layer in net.layers:
        if isinstance(layer, (Conv2d, MaxPool2d)) and not isinstance(layer.pad, int):
            raise ValueError(f"torch peer: {layer.name} has asymmetric padding {layer.pad}, "
                             "which nn.Conv2d / nn.MaxPool2d cannot mirror")
        if isinstance(layer, Conv2d):
            m = nn.Conv2d(layer.in_ch, layer.out_ch, layer.k, layer.stride, layer.pad,
                          groups=layer.groups)
        elif isinstance(layer, Linear):
            m = nn.Linear(layer.in_f, layer.out_f)
        elif isinstance(layer, ReLU):
            m = nn.ReLU()
        elif isinstance(layer, MaxPool2d):
            m = nn.MaxPool2d(layer.k, layer.stride, layer.pad, ceil_mode=layer.ceil_mode)
        elif isinstance(layer, LocalResponseNorm):
            m = nn.LocalResponseNorm(layer.size, layer.alpha, layer.beta, layer.bias)
        elif isinstance(layer, Dropout):
            m = nn.Dropout(layer.p)
        elif isinstance(layer, Flatten):
            m = nn.Flatten()
        else:
            raise ValueError(f"torch peer: no mirror for layer {layer.name} ({layer.kind})")
        modules[layer.name] = m
    return nn.Sequential(OrderedDict(modules)).to(tdev)


def layer_calls(model, name: str, x: np.ndarray, dy: np.ndarray, tdev: str):
    """(forward fn, backward fn) for one layer of the mirror: the backward is autograd's
    gradient w.r.t. the layer input and its parameters, for a graph built once."""
    m = getattr(model, name)
    xt = torch.tensor(x, device=tdev).requires_grad_()
    dyt = torch.tensor(dy, device=tdev)
    out = m(xt)
    wrt = [xt] + list(m.parameters())

    def fwd():
        with torch.no_grad():
            m(xt)

    return fwd, lambda: torch.autograd.grad(out, wrt, dyt, retain_graph=True)


def train_step(net, x: np.ndarray, labels: np.ndarray, tdev: str, renorm_radius: float = 0.1):
    """A zero-argument training step (forward, cross-entropy, backward, SGD with momentum and
    weight decay, then the paper's filter renormalization as zfraw's train_step does it) of the
    mirror of ``net`` on one fixed batch."""
    model = mirror(net, tdev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    xt = torch.tensor(x, device=tdev)
    yt = torch.tensor(labels, device=tdev)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(xt), yt).backward()
        opt.step()
        if renorm_radius > 0:
            with torch.no_grad():
                for m in convs:
                    rms = m.weight.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()
                    m.weight.mul_(torch.where(rms > renorm_radius,
                                              renorm_radius / rms.clamp_min(1e-30), 1.0))

    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    return step
