"""Numba local response normalization across channels, same contract (ONNX window) as
:mod:`zfraw.ops.lrn`.

What this version does differently from the NumPy reference:
- The window sum is accumulated straight into the ``scale`` output, one (image, channel)
  plane per parallel task, from the <= ``size`` neighbouring input planes (no x*x temporary,
  no shifted copies); the inner loops run along the contiguous H*W axis and vectorise.
- scale^-beta uses two square roots when beta == 0.75 (the paper's value):
  s^0.75 = sqrt(s*sqrt(s)), which vectorises, where pow() is a scalar libm call; the test on
  beta is hoisted out of the element loops (see _add_ratio).
- The backward is one pass per plane: the mirrored window sum of dy*y/scale (recomputed from
  the <= ``size`` neighbouring planes, no temporary tensor), then dx.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from zfraw.ops import lrn as reference
from zfraw.ops.lrn import check_lrn, lrn_window
from zfraw.ops.registry import register

from ._util import as_c, floats_only, scalar


@njit(cache=True, inline="always")
def _add_ratio(out, a, s, beta):
    """out += a / s**beta along one plane. The beta test sits outside the loops, so each loop
    vectorises (a test inside the loop kept LLVM from it: 5x slower, measured); beta == 0.75
    (the paper's value) takes s^0.75 = sqrt(s*sqrt(s)), two vector square roots instead of a
    scalar pow() call per element."""
    if beta == 0.75:
        for p in range(out.size):
            out[p] += a[p] / np.sqrt(s[p] * np.sqrt(s[p]))
    else:
        for p in range(out.size):
            out[p] += a[p] / s[p] ** beta


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
        ys[:] = 0
        _add_ratio(ys, x[n, c], s, beta)


@njit(parallel=True, cache=True)
def _lrn_bwd(dy, x, y, scale, before, after, coef, beta, dx):
    N, C, HW = x.shape
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        d = dx[n, c]
        # c is in the window of j exactly when j is in the mirrored window [c-after, c+before];
        # t_j = dy_j*y_j/scale_j is recomputed per window (cheap, vectorised) rather than stored.
        d[:] = 0
        for j in range(max(0, c - after), min(C, c + before + 1)):
            dyj, yj, sj = dy[n, j], y[n, j], scale[n, j]
            for p in range(HW):
                d[p] += dyj[p] * yj[p] / sj[p]
        xs = x[n, c]
        for p in range(HW):
            d[p] = -coef * xs[p] * d[p]
        _add_ratio(d, dy[n, c], scale[n, c], beta)


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
    _lrn_fwd(xf, before, after, scalar(alpha / size, dt), scalar(bias, dt), scalar(beta, dt),
             y, scale)
    return y.reshape(x.shape), scale.reshape(x.shape)


@register("lrn_bwd", "numba")
@floats_only(reference.lrn_bwd)
def lrn_bwd(dy, x, y, scale, size: int, alpha: float, beta: float):
    """Exact gradient of lrn_fwd. dy, x, y, scale: (N, C, H, W) -> dx: (N, C, H, W)."""
    before, after = lrn_window(size)
    check_lrn("lrn_bwd", dy, x, y, scale)
    dt = dy.dtype
    dyf, xf, yf, sf = (_flat(a, dt) for a in (dy, x, y, scale))
    dx = np.empty_like(dyf)
    _lrn_bwd(dyf, xf, yf, sf, before, after, scalar(2.0 * alpha * beta / size, dt),
             scalar(beta, dt), dx)
    return dx.reshape(dy.shape)
