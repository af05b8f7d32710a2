"""Launchers for kernels/cuda/lrn.cu: local response normalization across channels (ONNX
window) on CuPy arrays (impl 'cuda'). Same signatures as zfraw/ops/lrn.py.

Siblings  reference zfraw/ops/lrn.py
          Numba     kernels/numba/lrn.py
          CUDA      kernels/cuda/lrn.py (launchers), kernels/cuda/lrn.cu
          cases     kernels/kernel_cases.py (LRNS)
          benchmark ``python -m benchmarks.op lrn_fwd``  (or lrn_bwd)
"""
from __future__ import annotations

from zfraw.backend import get_array_module
from zfraw.ops.lrn import check_lrn, lrn_window
from zfraw.ops.registry import register

from . import _loader


def _channels(shape, what: str):
    """(N, C, HW) of an (N, C, ...) array: channels are axis 1, the rest is flattened."""
    if len(shape) < 2:
        raise ValueError(f"{what}: expected an (N, C, ...) array, got shape {tuple(shape)}")
    hw = 1
    for s in shape[2:]:
        hw *= int(s)
    return int(shape[0]), int(shape[1]), hw


RING = 16  # ZF_LRN_RING of lrn.cu: the widest window the ring variant holds


@register("lrn_fwd", "cuda")
def lrn_fwd(x, size: int, alpha: float, beta: float, bias: float):
    """x: (N, C, H, W) -> (y, scale), both (N, C, H, W); scale is kept for the backward."""
    return _lrn_fwd("lrn_fwd", x, size, alpha, beta, bias)


@register("lrn_fwd", "cuda:ring")
def lrn_fwd_ring(x, size: int, alpha: float, beta: float, bias: float):
    """lrn_fwd with one thread per (image, pixel) reading each x once (lrn.cu, "cuda:ring");
    bit-identical to lrn_fwd. Windows wider than RING channels run lrn_fwd's kernel.
    x: (N, C, H, W) -> (y, scale)."""
    return _lrn_fwd("lrn_fwd_ring" if size <= RING else "lrn_fwd", x, size, alpha, beta, bias)


def _lrn_fwd(kernel: str, x, size, alpha, beta, bias):
    xp = get_array_module(x)
    before, after = lrn_window(size)
    check_lrn("lrn_fwd", x)
    N, C, HW = _channels(x.shape, "lrn_fwd")
    x = xp.ascontiguousarray(x)
    y = xp.empty_like(x)
    scale = xp.empty_like(x)
    T = x.dtype.type
    threads = N * HW if kernel == "lrn_fwd_ring" else x.size
    _loader.launch_1d("lrn", kernel, x.dtype, threads,
                      (x, y, scale) + _loader.i64(N, C, HW, before, after)
                      + (T(alpha / size), T(beta), T(bias)))
    return y, scale


@register("lrn_bwd", "cuda")
def lrn_bwd(dy, x, y, scale, size: int, alpha: float, beta: float):
    """Exact gradient of lrn_fwd. dy, x, y, scale: (N, C, H, W) -> dx: (N, C, H, W)."""
    xp = get_array_module(dy)
    before, after = lrn_window(size)
    check_lrn("lrn_bwd", dy, x, y, scale)
    N, C, HW = _channels(dy.shape, "lrn_bwd")
    dy, x, y, scale = (xp.ascontiguousarray(a, dtype=dy.dtype) for a in (dy, x, y, scale))
    dx = xp.empty_like(dy)
    T = dy.dtype.type
    _loader.launch_1d("lrn", "lrn_bwd", dy.dtype, dy.size,
                      (dy, x, y, scale, dx) + _loader.i64(N, C, HW, before, after)
                      + (T(beta), T(2.0 * alpha * beta / size)))
    return dx
