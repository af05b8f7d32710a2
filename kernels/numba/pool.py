"""Numba max pooling with uint8 switches and its backward (= the deconvnet's unpooling),
same contract and tie rule as :mod:`zfraw.ops.pool`.

Siblings  reference zfraw/ops/pool.py
          Numba     kernels/numba/pool.py
          CUDA      kernels/cuda/pool.py (launchers), kernels/cuda/pool.cu
          cases     kernels/kernel_cases.py (POOLS, POOL_VALUES, POOLS_ASYM_CEIL)
          benchmark ``python -m benchmarks.op maxpool_fwd``  (or maxpool_bwd)

What this version does differently from the NumPy reference:
- One pass per output: its k x k window is scanned in row-major order from offset (0, 0) with
  a strict '>' (the first maximum wins), the reference's running maximum done per window in
  registers instead of k*k whole-tensor passes. Border windows are clipped to the image
  instead of materialising a padded copy, so padding taps are never read; the running
  maximum starts at the window's first real tap, as in the reference, so even NaN / -inf
  inputs give the reference's switches (padding never wins).
- The backward reads each switch once and adds dy at that input position, instead of k*k
  masked passes over the whole tensor.
- One (image, channel) plane per parallel task, so accumulation needs no atomics.
- Padding enters as the top and left pads (pt, pl) and the output size, so asymmetric pads and
  ceil_mode (windows running past the padded input, clipped like any border window) run the
  same code as a symmetric pad.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from zfraw.ops import pool as reference
from zfraw.ops.conv import pads4
from zfraw.ops.pool import check_pool, check_pool_bwd
from zfraw.ops.registry import register

from ._util import as_c, floats_only, threaded

# Serial below this many input values (kernels/numba/_util.py): the window maxima are compute,
# and the second core pays from tens of thousands of values (2-core VM: pool1 of zf-32 at a
# quarter width, batch 32, 786,432 values: 1.47 ms parallel, 3.12 ms serial).
SERIAL_BELOW = 1 << 16


@njit(cache=True, inline="always")
def _window_max(plane, h0, w0, i0, i1, j0, j1, k):
    """Running maximum over window rows i0..i1-1, columns j0..j1-1 of the window at (h0, w0),
    starting from its tap (i0, j0); a strict '>' keeps the first maximum. Returns
    (max, i*k + j)."""
    best = plane[h0 + i0, w0 + j0]
    arg = i0 * k + j0
    for i in range(i0, i1):
        for j in range(j0, j1):
            v = plane[h0 + i, w0 + j]
            if v > best:
                best = v
                arg = i * k + j
    return best, arg


@threaded(SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _maxpool_fwd(x, k, stride, pt, pl, y, switches):
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        plane, y_nc, s_nc = x[n, c], y[n, c], switches[n, c]
        for oh in range(OH):
            h0 = oh * stride - pt
            for ow in range(OW):
                w0 = ow * stride - pl
                if h0 >= 0 and w0 >= 0 and h0 + k <= H and w0 + k <= W:
                    # Interior window (almost all of them): constant bounds, no clipping.
                    best, arg = _window_max(plane, h0, w0, 0, k, 0, k, k)
                else:
                    # Border: clip to the image, so only real taps are candidates and the
                    # first of them starts the running maximum (padding never wins).
                    best, arg = _window_max(plane, h0, w0, max(0, -h0), min(k, H - h0),
                                            max(0, -w0), min(k, W - w0), k)
                y_nc[oh, ow] = best
                s_nc[oh, ow] = arg


@threaded(SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _maxpool_bwd(dy, switches, k, stride, pt, pl, dx):
    N, C, H, W = dx.shape
    OH, OW = dy.shape[2], dy.shape[3]
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        plane, dy_nc, s_nc = dx[n, c], dy[n, c], switches[n, c]
        plane[:, :] = 0
        for oh in range(OH):
            h0 = oh * stride - pt
            for ow in range(OW):
                s = np.int64(s_nc[oh, ow])
                i = s // k
                h, w = h0 + i, ow * stride - pl + s - i * k
                if h >= 0 and h < H and w >= 0 and w < W:  # a switch into padding feeds nothing
                    plane[h, w] += dy_nc[oh, ow]


@register("maxpool_fwd", "numba")
@floats_only(reference.maxpool_fwd)
def maxpool_fwd(x, k: int, stride: int, pad, ceil_mode: bool = False):
    """Max pooling. x: (N, C, H, W) float -> (y: (N, C, OH, OW), switches: (N, C, OH, OW) uint8).
    pad: an int or (top, left, bottom, right)."""
    OH, OW = check_pool(x.shape, k, stride, pad, ceil_mode)
    x = as_c(x)
    N, C = x.shape[:2]
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    switches = np.empty((N, C, OH, OW), dtype=np.uint8)
    pt, pl = pads4(pad)[:2]
    _maxpool_fwd(x.size, x, k, stride, pt, pl, y, switches)
    return y, switches


@register("maxpool_bwd", "numba")
@floats_only(reference.maxpool_bwd)
def maxpool_bwd(dy, switches, x_shape, k: int, stride: int, pad, ceil_mode: bool = False):
    """Route each dy to its switch; overlapping windows accumulate.
    dy, switches: (N, C, OH, OW) -> dx: (N, C, H, W). Also the deconvnet's unpooling."""
    OH, OW = check_pool_bwd(dy.shape, switches.shape, x_shape, k, stride, pad, ceil_mode)
    dy = as_c(dy)
    dx = np.empty(tuple(x_shape), dtype=dy.dtype)
    pt, pl = pads4(pad)[:2]
    _maxpool_bwd(dx.size, dy, as_c(switches, np.uint8), k, stride, pt, pl, dx)
    return dx
