"""Reference average pooling and its backward (= the deconvnet's rule for it), ONNX's
AveragePool.

Siblings  reference zfraw/ops/avgpool.py
          Numba     kernels/numba/avgpool.py
          CUDA      kernels/cuda/avgpool.py (launchers), kernels/cuda/avgpool.cu
          cases     kernels/kernel_cases.py (AVGPOOLS)
          benchmark ``python -m benchmarks.op avgpool_fwd``  (or avgpool_bwd)

Geometry as max pooling's (zfraw/ops/pool.py): a kh x kw window sliding with one ``stride``,
``pad`` an int or (top, left, bottom, right), window (oh, ow) starting at input row
oh*stride - top, column ow*stride - left; ``ceil_mode`` rounds the output size up (the last
window may run past the bottom/right padding). Each pad must be smaller than the window, so
every window holds at least one input pixel. Global average pooling is the window the size of
the map: kh = H, kw = W, stride 1, no padding.

    y[oh, ow] = (sum of x over the window's taps inside the input) / divisor[oh, ow]

The divisor, as ONNX (and onnxruntime, and PyTorch) define it:

- ``count_include_pad=False`` (ONNX's default): the number of taps inside the input;
- ``count_include_pad=True`` (PyTorch's default, written into every file it exports): the
  number of taps inside the padded input, rows [h0, min(h0 + kh, H + bottom)) times columns
  [w0, min(w0 + kw, W + right)): padding counts, but the part of a ceil_mode window that runs
  past the padded input does not. Without ceil_mode that is kh*kw for every window.

The backward (and the deconvnet's projection through the layer, the same linear map
transposed) spreads each dy[oh, ow] / divisor[oh, ow] evenly over its window's taps inside the
input; overlapping windows add up.
"""
from __future__ import annotations

from ..backend import get_array_module
from .conv import check_window, pad_spec, pads4
from .registry import register


def check_avgpool(x_shape, kh: int, kw: int, stride: int, pad, ceil_mode: bool = False):
    """Validate an average-pooling geometry; returns (OH, OW)."""
    t, l, b, r = pads4(pad)
    if max(t, b) >= kh or max(l, r) >= kw:
        raise ValueError(f"avgpool: padding {pad_spec(pad)} must be smaller than the window "
                         f"{kh}x{kw}")
    return check_window(x_shape, kh, kw, stride, pad, "avgpool", ceil_mode)


def check_avgpool_bwd(dy_shape, x_shape, kh: int, kw: int, stride: int, pad,
                      ceil_mode: bool = False):
    """Validate avgpool_bwd's arguments against the pooled input's geometry; returns (OH, OW)."""
    OH, OW = check_avgpool(x_shape, kh, kw, stride, pad, ceil_mode)
    if tuple(dy_shape) != (x_shape[0], x_shape[1], OH, OW):
        raise ValueError(f"avgpool_bwd: dy {tuple(dy_shape)} does not match input "
                         f"{tuple(x_shape)} pooled {kh}x{kw}/{stride} pad {pad_spec(pad)}"
                         f"{' ceil_mode' if ceil_mode else ''}")
    return OH, OW


def _counts(xp, size: int, k: int, stride: int, pad_begin: int, pad_end: int, n_out: int,
            count_include_pad: bool):
    """Per output along one axis, the number of taps the divisor counts: those inside the input
    [0, size), or with ``count_include_pad`` inside the padded input [-pad_begin, size +
    pad_end). -> (n_out,) int array."""
    start = xp.arange(n_out) * stride - pad_begin
    if count_include_pad:
        return xp.minimum(start + k, size + pad_end) - start
    return xp.minimum(start + k, size) - xp.maximum(start, 0)


def avgpool_counts(xp, x_shape, kh: int, kw: int, stride: int, pad, OH: int, OW: int,
                   count_include_pad: bool):
    """(rows (OH,), columns (OW,)) int: the divisor of output (oh, ow) is rows[oh] *
    columns[ow] (module docstring)."""
    H, W = x_shape[2], x_shape[3]
    t, l, b, r = pads4(pad)
    return (_counts(xp, H, kh, stride, t, b, OH, count_include_pad),
            _counts(xp, W, kw, stride, l, r, OW, count_include_pad))


def avgpool_divisors(xp, x_shape, kh: int, kw: int, stride: int, pad, OH: int, OW: int,
                     count_include_pad: bool):
    """The divisor of every output window, (OH, OW) int."""
    rows, cols = avgpool_counts(xp, x_shape, kh, kw, stride, pad, OH, OW, count_include_pad)
    return rows[:, None] * cols[None, :]


def _covering_pads(H, W, kh, kw, stride, pad, OH, OW):
    """(top, left, bottom, right) padding that holds every window whole (the given pads, the
    bottom/right grown where a ceil_mode window runs past them)."""
    t, l, b, r = pads4(pad)
    return (t, l, max(b, (OH - 1) * stride + kh - H - t), max(r, (OW - 1) * stride + kw - W - l))


@register("avgpool_fwd", "numpy")
def avgpool_fwd(x, kh: int, kw: int, stride: int, pad, ceil_mode: bool = False,
                count_include_pad: bool = False):
    """Average pooling. x: (N, C, H, W) float -> y: (N, C, OH, OW). pad: an int or (top, left,
    bottom, right)."""
    xp = get_array_module(x)
    OH, OW = check_avgpool(x.shape, kh, kw, stride, pad, ceil_mode)
    H, W = x.shape[2:]
    t, l, b, r = _covering_pads(H, W, kh, kw, stride, pad, OH, OW)
    xpad = xp.pad(x, ((0, 0), (0, 0), (t, b), (l, r))) if any((t, l, b, r)) else x
    y = xp.zeros(x.shape[:2] + (OH, OW), dtype=x.dtype)
    # One whole-tensor add per window offset; the zeros of the padding add nothing.
    for i in range(kh):
        for j in range(kw):
            y += xpad[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride]
    div = avgpool_divisors(xp, x.shape, kh, kw, stride, pad, OH, OW, count_include_pad)
    return y / div.astype(x.dtype)


@register("avgpool_bwd", "numpy")
def avgpool_bwd(dy, x_shape, kh: int, kw: int, stride: int, pad, ceil_mode: bool = False,
                count_include_pad: bool = False):
    """The gradient of avgpool_fwd: each dy / its divisor spread over its window's taps inside
    the input, overlaps summed. dy: (N, C, OH, OW) -> dx: (N, C, H, W). Also the deconvnet's
    projection through average pooling."""
    xp = get_array_module(dy)
    OH, OW = check_avgpool_bwd(dy.shape, x_shape, kh, kw, stride, pad, ceil_mode)
    N, C, H, W = x_shape
    t, l, b, r = _covering_pads(H, W, kh, kw, stride, pad, OH, OW)
    share = dy / avgpool_divisors(xp, x_shape, kh, kw, stride, pad, OH, OW,
                                  count_include_pad).astype(dy.dtype)
    dxpad = xp.zeros((N, C, H + t + b, W + l + r), dtype=dy.dtype)
    for i in range(kh):
        for j in range(kw):
            dxpad[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride] += share
    return dxpad[:, :, t:t + H, l:l + W]
