"""Launchers for kernels/cuda/avgpool.cu: average pooling and its backward (= the deconvnet's
rule for average pooling) on CuPy arrays (impl 'cuda').

Siblings  reference zfraw/ops/avgpool.py
          Numba     kernels/numba/avgpool.py
          CUDA      kernels/cuda/avgpool.py (launchers), kernels/cuda/avgpool.cu
          cases     kernels/kernel_cases.py (AVGPOOLS)
          benchmark ``python -m benchmarks.op avgpool_fwd``  (or avgpool_bwd)

Same signatures, divisors and checks as zfraw/ops/avgpool.py.
"""
from __future__ import annotations

from zfraw.backend import get_array_module
from zfraw.ops.avgpool import check_avgpool, check_avgpool_bwd
from zfraw.ops.conv import pads4
from zfraw.ops.registry import register

from . import _loader


@register("avgpool_fwd", "cuda")
def avgpool_fwd(x, kh: int, kw: int, stride: int, pad, ceil_mode: bool = False,
                count_include_pad: bool = False):
    """Average pooling. x: (N, C, H, W) float -> y: (N, C, OH, OW). pad: an int or (top, left,
    bottom, right)."""
    xp = get_array_module(x)
    OH, OW = check_avgpool(x.shape, kh, kw, stride, pad, ceil_mode)
    N, C, H, W = x.shape
    x = xp.ascontiguousarray(x)
    y = xp.empty((N, C, OH, OW), dtype=x.dtype)
    _loader.launch_1d("avgpool", "avgpool_fwd", x.dtype, y.size,
                      (x, y) + _loader.i64(N * C, H, W, kh, kw, stride, *pads4(pad),
                                           int(bool(count_include_pad)), OH, OW))
    return y


@register("avgpool_bwd", "cuda")
def avgpool_bwd(dy, x_shape, kh: int, kw: int, stride: int, pad, ceil_mode: bool = False,
                count_include_pad: bool = False):
    """The gradient of avgpool_fwd: each dy / its divisor spread over its window's taps inside
    the input, overlaps summed. dy: (N, C, OH, OW) -> dx: (N, C, H, W). Also the deconvnet's
    projection through average pooling."""
    xp = get_array_module(dy)
    OH, OW = check_avgpool_bwd(dy.shape, x_shape, kh, kw, stride, pad, ceil_mode)
    N, C, H, W = (int(s) for s in x_shape)
    dy = xp.ascontiguousarray(dy)
    dx = xp.empty((N, C, H, W), dtype=dy.dtype)
    _loader.launch_1d("avgpool", "avgpool_bwd", dy.dtype, dx.size,
                      (dy, dx) + _loader.i64(N * C, H, W, kh, kw, stride, *pads4(pad),
                                             int(bool(count_include_pad)), OH, OW))
    return dx
