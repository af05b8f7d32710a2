"""Numba local response normalization across channels, same contract (ONNX window) as
:mod:`zfraw.ops.lrn`.

Siblings  reference zfraw/ops/lrn.py
          Numba     kernels/numba/lrn.py
          CUDA      kernels/cuda/lrn.py (launchers), kernels/cuda/lrn.cu
          cases     kernels/kernel_cases.py (LRNS)
          benchmark ``python -m benchmarks.op lrn_fwd``  (or lrn_bwd)

What this version does differently from the NumPy reference:
- The window sum is accumulated straight into the ``scale`` output, one (image, channel)
  plane per parallel task, from the <= ``size`` neighbouring input planes (no x*x temporary,
  no shifted copies); the inner loops run along the contiguous H*W axis and vectorise.
- scale^-beta uses two square roots when beta == 0.75 (the paper's value):
  s^0.75 = sqrt(s*sqrt(s)), which vectorises, where pow() is a scalar libm call; the test on
  beta is hoisted out of the element loops (see _ratio).
- The backward runs one block of pixels of one image per parallel task: dy*y/scale once per
  element into a small block buffer, then each channel's mirrored window sum from it. It reads
  dy, x and scale but not y (recomputed), four arrays of traffic where the reference moves
  over a dozen.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from zfraw.ops import lrn as reference
from zfraw.ops.lrn import check_lrn, lrn_window
from zfraw.ops.registry import register

from ._util import as_c, floats_only, scalar, threaded

# Serial below this many values (kernels/numba/_util.py): a window sum and a power per value,
# compute as much as memory, as pooling is.
SERIAL_BELOW = 1 << 16


@njit(cache=True, inline="always")
def _ratio(out, a, s, beta):
    """out = a / s**beta along one row. The beta test sits outside the loops, so each loop
    vectorises (a test inside the loop kept LLVM from it: 5x slower, measured); beta == 0.75
    (the paper's value) takes s^0.75 = sqrt(s*sqrt(s)), two vector square roots instead of a
    scalar pow() call per element."""
    if beta == 0.75:
        for p in range(out.size):
            out[p] = a[p] / np.sqrt(s[p] * np.sqrt(s[p]))
    else:
        for p in range(out.size):
            out[p] = a[p] / s[p] ** beta


@threaded(SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _lrn_fwd(x, before, after, coef, bias, beta, y, scale):
    N, C, HW = x.shape
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        s, ys = scale[n, c], y[n, c]
        s[:] = 0
        for j in range(max(0, c - before), min(C, c + after + 1)):
            xj = x[n, j]
            for p in range(HW):
                s[p] += xj[p] * xj[p]
        for p in range(HW):
            s[p] = bias + coef * s[p]
        _ratio(ys, x[n, c], s, beta)


# Pixels per backward task: its (C, BWD_CHUNK) block of dy*y/scale (96 KiB for zf's 96
# channels in float32) stays in the core's L2 cache while the window sums read it.
BWD_CHUNK = 256


@threaded(SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _lrn_bwd(dy, x, scale, before, after, coef, beta, dx):
    N, C, HW = x.shape
    chunks = (HW + BWD_CHUNK - 1) // BWD_CHUNK
    for task in prange(N * chunks):
        n, p0 = task // chunks, (task % chunks) * BWD_CHUNK
        m = min(HW, p0 + BWD_CHUNK) - p0
        # t_j = dy_j*y_j/scale_j once per element of the block, for all channels, with y
        # recomputed as x/scale^beta: reading y would be a fifth array of memory traffic in a
        # kernel bound by it. Then c's sum reads the rows of c's mirrored window
        # [c-after, c+before], the channels j whose window contains c.
        t = np.empty((C, m), dtype=dx.dtype)
        for j in range(C):
            tj, sj, dyj = t[j], scale[n, j, p0:p0 + m], dy[n, j, p0:p0 + m]
            _ratio(tj, x[n, j, p0:p0 + m], sj, beta)
            for p in range(m):
                tj[p] *= dyj[p] / sj[p]
        acc = np.empty(m, dtype=dx.dtype)
        for c in range(C):
            acc[:] = 0
            for j in range(max(0, c - after), min(C, c + before + 1)):
                tj = t[j]
                for p in range(m):
                    acc[p] += tj[p]
            d, xs = dx[n, c, p0:p0 + m], x[n, c, p0:p0 + m]
            _ratio(d, dy[n, c, p0:p0 + m], scale[n, c, p0:p0 + m], beta)
            for p in range(m):
                d[p] -= coef * xs[p] * acc[p]


def _flat(a, dtype):
    """(N, C, H, W) -> contiguous (N, C, H*W) view/copy of dtype."""
    a = as_c(a, dtype)
    return a.reshape(a.shape[0], a.shape[1], -1)


@register("lrn_fwd", "numba")
@floats_only(reference.lrn_fwd)
def lrn_fwd(x, size: int, alpha: float, beta: float, bias: float):
    """x: (N, C, H, W) -> (y, scale), both (N, C, H, W); scale is kept for the backward."""
    before, after = lrn_window(size)
    check_lrn("lrn_fwd", x)
    dt = x.dtype
    xf = _flat(x, dt)
    y, scale = np.empty_like(xf), np.empty_like(xf)
    _lrn_fwd(xf.size, xf, before, after, scalar(alpha / size, dt), scalar(bias, dt), scalar(beta, dt),
             y, scale)
    return y.reshape(x.shape), scale.reshape(x.shape)


@register("lrn_bwd", "numba")
@floats_only(reference.lrn_bwd)
def lrn_bwd(dy, x, y, scale, size: int, alpha: float, beta: float):
    """Exact gradient of lrn_fwd. dy, x, y, scale: (N, C, H, W) -> dx: (N, C, H, W)."""
    before, after = lrn_window(size)
    check_lrn("lrn_bwd", dy, x, y, scale)
    dt = dy.dtype
    dyf, xf, sf = (_flat(a, dt) for a in (dy, x, scale))  # y is recomputed, not read
    dx = np.empty_like(dyf)
    _lrn_bwd(dyf.size, dyf, xf, sf, before, after, scalar(2.0 * alpha * beta / size, dt),
             scalar(beta, dt), dx)
    return dx.reshape(dy.shape)
