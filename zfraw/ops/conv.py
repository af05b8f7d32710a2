"""Reference im2col / col2im: convolution as a matrix product.

Layout (chosen so that a batched matmul with the (F, C*kh*kw) filter matrix gives the output
directly in (N, F, OH*OW) order, with no transpose):

    cols[n, (c*kh + i)*kw + j, oh*OW + ow] = xpad[n, c, oh*stride + i, ow*stride + j]

where xpad is x zero-padded by ``pad`` on each spatial side.
"""
from __future__ import annotations

from ..backend import get_array_module
from .registry import register


def conv_out_size(size: int, k: int, stride: int, pad: int) -> int:
    """Output length of a window of length ``k`` sliding with ``stride`` over ``size + 2*pad``."""
    return (size + 2 * pad - k) // stride + 1


def check_window(x_shape, kh: int, kw: int, stride: int, pad: int, what: str = "window"):
    """Validate a sliding-window geometry; returns (OH, OW) or raises a ValueError that names it."""
    if len(x_shape) != 4:
        raise ValueError(f"{what}: expected a 4-d input (N, C, H, W), got shape {tuple(x_shape)}")
    if kh < 1 or kw < 1 or stride < 1 or pad < 0:
        raise ValueError(f"{what}: bad geometry kernel=({kh},{kw}) stride={stride} pad={pad}")
    H, W = x_shape[2], x_shape[3]
    if H + 2 * pad < kh or W + 2 * pad < kw:
        raise ValueError(f"{what}: input {H}x{W} (padding {pad}) is smaller than the "
                         f"{kh}x{kw} kernel")
    return conv_out_size(H, kh, stride, pad), conv_out_size(W, kw, stride, pad)


def _pad(x, pad: int, value=0.0):
    xp = get_array_module(x)
    if pad == 0:
        return x
    return xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=value)


@register("im2col", "numpy")
def im2col(x, kh: int, kw: int, stride: int, pad: int):
    """Unfold sliding windows. x: (N, C, H, W) -> cols: (N, C*kh*kw, OH*OW), same dtype."""
    xp = get_array_module(x)
    OH, OW = check_window(x.shape, kh, kw, stride, pad, "im2col")
    N, C = x.shape[:2]
    xpad = xp.ascontiguousarray(_pad(x, pad))
    sN, sC, sH, sW = xpad.strides
    windows = xp.lib.stride_tricks.as_strided(
        xpad, shape=(N, C, kh, kw, OH, OW),
        strides=(sN, sC, sH, sW, sH * stride, sW * stride))
    return windows.reshape(N, C * kh * kw, OH * OW)  # reshape of a strided view: one copy


@register("col2im", "numpy")
def col2im(cols, x_shape, kh: int, kw: int, stride: int, pad: int):
    """Fold columns back, summing overlaps (the adjoint of im2col).
    cols: (N, C*kh*kw, OH*OW) -> (N, C, H, W)."""
    xp = get_array_module(cols)
    N, C, H, W = x_shape
    OH, OW = check_window(x_shape, kh, kw, stride, pad, "col2im")
    if cols.shape != (N, C * kh * kw, OH * OW):
        raise ValueError(f"col2im: cols shape {cols.shape} does not match input {tuple(x_shape)} "
                         f"with kernel {kh}x{kw}, stride {stride}, pad {pad}")
    cols6 = cols.reshape(N, C, kh, kw, OH, OW)
    xpad = xp.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=cols.dtype)
    # One vectorized add per kernel offset (kh*kw of them), never a loop over pixels.
    for i in range(kh):
        for j in range(kw):
            xpad[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride] += cols6[:, :, i, j]
    return xpad[:, :, pad:pad + H, pad:pad + W] if pad else xpad
