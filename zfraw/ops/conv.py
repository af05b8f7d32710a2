"""Reference im2col / col2im: convolution as a matrix product.

Siblings  reference zfraw/ops/conv.py
          Numba     kernels/numba/conv.py
          CUDA      kernels/cuda/conv.py (launchers), kernels/cuda/conv.cu
          cases     kernels/kernel_cases.py (WINDOWS)
          benchmark ``python -m benchmarks.op im2col``  (or col2im)

Layout: the batch joins the column axis, so that the forward, the weight gradient and the input
gradient of a convolution are each ONE matrix product over the whole batch:

    cols[(c*kh + i)*kw + j, (n*OH + oh)*OW + ow] = xpad[n, c, oh*stride + i, ow*stride + j]

where xpad is x zero-padded by ``pad``. (A batch-major (N, K, P) layout makes NumPy run N small
products, and its weight gradient a non-BLAS loop: measured 5-8x slower for zf's conv2 at batch
16 on a 2-core CPU.)

Padding: ``pad`` is an int (the same on every side) or a 4-tuple ``(top, left, bottom, right)``,
ONNX's ``pads`` order [x1_begin, x2_begin, x1_end, x2_end]. Only the top and left pads move the
windows (window (oh, ow) starts at input row oh*stride - top, column ow*stride - left); the
bottom and right pads only decide how many windows fit. So every kernel takes (top, left) and
the output size, and an asymmetric pad costs nothing over a symmetric one.

Channel groups (grouped convolution) need nothing here: the rows of group g's channels are the
contiguous block [g*C/G*kh*kw, (g+1)*C/G*kh*kw) of cols, so the conv layer does its products
per group over row slices of the same columns (zfraw/layers/conv.py).
"""
from __future__ import annotations

import operator

from ..backend import get_array_module
from .registry import register


def pads4(pad) -> tuple[int, int, int, int]:
    """``pad`` (an int, or (top, left, bottom, right)) as the 4-tuple (top, left, bottom, right)."""
    try:
        if not isinstance(pad, (tuple, list)):
            p = operator.index(pad)
            return p, p, p, p
        pads = tuple(operator.index(v) for v in pad)
    except TypeError:
        raise ValueError(f"pad must be an int or (top, left, bottom, right), got {pad!r}") from None
    if len(pads) != 4:
        raise ValueError(f"pad must be an int or (top, left, bottom, right), got {pad!r}")
    return pads


def pad_spec(pad):
    """``pad`` in its plainest form: an int when the four sides agree, else the 4-tuple."""
    t, l, b, r = pads4(pad)
    return t if t == l == b == r else (t, l, b, r)


def conv_out_size(size: int, k: int, stride: int, pad: int, pad_end: int | None = None,
                  ceil_mode: bool = False) -> int:
    """Output length of a window of length ``k`` sliding with ``stride`` over ``size`` padded by
    ``pad`` before and ``pad_end`` (default ``pad``) after. ``ceil_mode`` rounds up, as Caffe and
    ONNX do, keeping only windows that start inside the input or the leading padding."""
    pad_end = pad if pad_end is None else pad_end
    span = size + pad + pad_end - k
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + pad:  # the last window would start in the trailing padding
        out -= 1
    return out


def check_window(x_shape, kh: int, kw: int, stride: int, pad, what: str = "window",
                 ceil_mode: bool = False):
    """Validate a sliding-window geometry; returns (OH, OW) or raises a ValueError that names it.
    ``pad``: an int or (top, left, bottom, right)."""
    if len(x_shape) != 4:
        raise ValueError(f"{what}: expected a 4-d input (N, C, H, W), got shape {tuple(x_shape)}")
    t, l, b, r = pads4(pad)
    if kh < 1 or kw < 1 or stride < 1 or min(t, l, b, r) < 0:
        raise ValueError(f"{what}: bad geometry kernel=({kh},{kw}) stride={stride} "
                         f"pad={pad_spec(pad)}")
    H, W = x_shape[2], x_shape[3]
    if H + t + b < kh or W + l + r < kw:
        raise ValueError(f"{what}: input {H}x{W} (padding {pad_spec(pad)}) is smaller than the "
                         f"{kh}x{kw} kernel")
    return (conv_out_size(H, kh, stride, t, b, ceil_mode),
            conv_out_size(W, kw, stride, l, r, ceil_mode))


def check_cols(cols_shape, x_shape, kh: int, kw: int, stride: int, pad):
    """Raise unless cols_shape is im2col's (C*kh*kw, N*OH*OW) for this geometry; -> (OH, OW)."""
    N, C = x_shape[:2]
    OH, OW = check_window(x_shape, kh, kw, stride, pad, "col2im")
    if tuple(cols_shape) != (C * kh * kw, N * OH * OW):
        raise ValueError(f"col2im: cols shape {tuple(cols_shape)} does not match input "
                         f"{tuple(x_shape)} with kernel {kh}x{kw}, stride {stride}, "
                         f"pad {pad_spec(pad)}")
    return OH, OW


def _pad(x, pads, value=0.0):
    """x padded by pads = (top, left, bottom, right) with ``value``."""
    xp = get_array_module(x)
    t, l, b, r = pads
    if not any(pads):
        return x
    return xp.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


@register("im2col", "numpy")
def im2col(x, kh: int, kw: int, stride: int, pad):
    """Unfold sliding windows. x: (N, C, H, W) -> cols: (C*kh*kw, N*OH*OW), same dtype.
    pad: an int or (top, left, bottom, right)."""
    xp = get_array_module(x)
    OH, OW = check_window(x.shape, kh, kw, stride, pad, "im2col")
    N, C = x.shape[:2]
    xpad = xp.ascontiguousarray(_pad(x, pads4(pad)))
    sN, sC, sH, sW = xpad.strides
    windows = xp.lib.stride_tricks.as_strided(
        xpad, shape=(C, kh, kw, N, OH, OW),
        strides=(sC, sH, sW, sN, sH * stride, sW * stride))
    return windows.reshape(C * kh * kw, N * OH * OW)  # reshape of a strided view: one copy


@register("col2im", "numpy")
def col2im(cols, x_shape, kh: int, kw: int, stride: int, pad):
    """Fold columns back, summing overlaps (the adjoint of im2col).
    cols: (C*kh*kw, N*OH*OW) -> (N, C, H, W). pad: an int or (top, left, bottom, right)."""
    xp = get_array_module(cols)
    N, C, H, W = x_shape
    OH, OW = check_cols(cols.shape, x_shape, kh, kw, stride, pad)
    t, l, b, r = pads4(pad)
    cols6 = cols.reshape(C, kh, kw, N, OH, OW).transpose(3, 0, 1, 2, 4, 5)  # a view
    xpad = xp.zeros((N, C, H + t + b, W + l + r), dtype=cols.dtype)
    # One vectorized add per kernel offset (kh*kw of them), never a loop over pixels.
    for i in range(kh):
        for j in range(kw):
            xpad[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride] += cols6[:, :, i, j]
    return xpad[:, :, t:t + H, l:l + W] if any((t, l, b, r)) else xpad
