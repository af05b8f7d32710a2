"""Reference im2col / col2im: convolution as a matrix product.

Layout: the batch joins the column axis, so that the forward, the weight gradient and the input
gradient of a convolution are each ONE matrix product over the whole batch:

    cols[(c*kh + i)*kw + j, (n*OH + oh)*OW + ow] = xpad[n, c, oh*stride + i, ow*stride + j]

where xpad is x zero-padded by ``pad`` on each spatial side. (A batch-major (N, K, P) layout
makes NumPy run N small products, and its weight gradient a non-BLAS loop: measured 5-8x slower
for zf's conv2 at batch 16 on a 2-core CPU.)
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


def check_cols(cols_shape, x_shape, kh: int, kw: int, stride: int, pad: int):
    """Raise unless cols_shape is im2col's (C*kh*kw, N*OH*OW) for this geometry; -> (OH, OW)."""
    N, C = x_shape[:2]
    OH, OW = check_window(x_shape, kh, kw, stride, pad, "col2im")
    if tuple(cols_shape) != (C * kh * kw, N * OH * OW):
        raise ValueError(f"col2im: cols shape {tuple(cols_shape)} does not match input "
                         f"{tuple(x_shape)} with kernel {kh}x{kw}, stride {stride}, pad {pad}")
    return OH, OW


def _pad(x, pad: int, value=0.0):
    xp = get_array_module(x)
    if pad == 0:
        return x
    return xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=value)


@register("im2col", "numpy")
def im2col(x, kh: int, kw: int, stride: int, pad: int):
    """Unfold sliding windows. x: (N, C, H, W) -> cols: (C*kh*kw, N*OH*OW), same dtype."""
    xp = get_array_module(x)
    OH, OW = check_window(x.shape, kh, kw, stride, pad, "im2col")
    N, C = x.shape[:2]
    xpad = xp.ascontiguousarray(_pad(x, pad))
    sN, sC, sH, sW = xpad.strides
    windows = xp.lib.stride_tricks.as_strided(
        xpad, shape=(C, kh, kw, N, OH, OW),
        strides=(sC, sH, sW, sN, sH * stride, sW * stride))
    return windows.reshape(C * kh * kw, N * OH * OW)  # reshape of a strided view: one copy


@register("col2im", "numpy")
def col2im(cols, x_shape, kh: int, kw: int, stride: int, pad: int):
    """Fold columns back, summing overlaps (the adjoint of im2col).
    cols: (C*kh*kw, N*OH*OW) -> (N, C, H, W)."""
    xp = get_array_module(cols)
    N, C, H, W = x_shape
    OH, OW = check_cols(cols.shape, x_shape, kh, kw, stride, pad)
    cols6 = cols.reshape(C, kh, kw, N, OH, OW).transpose(3, 0, 1, 2, 4, 5)  # a view
    xpad = xp.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=cols.dtype)
    # One vectorized add per kernel offset (kh*kw of them), never a loop over pixels.
    for i in range(kh):
        for j in range(kw):
            xpad[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride] += cols6[:, :, i, j]
    return xpad[:, :, pad:pad + H, pad:pad + W] if pad else xpad
