"""Launchers for kernels/cuda/pool.cu: max pooling with uint8 switches and its backward
(= the deconvnet's unpooling) on CuPy arrays (impl 'cuda').

Siblings  reference zfraw/ops/pool.py
          Numba     kernels/numba/pool.py
          CUDA      kernels/cuda/pool.py (launchers), kernels/cuda/pool.cu
          cases     kernels/kernel_cases.py (POOLS, POOL_VALUES, POOLS_ASYM_CEIL)
          benchmark ``python -m benchmarks.op maxpool_fwd``  (or maxpool_bwd)

Same signatures, tie rule and checks as zfraw/ops/pool.py.
"""
from __future__ import annotations

from zfraw.backend import get_array_module
from zfraw.ops.conv import pads4
from zfraw.ops.pool import check_pool, check_pool_bwd
from zfraw.ops.registry import register

from . import _loader


@register("maxpool_fwd", "cuda")
def maxpool_fwd(x, k: int, stride: int, pad, ceil_mode: bool = False):
    """Max pooling. x: (N, C, H, W) float -> (y: (N, C, OH, OW), switches: (N, C, OH, OW) uint8).
    pad: an int or (top, left, bottom, right)."""
    xp = get_array_module(x)
    OH, OW = check_pool(x.shape, k, stride, pad, ceil_mode)
    pad_h, pad_w = pads4(pad)[:2]
    N, C, H, W = x.shape
    x = xp.ascontiguousarray(x)
    y = xp.empty((N, C, OH, OW), dtype=x.dtype)
    switches = xp.empty((N, C, OH, OW), dtype=xp.uint8)
    _loader.launch_1d("pool", "maxpool_fwd", x.dtype, y.size,
                      (x, y, switches) + _loader.i64(N * C, H, W, k, stride, pad_h, pad_w, OH, OW))
    return y, switches


@register("maxpool_bwd", "cuda")
def maxpool_bwd(dy, switches, x_shape, k: int, stride: int, pad, ceil_mode: bool = False):
    """Route each dy to its switch; overlapping windows accumulate.
    dy, switches: (N, C, OH, OW) -> dx: (N, C, H, W). Also the deconvnet's unpooling."""
    xp = get_array_module(dy)
    OH, OW = check_pool_bwd(dy.shape, switches.shape, x_shape, k, stride, pad, ceil_mode)
    pad_h, pad_w = pads4(pad)[:2]
    N, C, H, W = (int(s) for s in x_shape)
    dy = xp.ascontiguousarray(dy)
    switches = xp.ascontiguousarray(switches, dtype=xp.uint8)
    dx = xp.empty((N, C, H, W), dtype=dy.dtype)
    _loader.launch_1d("pool", "maxpool_bwd", dy.dtype, dx.size,
                      (dy, switches, dx) + _loader.i64(N * C, H, W, k, stride, pad_h, pad_w,
                                                           OH, OW))
    return dx
