"""Numba im2col / col2im, same contract as :mod:`zfraw.ops.conv`.

Siblings  reference zfraw/ops/conv.py
          Numba     kernels/numba/conv.py
          CUDA      kernels/cuda/conv.py (launchers), kernels/cuda/conv.cu
          cases     kernels/kernel_cases.py (WINDOWS)
          benchmark ``python -m benchmarks.op im2col``  (or col2im)

What this version does differently from the NumPy reference:
- im2col at stride 1 reads the unpadded input and writes zeros for out-of-image positions
  itself, so no padded copy of x is made; each output row segment is a run of one input row.
  One row of the columns (a channel and window offset, every image) per parallel task, so each
  task writes one contiguous run of N*P values. The variant ``numba:planes`` runs one
  (image, channel) plane per task instead, writing kh*kw runs of P values far apart: 1.2-1.6x
  slower on zf's and zf-64's layers and on the occlusion patches (zf-64 conv2 at batch 64: 39.7
  vs 25.2 ms), faster only on small-channel, large-map shapes (measured on the 2-core VM).
- col2im sums each window offset's row of columns into one of stride*stride "phase" planes of
  the padded image as a contiguous block (the compiler vectorizes the adds), then interleaves
  the phases back into the image, dropping the padding. Adding straight into the image instead
  is a strided scatter: that direct form is kept as the variant ``numba:scatter`` (the
  benchmarks time both; it was 1.2-3.7x slower, zf-64 conv2 at batch 64: 34 vs 21 ms).
- col2im runs one channel, all its images, per parallel task: tasks never write the same
  memory, and each makes its phase planes once (one (image, channel) plane per task, each
  allocating its own, was 1.2-2.7x slower on zf-32's, zf-64's and zf's layers). The columns
  (K, N*P) are viewed as (K, N, P): a task's rows are cols[row, n], P values each.
- im2col at stride > 1 splits each plane into the same phase planes first, so that every
  window offset's taps for an output row are one contiguous run (a strided gather otherwise:
  1.1-2.2x slower on zf-64's conv2, zf's conv1-2 and alexnet-64s4's conv1).
- Padding enters as the top and left pads (pt, pl) and the output size: an asymmetric
  (top, left, bottom, right) pad runs the same code as a symmetric one.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from zfraw.ops import conv as reference
from zfraw.ops.conv import check_cols, check_window, pads4
from zfraw.ops.registry import register

from ._util import as_c, floats_only, threaded

# Serial below this many column values (kernels/numba/_util.py), measured on the 2-core VM on
# the conv layers of zf-32, zf-64 and zf: im2col is a copy, which one core nearly saturates
# below a few million values (zf-64 at quarter width conv4, 1.8M: 0.45 ms serial, 0.56 ms
# parallel; at half width conv3, 4.7M: 1.34 vs 1.41; conv4, 7.1M: 2.45 vs 1.27); col2im's
# sums gain from the second core from about half a million (zf-32 at quarter width conv3,
# 0.3M: 0.45 vs 0.47 ms; zf-64 at quarter width conv3, 1.2M: 1.56 vs 0.88).
IM2COL_SERIAL_BELOW = 1 << 22
COL2IM_SERIAL_BELOW = 1 << 19


@njit(cache=True, inline="always")
def _unfold_plane(x, n, c, i, j, stride, pt, pl, OH, OW, dst):
    """dst (OH*OW,) = window offset (i, j) of image n, channel c: its OH x OW taps, zero where
    they fall in the padding."""
    H, W = x.shape[2:]
    for oh in range(OH):
        h = oh * stride + i - pt
        base = oh * OW
        if h < 0 or h >= H:  # a row of padding
            for ow in range(OW):
                dst[base + ow] = 0
        else:
            src = x[n, c, h]
            for ow in range(OW):
                w = ow * stride + j - pl
                dst[base + ow] = src[w] if w >= 0 and w < W else 0


@threaded(IM2COL_SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _im2col(x, kh, kw, stride, pt, pl, OH, OW, cols):
    N, C = x.shape[:2]
    for row in prange(C * kh * kw):  # one row of the columns, all images, per task
        c, i, j = row // (kh * kw), (row // kw) % kh, row % kw
        for n in range(N):
            _unfold_plane(x, n, c, i, j, stride, pt, pl, OH, OW, cols[row, n])


@threaded(IM2COL_SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _im2col_planes(x, kh, kw, stride, pt, pl, OH, OW, cols):
    """im2col with one (image, channel) plane per parallel task (the variant numba:planes)."""
    N, C = x.shape[:2]
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        for i in range(kh):
            for j in range(kw):
                _unfold_plane(x, n, c, i, j, stride, pt, pl, OH, OW,
                              cols[(c * kh + i) * kw + j, n])


@threaded(IM2COL_SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _im2col_phases(x, kh, kw, stride, pt, pl, OH, OW, cols):
    """im2col for stride > 1: each (image, channel) plane is first split, padding included,
    into stride*stride phase planes (phase (a, b) holds the padded pixels (hp, wp) with
    hp % stride == a and wp % stride == b), where window offset (i, j)'s taps for one output
    row are one contiguous run: phase (i % stride, j % stride), row oh + i // stride, columns
    j // stride onwards. One channel, all images, per task."""
    N, C, H, W = x.shape
    PH = (max(H + pt, (OH - 1) * stride + kh) + stride - 1) // stride
    PW = (max(W + pl, (OW - 1) * stride + kw) + stride - 1) // stride
    for c in prange(C):
        phases = np.zeros((stride, stride, PH, PW), dtype=x.dtype)
        for n in range(N):
            plane = x[n, c]
            for h in range(H):
                hp = h + pt
                dst = phases[hp % stride, :, hp // stride]
                for w in range(W):
                    wp = w + pl
                    dst[wp % stride, wp // stride] = plane[h, w]
            for i in range(kh):
                for j in range(kw):
                    src, di, dj = phases[i % stride, j % stride], i // stride, j // stride
                    out = cols[(c * kh + i) * kw + j, n]
                    for oh in range(OH):
                        row, base = src[oh + di], oh * OW
                        for ow in range(OW):  # contiguous on both sides: vectorized
                            out[base + ow] = row[dj + ow]


@threaded(COL2IM_SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _col2im(cols, kh, kw, stride, pt, pl, OH, OW, x):
    N, C, H, W = x.shape
    # The padded plane split into stride*stride phase planes: padded pixel (hp, wp) lives in
    # phase (hp % stride, wp % stride) at (hp // stride, wp // stride). Window offset (i, j)
    # of output (oh, ow) reads padded pixel (oh*stride + i, ow*stride + j), which is phase
    # (i % stride, j % stride) at (oh + i // stride, ow + j // stride): one contiguous block.
    # A phase plane holds every padded pixel a window reads and every image pixel.
    PH = (max(H + pt, (OH - 1) * stride + kh) + stride - 1) // stride
    PW = (max(W + pl, (OW - 1) * stride + kw) + stride - 1) // stride
    for c in prange(C):  # one channel, all images, per task: its phase planes made once
        phases = np.empty((stride, stride, PH, PW), dtype=x.dtype)
        for n in range(N):
            phases[:] = 0
            for i in range(kh):
                di = i // stride
                for j in range(kw):
                    dst, dj = phases[i % stride, j % stride], j // stride
                    src = cols[(c * kh + i) * kw + j, n]
                    for oh in range(OH):
                        row, base = dst[oh + di], oh * OW
                        for ow in range(OW):  # contiguous on both sides: vectorized
                            row[dj + ow] += src[base + ow]
            plane = x[n, c]  # interleave the phases back, dropping the padding
            for h in range(H):
                hp = h + pt
                prow = phases[hp % stride, :, hp // stride]
                for w in range(W):
                    wp = w + pl
                    plane[h, w] = prow[wp % stride, wp // stride]


@threaded(COL2IM_SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _col2im_scatter(cols, kh, kw, stride, pt, pl, OH, OW, x):
    """col2im's direct form: each column value added straight into its image pixel."""
    N, C, H, W = x.shape
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        plane = x[n, c]
        plane[:, :] = 0
        for i in range(kh):
            for j in range(kw):
                src = cols[(c * kh + i) * kw + j, n]
                for oh in range(OH):
                    h = oh * stride + i - pt
                    if h < 0 or h >= H:
                        continue
                    for ow in range(OW):
                        w = ow * stride + j - pl
                        if w >= 0 and w < W:
                            plane[h, w] += src[oh * OW + ow]


@register("im2col", "numba")
@floats_only(reference.im2col)
def im2col(x, kh: int, kw: int, stride: int, pad):
    """Unfold sliding windows. x: (N, C, H, W) -> cols: (C*kh*kw, N*OH*OW), same dtype.
    pad: an int or (top, left, bottom, right)."""
    return _unfold(_im2col if stride == 1 else _im2col_phases, x, kh, kw, stride, pad)


def _unfold(kernel, x, kh, kw, stride, pad):
    """Check the window and run one of the im2col kernels into new (C*kh*kw, N*OH*OW) columns."""
    OH, OW = check_window(x.shape, kh, kw, stride, pad, "im2col")
    x = as_c(x)
    N, C = x.shape[:2]
    cols = np.empty((C * kh * kw, N, OH * OW), dtype=x.dtype)
    pt, pl = pads4(pad)[:2]
    kernel(cols.size, x, kh, kw, stride, pt, pl, OH, OW, cols)
    return cols.reshape(C * kh * kw, N * OH * OW)


@register("im2col", "numba:planes")
@floats_only(reference.im2col)
def im2col_planes(x, kh: int, kw: int, stride: int, pad):
    """im2col with one (image, channel) plane per parallel task.
    x: (N, C, H, W) -> cols: (C*kh*kw, N*OH*OW)."""
    return _unfold(_im2col_planes, x, kh, kw, stride, pad)


@register("col2im", "numba")
@floats_only(reference.col2im)
def col2im(cols, x_shape, kh: int, kw: int, stride: int, pad):
    """Fold columns back, summing overlaps (the adjoint of im2col).
    cols: (C*kh*kw, N*OH*OW) -> (N, C, H, W)."""
    return _fold(_col2im, cols, x_shape, kh, kw, stride, pad)


@register("col2im", "numba:scatter")
@floats_only(reference.col2im)
def col2im_scatter(cols, x_shape, kh: int, kw: int, stride: int, pad):
    """col2im by adding each column value into its pixel (strided scatter), the direct form.
    cols: (C*kh*kw, N*OH*OW) -> (N, C, H, W)."""
    return _fold(_col2im_scatter, cols, x_shape, kh, kw, stride, pad)


def _fold(kernel, cols, x_shape, kh, kw, stride, pad):
    """Check the shapes and run one of the col2im kernels into a new (N, C, H, W) array."""
    N, C, H, W = x_shape
    OH, OW = check_cols(cols.shape, x_shape, kh, kw, stride, pad)
    cols = as_c(cols).reshape(C * kh * kw, N, OH * OW)
    x = np.empty((N, C, H, W), dtype=cols.dtype)
    pt, pl = pads4(pad)[:2]
    kernel(cols.size, cols, kh, kw, stride, pt, pl, OH, OW, x)
    return x
