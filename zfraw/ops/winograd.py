"""Winograd's minimal filtering F(2x2, 3x3) for 3x3 stride-1 convolutions (Lavin and Gray,
"Fast Algorithms for Convolutional Neural Networks", 2015): the NumPy reference of its
transforms.

Siblings  reference zfraw/ops/winograd.py
          Numba     kernels/numba/winograd.py
          CUDA      none (the reference runs on CuPy arrays)
          cases     kernels/kernel_cases.py (WINOGRAD)
          benchmark ``python -m benchmarks.op winograd_input``  (or winograd_output,
                    winograd_filter, and the _adjoint of each)

A 2x2 output tile of a 3x3 correlation is Y = A^T [(G g G^T) * (B^T d B)] A, with d the 4x4
input tile that covers it, g the filter, * the elementwise product. Over a layer, the 16
elementwise products of every (filter, channel) pair become 16 matrix products,

    U[xi] (F, C) = transformed filters,  V[xi] (C, T) = transformed input tiles,
    M[xi] = U[xi] @ V[xi]  (F, T),       xi = 0..15, T = N * tiles per image,

so a 3x3 layer costs 16 products of (F, C) by (C, T) per 4 outputs instead of 9 * 4 multiply-
adds: 2.25x fewer, for three cheap transforms. Both gradients use the same products:
dV = U^T @ dM gives the input's (the transposes of the transforms scatter it back), and
dU = dM @ V^T the filters'. Tiles past the output's edge (odd sizes) read zero padding and are
cropped. Float32 error: the transforms' entries are 0, +-1 and +-1/2, so the result differs
from the direct sum only by rounding (tests/test_winograd.py states the measured error).

Layouts: input tiles V and output-gradient tiles dM are (16, C, T) / (16, F, T), the tile
index t = (n * TH + i) * TW + j over tile rows i and columns j.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from .conv import pads4
from .registry import register

# F(2x2, 3x3): B^T (4x4), G (4x3), A^T (2x4).
BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)


def tile_grid(h: int, w: int, pad) -> tuple:
    """(OH, OW, TH, TW) of a 3x3 stride-1 convolution of an h x w map with ``pad`` (int or
    (top, left, bottom, right)): the output size and the 2x2 tiles that cover it."""
    t, l, b, r = pads4(pad)
    oh, ow = h + t + b - 2, w + l + r - 2
    if oh < 1 or ow < 1:
        raise ValueError(f"winograd: a 3x3 window does not fit a {h}x{w} map padded {pad}")
    return oh, ow, -(-oh // 2), -(-ow // 2)


def _mat(m, dtype, xp):
    return xp.asarray(m, dtype=dtype)


@register("winograd_filter", "numpy")
def filter_transform(W):
    """U = G g G^T of every filter: W (F, C, 3, 3) -> U (16, F, C)."""
    xp = get_array_module(W)
    g = _mat(G, W.dtype, xp)
    u = g @ W @ g.T                                                   # (F, C, 4, 4)
    f, c = W.shape[:2]
    return xp.ascontiguousarray(u.transpose(2, 3, 0, 1)).reshape(16, f, c)


@register("winograd_filter_adjoint", "numpy")
def filter_transform_adjoint(dU):
    """The filters' gradient from the transformed one: dU (16, F, C) -> dW (F, C, 3, 3)."""
    xp = get_array_module(dU)
    g = _mat(G, dU.dtype, xp)
    f, c = dU.shape[1:]
    du = dU.reshape(4, 4, f, c).transpose(2, 3, 0, 1)                 # (F, C, 4, 4)
    return xp.ascontiguousarray(g.T @ du @ g)


@register("winograd_input", "numpy")
def input_transform(x, pad):
    """V = B^T d B of every 4x4 input tile: x (N, C, H, W) -> V (16, C, T)."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    oh, ow, th, tw = tile_grid(h, w, pad)
    top, left = pads4(pad)[:2]
    xpad = xp.zeros((n, c, 2 * th + 2, 2 * tw + 2), dtype=x.dtype)
    hh, ww = min(h, 2 * th + 2 - top), min(w, 2 * tw + 2 - left)
    xpad[:, :, top:top + hh, left:left + ww] = x[:, :, :hh, :ww]
    # d[n, c, i, j] = xpad[n, c, 2i:2i+4, 2j:2j+4]: a strided view, no copy.
    s = xpad.strides
    d = xp.lib.stride_tricks.as_strided(
        xpad, (n, c, th, tw, 4, 4), (s[0], s[1], 2 * s[2], 2 * s[3], s[2], s[3]))
    bt = _mat(BT, x.dtype, xp)
    v = bt @ d @ bt.T                                                 # (N, C, TH, TW, 4, 4)
    return xp.ascontiguousarray(v.transpose(4, 5, 1, 0, 2, 3)).reshape(16, c, n * th * tw)


@register("winograd_input_adjoint", "numpy")
def input_transform_adjoint(dV, x_shape, pad):
    """The input's gradient from the tiles' one: dV (16, C, T) -> dx (N, C, H, W); the
    overlapping tiles' contributions add up (the adjoint of :func:`input_transform`)."""
    xp = get_array_module(dV)
    n, c, h, w = x_shape
    oh, ow, th, tw = tile_grid(h, w, pad)
    top, left = pads4(pad)[:2]
    bt = _mat(BT, dV.dtype, xp)
    dv = dV.reshape(4, 4, c, n, th, tw).transpose(3, 2, 4, 5, 0, 1)   # (N, C, TH, TW, 4, 4)
    dd = bt.T @ dv @ bt                                               # the 4x4 tiles' gradients
    dxpad = xp.zeros((n, c, 2 * th + 2, 2 * tw + 2), dtype=dV.dtype)
    # Tile (i, j)'s 2x2 block (a, b) covers rows 2i + 2a + {0, 1}, columns 2j + 2b + {0, 1}:
    # for each block, all tiles together cover rows [2a, 2a + 2 TH) without overlap.
    for a in range(2):
        for b in range(2):
            blk = dd[:, :, :, :, 2 * a:2 * a + 2, 2 * b:2 * b + 2]    # (N, C, TH, TW, 2, 2)
            dxpad[:, :, 2 * a:2 * a + 2 * th, 2 * b:2 * b + 2 * tw] += \
                blk.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, 2 * th, 2 * tw)
    hh, ww = min(h, 2 * th + 2 - top), min(w, 2 * tw + 2 - left)
    dx = xp.zeros(x_shape, dtype=dV.dtype)
    dx[:, :, :hh, :ww] = dxpad[:, :, top:top + hh, left:left + ww]
    return dx


@register("winograd_output", "numpy")
def output_transform(M, n: int, oh: int, ow: int):
    """Y = A^T m A of every tile, cropped to the output: M (16, F, T) -> y (N, F, OH, OW)."""
    xp = get_array_module(M)
    f = M.shape[1]
    th, tw = -(-oh // 2), -(-ow // 2)
    at = _mat(AT, M.dtype, xp)
    m = M.reshape(4, 4, f, n, th, tw).transpose(3, 2, 4, 5, 0, 1)     # (N, F, TH, TW, 4, 4)
    y = (at @ m @ at.T).transpose(0, 1, 2, 4, 3, 5).reshape(n, f, 2 * th, 2 * tw)
    return xp.ascontiguousarray(y[:, :, :oh, :ow])


@register("winograd_output_adjoint", "numpy")
def output_transform_adjoint(dy):
    """The tiles' gradient from the output's: dy (N, F, OH, OW) -> dM (16, F, T) = A dY A^T of
    every 2x2 tile (zeros past the edge); the adjoint of :func:`output_transform`."""
    xp = get_array_module(dy)
    n, f, oh, ow = dy.shape
    th, tw = -(-oh // 2), -(-ow // 2)
    dpad = xp.zeros((n, f, 2 * th, 2 * tw), dtype=dy.dtype)
    dpad[:, :, :oh, :ow] = dy
    t = dpad.reshape(n, f, th, 2, tw, 2).transpose(0, 1, 2, 4, 3, 5)  # (N, F, TH, TW, 2, 2)
    at = _mat(AT, dy.dtype, xp)
    m = at.T @ t @ at                                                 # (N, F, TH, TW, 4, 4)
    return xp.ascontiguousarray(m.transpose(4, 5, 1, 0, 2, 3)).reshape(16, f, n * th * tw)
