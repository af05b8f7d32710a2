"""Numba average pooling and its backward (= the deconvnet's rule for average pooling), same
contract and divisors as :mod:`zfraw.ops.avgpool`.

Siblings  reference zfraw/ops/avgpool.py
          Numba     kernels/numba/avgpool.py
          CUDA      kernels/cuda/avgpool.py (launchers), kernels/cuda/avgpool.cu
          cases     kernels/kernel_cases.py (AVGPOOLS)
          benchmark ``python -m benchmarks.op avgpool_fwd``  (or avgpool_bwd)

What this version does differently from the NumPy reference:
- One pass per output: its window is clipped to the image and summed in registers, row-major,
  instead of kh*kw whole-tensor adds over a zero-padded copy. The divisors are the reference's
  (``avgpool_counts``: one count per output row and one per output column, in the array's
  dtype), so both divide by the same numbers.
- The backward reads each dy once, divides it by its window's divisor once and adds the share
  to the window's input pixels, instead of kh*kw passes over the whole tensor.
- One (image, channel) plane per parallel task, so the backward's overlapping windows add up
  without atomics.
- Padding enters only as the top and left pads (where windows start) and the output size, so
  asymmetric pads and ceil_mode run the same code.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from zfraw.ops import avgpool as reference
from zfraw.ops.avgpool import avgpool_counts, check_avgpool, check_avgpool_bwd
from zfraw.ops.conv import pads4
from zfraw.ops.registry import register

from ._util import as_c, floats_only, scalar, threaded
from .pool import SERIAL_BELOW  # pooling's, measured on max pooling


@threaded(SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _avgpool_fwd(x, kh, kw, stride, pt, pl, rows, cols, zero, y):
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        plane, y_nc = x[n, c], y[n, c]
        for oh in range(OH):
            h0 = oh * stride - pt
            i0, i1 = max(h0, 0), min(h0 + kh, H)
            for ow in range(OW):
                w0 = ow * stride - pl
                j0, j1 = max(w0, 0), min(w0 + kw, W)
                acc = zero
                for i in range(i0, i1):
                    for j in range(j0, j1):
                        acc += plane[i, j]
                y_nc[oh, ow] = acc / (rows[oh] * cols[ow])


@threaded(SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _avgpool_bwd(dy, kh, kw, stride, pt, pl, rows, cols, dx):
    N, C, H, W = dx.shape
    OH, OW = dy.shape[2], dy.shape[3]
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        plane, dy_nc = dx[n, c], dy[n, c]
        plane[:, :] = 0
        for oh in range(OH):
            h0 = oh * stride - pt
            i0, i1 = max(h0, 0), min(h0 + kh, H)
            for ow in range(OW):
                w0 = ow * stride - pl
                j0, j1 = max(w0, 0), min(w0 + kw, W)
                share = dy_nc[oh, ow] / (rows[oh] * cols[ow])
                for i in range(i0, i1):
                    for j in range(j0, j1):
                        plane[i, j] += share


def _divisor_counts(x_shape, kh, kw, stride, pad, OH, OW, count_include_pad, dtype):
    """The reference's (rows (OH,), columns (OW,)) divisor counts in ``dtype`` (small integers:
    exact), so the kernels divide in the array's precision."""
    rows, cols = avgpool_counts(np, x_shape, kh, kw, stride, pad, OH, OW, count_include_pad)
    return rows.astype(dtype), cols.astype(dtype)


@register("avgpool_fwd", "numba")
@floats_only(reference.avgpool_fwd)
def avgpool_fwd(x, kh: int, kw: int, stride: int, pad, ceil_mode: bool = False,
                count_include_pad: bool = False):
    """Average pooling. x: (N, C, H, W) float -> y: (N, C, OH, OW). pad: an int or (top, left,
    bottom, right)."""
    OH, OW = check_avgpool(x.shape, kh, kw, stride, pad, ceil_mode)
    x = as_c(x)
    y = np.empty(x.shape[:2] + (OH, OW), dtype=x.dtype)
    rows, cols = _divisor_counts(x.shape, kh, kw, stride, pad, OH, OW, count_include_pad,
                                 x.dtype)
    _avgpool_fwd(x.size, x, kh, kw, stride, *pads4(pad)[:2], rows, cols, scalar(0, x.dtype), y)
    return y


@register("avgpool_bwd", "numba")
@floats_only(reference.avgpool_bwd)
def avgpool_bwd(dy, x_shape, kh: int, kw: int, stride: int, pad, ceil_mode: bool = False,
                count_include_pad: bool = False):
    """The gradient of avgpool_fwd: each dy / its divisor spread over its window's taps inside
    the input, overlaps summed. dy: (N, C, OH, OW) -> dx: (N, C, H, W). Also the deconvnet's
    projection through average pooling."""
    OH, OW = check_avgpool_bwd(dy.shape, x_shape, kh, kw, stride, pad, ceil_mode)
    dy = as_c(dy)
    dx = np.empty(tuple(int(s) for s in x_shape), dtype=dy.dtype)
    rows, cols = _divisor_counts(x_shape, kh, kw, stride, pad, OH, OW, count_include_pad,
                                 dy.dtype)
    _avgpool_bwd(dx.size, dy, kh, kw, stride, *pads4(pad)[:2], rows, cols, dx)
    return dx
