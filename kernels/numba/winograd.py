"""Numba kernels for the Winograd F(2x2, 3x3) transforms, same contracts as
:mod:`zfraw.ops.winograd`.

Siblings  reference zfraw/ops/winograd.py
          Numba     kernels/numba/winograd.py
          CUDA      none (the reference runs on CuPy arrays)
          cases     kernels/kernel_cases.py (WINOGRAD)
          benchmark ``python -m benchmarks.op winograd_input``  (or winograd_output,
                    winograd_filter, and the _adjoint of each)

What this version does differently from the NumPy reference:
- The 4x4 transforms are written out as the additions they are (B^T, G and A^T hold only 0,
  +-1 and +-1/2): no small matrix products, no padded copy of the input (taps outside the map
  read as zero), no 6-d strided views. For the filters this matters most: NumPy's G g G^T is
  F*C products of 4x3 matrices, as slow as the layer's 16 large products together (zf conv3,
  measured: 19 ms against 15).
- One (image, channel) plane per parallel task, its tiles in a loop; the input transform's
  adjoint adds each tile's 4x4 gradient straight into that plane (no atomics: a plane belongs
  to one task).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from zfraw.ops import winograd as reference
from zfraw.ops.conv import pads4
from zfraw.ops.registry import register

from ._util import as_c, floats_only, threaded

# Serial below this many values of the larger array (kernels/numba/_util.py): the transforms
# are a few adds per value, between a copy (im2col) and a sum (col2im); col2im's threshold.
SERIAL_BELOW = 1 << 20


@njit(cache=True, inline="always")
def _g(x0, x1, x2):
    """G (x0, x1, x2): the 4 values of one column (or row) of G g (in float64: one type, so
    the tuple can be indexed in a loop)."""
    return 1.0 * x0, 0.5 * (x0 + x1 + x2), 0.5 * (x0 - x1 + x2), 1.0 * x2


@njit(cache=True, inline="always")
def _gt(d0, d1, d2, d3):
    """G^T (d0, d1, d2, d3): the 3 values of one column (or row) of G^T du (float64)."""
    return d0 + 0.5 * (d1 + d2), 0.5 * (d1 - d2), 0.5 * (d1 + d2) + d3 * 1.0


@threaded(SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _filter(W, U):
    F, C = W.shape[:2]
    for f in prange(F):  # a filter's channels in turn: 16 sequential streams of writes
        for c in range(C):  # scalars only: an array per step would cost an allocation
            g = W[f, c]
            c0 = _g(g[0, 0], g[1, 0], g[2, 0])           # t = G g, by columns
            c1 = _g(g[0, 1], g[1, 1], g[2, 1])
            c2 = _g(g[0, 2], g[1, 2], g[2, 2])
            for a in range(4):                           # U = t G^T, by rows
                u = _g(c0[a], c1[a], c2[a])
                for b in range(4):
                    U[4 * a + b, f, c] = u[b]


@threaded(SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _filter_adjoint(dU, dW):
    F, C = dW.shape[:2]
    for f in prange(F):
        for c in range(C):
            s0 = _gt(dU[0, f, c], dU[4, f, c], dU[8, f, c], dU[12, f, c])  # s = G^T du, columns
            s1 = _gt(dU[1, f, c], dU[5, f, c], dU[9, f, c], dU[13, f, c])
            s2 = _gt(dU[2, f, c], dU[6, f, c], dU[10, f, c], dU[14, f, c])
            s3 = _gt(dU[3, f, c], dU[7, f, c], dU[11, f, c], dU[15, f, c])
            for i in range(3):                           # dW = s G, by rows
                w = _gt(s0[i], s1[i], s2[i], s3[i])
                for j in range(3):
                    dW[f, c, i, j] = w[j]


@threaded(SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _input(x, top, left, th, tw, V):
    N, C, H, W = x.shape
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        d = np.empty((4, 4), x.dtype)
        t = np.empty((4, 4), x.dtype)
        for i in range(th):
            for j in range(tw):
                y0, x0 = 2 * i - top, 2 * j - left
                for a in range(4):
                    for b in range(4):
                        yy, xx = y0 + a, x0 + b
                        d[a, b] = x[n, c, yy, xx] if 0 <= yy < H and 0 <= xx < W else 0.0
                for b in range(4):                       # t = B^T d (rows)
                    t[0, b] = d[0, b] - d[2, b]
                    t[1, b] = d[1, b] + d[2, b]
                    t[2, b] = d[2, b] - d[1, b]
                    t[3, b] = d[1, b] - d[3, b]
                tile = (n * th + i) * tw + j
                for a in range(4):                       # V = t B (columns)
                    V[4 * a + 0, c, tile] = t[a, 0] - t[a, 2]
                    V[4 * a + 1, c, tile] = t[a, 1] + t[a, 2]
                    V[4 * a + 2, c, tile] = t[a, 2] - t[a, 1]
                    V[4 * a + 3, c, tile] = t[a, 1] - t[a, 3]


@threaded(SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _input_adjoint(dV, top, left, th, tw, dx):
    N, C, H, W = dx.shape
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        g = np.empty((4, 4), dV.dtype)
        u = np.empty((4, 4), dV.dtype)
        for i in range(th):
            for j in range(tw):
                tile = (n * th + i) * tw + j
                for a in range(4):
                    for b in range(4):
                        g[a, b] = dV[4 * a + b, c, tile]
                for a in range(4):                       # u = g B^T (columns)
                    u[a, 0] = g[a, 0]
                    u[a, 1] = g[a, 1] - g[a, 2] + g[a, 3]
                    u[a, 2] = -g[a, 0] + g[a, 1] + g[a, 2]
                    u[a, 3] = -g[a, 3]
                y0, x0 = 2 * i - top, 2 * j - left
                for b in range(4):                       # B u (rows), added into the plane
                    col = (u[0, b], u[1, b] - u[2, b] + u[3, b], -u[0, b] + u[1, b] + u[2, b],
                           -u[3, b])
                    xx = x0 + b
                    if xx < 0 or xx >= W:
                        continue
                    for a in range(4):
                        yy = y0 + a
                        if 0 <= yy < H:
                            dx[n, c, yy, xx] += col[a]


@threaded(SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _output(M, th, tw, y):
    N, F, OH, OW = y.shape
    for nf in prange(N * F):
        n, f = nf // F, nf % F
        s = np.empty((2, 4), M.dtype)
        for i in range(th):
            for j in range(tw):
                tile = (n * th + i) * tw + j
                for b in range(4):                       # s = A^T m (rows)
                    m0, m1 = M[b, f, tile], M[4 + b, f, tile]
                    m2, m3 = M[8 + b, f, tile], M[12 + b, f, tile]
                    s[0, b] = m0 + m1 + m2
                    s[1, b] = m1 - m2 - m3
                for a in range(2):                       # Y = s A (columns), cropped
                    yy = 2 * i + a
                    if yy >= OH:
                        continue
                    y[n, f, yy, 2 * j] = s[a, 0] + s[a, 1] + s[a, 2]
                    if 2 * j + 1 < OW:
                        y[n, f, yy, 2 * j + 1] = s[a, 1] - s[a, 2] - s[a, 3]


@threaded(SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _output_adjoint(dy, th, tw, dM):
    N, F, OH, OW = dy.shape
    for nf in prange(N * F):
        n, f = nf // F, nf % F
        r = np.empty((4, 2), dy.dtype)
        for i in range(th):
            for j in range(tw):
                tile = (n * th + i) * tw + j
                for b in range(2):                       # r = A dY (rows; zeros past the edge)
                    xx = 2 * j + b
                    d0 = dy[n, f, 2 * i, xx] if xx < OW else 0.0
                    d1 = dy[n, f, 2 * i + 1, xx] if xx < OW and 2 * i + 1 < OH else 0.0
                    r[0, b], r[1, b], r[2, b], r[3, b] = d0, d0 + d1, d0 - d1, -d1
                for a in range(4):                       # dM = r A^T (columns)
                    c0, c1 = r[a, 0], r[a, 1]
                    dM[4 * a + 0, f, tile] = c0
                    dM[4 * a + 1, f, tile] = c0 + c1
                    dM[4 * a + 2, f, tile] = c0 - c1
                    dM[4 * a + 3, f, tile] = -c1


@register("winograd_filter", "numba")
@floats_only(reference.filter_transform)
def filter_transform(W):
    """U = G g G^T of every filter: W (F, C, 3, 3) -> U (16, F, C)."""
    W = as_c(W)
    U = np.empty((16,) + W.shape[:2], W.dtype)
    _filter(U.size, W, U)
    return U


@register("winograd_filter_adjoint", "numba")
@floats_only(reference.filter_transform_adjoint)
def filter_transform_adjoint(dU):
    """The filters' gradient from the transformed one: dU (16, F, C) -> dW (F, C, 3, 3)."""
    dU = as_c(dU)
    dW = np.empty(dU.shape[1:] + (3, 3), dU.dtype)
    _filter_adjoint(dU.size, dU, dW)
    return dW


@register("winograd_input", "numba")
@floats_only(reference.input_transform)
def input_transform(x, pad):
    """V = B^T d B of every 4x4 input tile: x (N, C, H, W) -> V (16, C, T)."""
    x = as_c(x)
    n, c, h, w = x.shape
    _, _, th, tw = reference.tile_grid(h, w, pad)
    top, left = pads4(pad)[:2]
    V = np.empty((16, c, n * th * tw), x.dtype)
    _input(V.size, x, top, left, th, tw, V)
    return V


@register("winograd_input_adjoint", "numba")
@floats_only(reference.input_transform_adjoint)
def input_transform_adjoint(dV, x_shape, pad):
    """dV (16, C, T) -> dx (N, C, H, W), the overlapping tiles' contributions added."""
    dV = as_c(dV)
    _, _, th, tw = reference.tile_grid(x_shape[2], x_shape[3], pad)
    top, left = pads4(pad)[:2]
    dx = np.zeros(tuple(x_shape), dV.dtype)
    _input_adjoint(dV.size, dV, top, left, th, tw, dx)
    return dx


@register("winograd_output", "numba")
@floats_only(reference.output_transform)
def output_transform(M, n: int, oh: int, ow: int):
    """Y = A^T m A of every tile, cropped: M (16, F, T) -> y (N, F, OH, OW)."""
    M = as_c(M)
    y = np.empty((n, M.shape[1], oh, ow), M.dtype)
    _output(M.size, M, -(-oh // 2), -(-ow // 2), y)
    return y


@register("winograd_output_adjoint", "numba")
@floats_only(reference.output_transform_adjoint)
def output_transform_adjoint(dy):
    """dy (N, F, OH, OW) -> dM (16, F, T) = A dY A^T of every 2x2 tile."""
    dy = as_c(dy)
    n, f, oh, ow = dy.shape
    th, tw = -(-oh // 2), -(-ow // 2)
    dM = np.empty((16, f, n * th * tw), dy.dtype)
    _output_adjoint(dM.size, dy, th, tw, dM)
    return dM
