"""Reference max pooling with switches, its backward, and unpooling.

The switch of an output is the position of the window's maximum as a row-major index
``i*k + j`` into the k x k window (uint8). One rule on every backend (numpy, numba, cuda):

- only real taps (inside the input) are candidates: a padding tap is never a switch;
- the switch is the first real maximum in row-major window order (a strict '>' against the
  running maximum, which starts at the window's first real tap);
- so when every real value of a window is -inf, the switch is its first real tap.

Every window holds at least one real tap because pad < k is required.
"""
from __future__ import annotations

from ..backend import get_array_module
from .conv import check_window
from .registry import register


def check_pool(x_shape, k: int, stride: int, pad: int):
    """Validate a pooling geometry; returns (OH, OW)."""
    if pad >= k:
        raise ValueError(f"maxpool: padding {pad} must be smaller than the window {k}")
    if k * k > 255:
        raise ValueError(f"maxpool: window {k}x{k} too large for uint8 switches")
    return check_window(x_shape, k, k, stride, pad, "maxpool")


def check_pool_bwd(dy_shape, switches_shape, x_shape, k: int, stride: int, pad: int):
    """Validate maxpool_bwd's arguments against the pooled input's geometry; returns (OH, OW)."""
    OH, OW = check_pool(x_shape, k, stride, pad)
    if (tuple(dy_shape) != tuple(switches_shape) or tuple(dy_shape[2:]) != (OH, OW)
            or tuple(dy_shape[:2]) != tuple(x_shape[:2])):
        raise ValueError(f"maxpool_bwd: dy {tuple(dy_shape)} / switches {tuple(switches_shape)} "
                         f"do not match input {tuple(x_shape)} pooled {k}/{stride} pad {pad}")
    return OH, OW


@register("maxpool_fwd", "numpy")
def maxpool_fwd(x, k: int, stride: int, pad: int):
    """Max pooling. x: (N, C, H, W) float -> (y: (N, C, OH, OW), switches: (N, C, OH, OW) uint8)."""
    xp = get_array_module(x)
    OH, OW = check_pool(x.shape, k, stride, pad)
    H, W = x.shape[2:]
    xpad = x
    if pad:  # the fill value is never a candidate (the mask below), -inf only for clarity
        xpad = xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-xp.inf)
        real = xp.zeros((H + 2 * pad, W + 2 * pad), dtype=bool)  # padded plane: True in the input
        real[pad:pad + H, pad:pad + W] = True

    def tap(a, i, j):  # the (.., OH, OW) values of every window at offset (i, j)
        return a[..., i:i + stride * OH:stride, j:j + stride * OW:stride]

    y = tap(xpad, 0, 0).copy()
    switches = xp.zeros(y.shape, dtype=xp.uint8)
    found = tap(real, 0, 0).copy() if pad else None  # (OH, OW): window has seen a real tap
    # Running maximum over the k*k window offsets; strict '>' keeps the first maximum.
    for i in range(k):
        for j in range(k):
            if i == 0 and j == 0:
                continue
            v = tap(xpad, i, j)
            better = v > y
            if pad:  # a real tap replaces a padding start; a padding tap replaces nothing
                r = tap(real, i, j)
                better = r & (better | ~found)
                found = found | r
            y = xp.where(better, v, y)
            # where(), not a masked store: on CuPy a boolean-mask store syncs with the host.
            switches = xp.where(better, xp.uint8(i * k + j), switches)
    return y, switches


@register("maxpool_bwd", "numpy")
def maxpool_bwd(dy, switches, x_shape, k: int, stride: int, pad: int):
    """Route each dy to its switch; overlapping windows accumulate.
    dy, switches: (N, C, OH, OW) -> dx: (N, C, H, W). Also the deconvnet's unpooling."""
    xp = get_array_module(dy)
    OH, OW = check_pool_bwd(dy.shape, switches.shape, x_shape, k, stride, pad)
    N, C, H, W = x_shape
    dxpad = xp.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=dy.dtype)
    for i in range(k):
        for j in range(k):
            routed = xp.where(switches == i * k + j, dy, 0)
            dxpad[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride] += routed
    return dxpad[:, :, pad:pad + H, pad:pad + W] if pad else dxpad
