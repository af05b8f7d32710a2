"""Launchers for kernels/cuda/conv.cu: im2col and col2im on CuPy arrays (impl 'cuda').

Siblings  reference zfraw/ops/conv.py
          Numba     kernels/numba/conv.py
          CUDA      kernels/cuda/conv.py (launchers), kernels/cuda/conv.cu
          cases     kernels/kernel_cases.py (WINDOWS)
          benchmark ``python -m benchmarks.op im2col``  (or col2im)

Same signatures, layouts and checks as the references in zfraw/ops/conv.py; inputs are made
contiguous here, and nothing is copied back to the host.
"""
from __future__ import annotations

from zfraw.backend import get_array_module
from zfraw.ops.conv import check_cols, check_window, pads4
from zfraw.ops.registry import register

from . import _loader


@register("im2col", "cuda")
def im2col(x, kh: int, kw: int, stride: int, pad):
    """Unfold sliding windows. x: (N, C, H, W) -> cols: (C*kh*kw, N*OH*OW), same dtype.
    pad: an int or (top, left, bottom, right)."""
    xp = get_array_module(x)
    OH, OW = check_window(x.shape, kh, kw, stride, pad, "im2col")
    N, C, H, W = x.shape
    pad_h, pad_w = pads4(pad)[:2]
    x = xp.ascontiguousarray(x)
    cols = xp.empty((C * kh * kw, N * OH * OW), dtype=x.dtype)
    _loader.launch_1d("conv", "im2col", x.dtype, N * C * OH * OW,
                      (x, cols) + _loader.i64(N, C, H, W, kh, kw, stride, pad_h, pad_w, OH, OW))
    return cols


@register("col2im", "cuda")
def col2im(cols, x_shape, kh: int, kw: int, stride: int, pad):
    """Fold columns back, summing overlaps (the adjoint of im2col).
    cols: (C*kh*kw, N*OH*OW) -> (N, C, H, W)."""
    xp = get_array_module(cols)
    OH, OW = check_cols(cols.shape, x_shape, kh, kw, stride, pad)
    N, C, H, W = (int(s) for s in x_shape)
    pad_h, pad_w = pads4(pad)[:2]
    cols = xp.ascontiguousarray(cols)
    x = xp.empty((N, C, H, W), dtype=cols.dtype)
    _loader.launch_1d("conv", "col2im", cols.dtype, x.size,
                      (cols, x) + _loader.i64(N, C, H, W, kh, kw, stride, pad_h, pad_w, OH, OW))
    return x
