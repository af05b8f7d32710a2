"""Reference max pooling with switches, its backward, and unpooling.

Siblings  reference zfraw/ops/pool.py
          Numba     kernels/numba/pool.py
          CUDA      kernels/cuda/pool.py (launchers), kernels/cuda/pool.cu
          cases     kernels/kernel_cases.py (POOLS, POOL_VALUES, POOLS_ASYM_CEIL)
          benchmark ``python -m benchmarks.op maxpool_fwd``  (or maxpool_bwd)

The switch of an output is the position of the window's maximum as a row-major index
``i*k + j`` into the k x k window (uint8). One rule on every backend (numpy, numba, cuda):

- only real taps (inside the input) are candidates: a padding tap is never a switch, and
  neither is a tap of a window that runs past the padded input (``ceil_mode``);
- the switch is the first real maximum in row-major window order (a strict '>' against the
  running maximum, which starts at the window's first real tap);
- so when every real value of a window is -inf, the switch is its first real tap.

Geometry: ``pad`` is an int or (top, left, bottom, right) (ONNX's order, see zfraw/ops/conv.py);
window (oh, ow) starts at input row oh*stride - top, column ow*stride - left. ``ceil_mode``
rounds the output size up as Caffe and ONNX do (:func:`zfraw.ops.conv.conv_out_size`): the last
window may then run past the bottom/right padding, and still starts inside the input or the
top/left padding. Every window holds at least one real tap because each pad < k is required.
"""
from __future__ import annotations

from ..backend import get_array_module
from .conv import check_window, pad_spec, pads4
from .registry import register


def check_pool(x_shape, k: int, stride: int, pad, ceil_mode: bool = False):
    """Validate a pooling geometry; returns (OH, OW)."""
    if max(pads4(pad)) >= k:
        raise ValueError(f"maxpool: padding {pad_spec(pad)} must be smaller than the window {k}")
    if k * k > 255:
        raise ValueError(f"maxpool: window {k}x{k} too large for uint8 switches")
    return check_window(x_shape, k, k, stride, pad, "maxpool", ceil_mode)


def check_pool_bwd(dy_shape, switches_shape, x_shape, k: int, stride: int, pad,
                   ceil_mode: bool = False):
    """Validate maxpool_bwd's arguments against the pooled input's geometry; returns (OH, OW)."""
    OH, OW = check_pool(x_shape, k, stride, pad, ceil_mode)
    if (tuple(dy_shape) != tuple(switches_shape) or tuple(dy_shape[2:]) != (OH, OW)
            or tuple(dy_shape[:2]) != tuple(x_shape[:2])):
        raise ValueError(f"maxpool_bwd: dy {tuple(dy_shape)} / switches {tuple(switches_shape)} "
                         f"do not match input {tuple(x_shape)} pooled {k}/{stride} pad "
                         f"{pad_spec(pad)}{' ceil_mode' if ceil_mode else ''}")
    return OH, OW


def _covering_pads(H, W, k, stride, pad, OH, OW):
    """(top, left, bottom, right) padding that holds every window whole: the given pads, the
    bottom/right grown where a ceil_mode window runs past them."""
    t, l, b, r = pads4(pad)
    return (t, l, max(b, (OH - 1) * stride + k - H - t), max(r, (OW - 1) * stride + k - W - l))


@register("maxpool_fwd", "numpy")
def maxpool_fwd(x, k: int, stride: int, pad, ceil_mode: bool = False):
    """Max pooling. x: (N, C, H, W) float -> (y: (N, C, OH, OW), switches: (N, C, OH, OW) uint8).
    pad: an int or (top, left, bottom, right)."""
    xp = get_array_module(x)
    OH, OW = check_pool(x.shape, k, stride, pad, ceil_mode)
    H, W = x.shape[2:]
    t, l, b, r = pads = _covering_pads(H, W, k, stride, pad, OH, OW)
    padded = any(pads)
    xpad = x
    if padded:  # the fill value is never a candidate (the mask below), -inf only for clarity
        xpad = xp.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=-xp.inf)
        real = xp.zeros((H + t + b, W + l + r), dtype=bool)  # padded plane: True in the input
        real[t:t + H, l:l + W] = True

    def tap(a, i, j):  # the (.., OH, OW) values of every window at offset (i, j)
        return a[..., i:i + stride * OH:stride, j:j + stride * OW:stride]

    y = tap(xpad, 0, 0).copy()
    switches = xp.zeros(y.shape, dtype=xp.uint8)
    found = tap(real, 0, 0).copy() if padded else None  # (OH, OW): window has seen a real tap
    # Running maximum over the k*k window offsets; strict '>' keeps the first maximum.
    for i in range(k):
        for j in range(k):
            if i == 0 and j == 0:
                continue
            v = tap(xpad, i, j)
            better = v > y
            if padded:  # a real tap replaces a padding start; a padding tap replaces nothing
                rl = tap(real, i, j)
                better = rl & (better | ~found)
                found = found | rl
            y = xp.where(better, v, y)
            # where(), not a masked store: on CuPy a boolean-mask store syncs with the host.
            switches = xp.where(better, xp.uint8(i * k + j), switches)
    return y, switches


@register("maxpool_bwd", "numpy")
def maxpool_bwd(dy, switches, x_shape, k: int, stride: int, pad, ceil_mode: bool = False):
    """Route each dy to its switch; overlapping windows accumulate.
    dy, switches: (N, C, OH, OW) -> dx: (N, C, H, W). Also the deconvnet's unpooling."""
    xp = get_array_module(dy)
    OH, OW = check_pool_bwd(dy.shape, switches.shape, x_shape, k, stride, pad, ceil_mode)
    N, C, H, W = x_shape
    t, l, b, r = _covering_pads(H, W, k, stride, pad, OH, OW)
    dxpad = xp.zeros((N, C, H + t + b, W + l + r), dtype=dy.dtype)
    for i in range(k):
        for j in range(k):
            routed = xp.where(switches == i * k + j, dy, 0)
            dxpad[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride] += routed
    return dxpad[:, :, t:t + H, l:l + W]
