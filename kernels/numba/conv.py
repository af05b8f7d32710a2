"""Numba im2col / col2im, same contract as :mod:`zfraw.ops.conv`.

What this version does differently from the NumPy reference:
- im2col reads the unpadded input and writes zeros for out-of-image positions itself, so no
  padded copy of x is made; each output row segment is a strided gather from one input row.
  It is bound by writing the kh*kw times larger cols, so it gains little over NumPy's single
  strided copy; the conv layer's time is in its matrix products, not here.
- col2im accumulates straight into the unpadded output, skipping contributions that fall in
  the padding, instead of summing into a padded buffer and cropping it.
- Both run one (image, channel) plane per parallel task: tasks never write the same memory.
  The columns (K, N*P) are viewed as (K, N, P): a task's rows are cols[row, n], P values each.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from zfraw.ops import conv as reference
from zfraw.ops.conv import check_cols, check_window
from zfraw.ops.registry import register

from ._util import as_c, floats_only


@njit(cache=True)
def _valid_range(j, pad, stride, size, n_out):
    """[o0, o1): the outputs o with 0 <= o*stride + j - pad < size (the rest read padding)."""
    o0 = max(0, -((j - pad) // stride))          # ceil((pad - j) / stride), at least 0
    o1 = -((j - pad - size) // stride)           # ceil((size + pad - j) / stride)
    o1 = min(n_out, max(o0, o1))
    return min(o0, n_out), o1


@njit(parallel=True, cache=True)
def _im2col(x, kh, kw, stride, pad, OH, OW, cols):
    N, C, H, W = x.shape
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        for i in range(kh):
            for j in range(kw):
                dst = cols[(c * kh + i) * kw + j, n]
                for oh in range(OH):
                    h = oh * stride + i - pad
                    base = oh * OW
                    if h < 0 or h >= H:  # a row of padding
                        for ow in range(OW):
                            dst[base + ow] = 0
                    else:
                        src = x[n, c, h]
                        for ow in range(OW):
                            w = ow * stride + j - pad
                            dst[base + ow] = src[w] if w >= 0 and w < W else 0


@njit(parallel=True, cache=True)
def _col2im(cols, kh, kw, stride, pad, OH, OW, x):
    N, C, H, W = x.shape
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        plane = x[n, c]
        plane[:, :] = 0
        for i in range(kh):
            oh0, oh1 = _valid_range(i, pad, stride, H, OH)
            for j in range(kw):
                ow0, ow1 = _valid_range(j, pad, stride, W, OW)
                src = cols[(c * kh + i) * kw + j, n]
                for oh in range(oh0, oh1):
                    dst = plane[oh * stride + i - pad]
                    base = oh * OW
                    for ow in range(ow0, ow1):
                        dst[ow * stride + j - pad] += src[base + ow]


@register("im2col", "numba")
@floats_only(reference.im2col)
def im2col(x, kh: int, kw: int, stride: int, pad: int):
    """Unfold sliding windows. x: (N, C, H, W) -> cols: (C*kh*kw, N*OH*OW), same dtype."""
    OH, OW = check_window(x.shape, kh, kw, stride, pad, "im2col")
    x = as_c(x)
    N, C = x.shape[:2]
    cols = np.empty((C * kh * kw, N, OH * OW), dtype=x.dtype)
    _im2col(x, kh, kw, stride, pad, OH, OW, cols)
    return cols.reshape(C * kh * kw, N * OH * OW)


@register("col2im", "numba")
@floats_only(reference.col2im)
def col2im(cols, x_shape, kh: int, kw: int, stride: int, pad: int):
    """Fold columns back, summing overlaps (the adjoint of im2col).
    cols: (C*kh*kw, N*OH*OW) -> (N, C, H, W)."""
    N, C, H, W = x_shape
    OH, OW = check_cols(cols.shape, x_shape, kh, kw, stride, pad)
    cols = as_c(cols).reshape(C * kh * kw, N, OH * OW)
    x = np.empty((N, C, H, W), dtype=cols.dtype)
    _col2im(cols, kh, kw, stride, pad, OH, OW, x)
    return x
