"""Reference local response normalization across channels (ONNX definition).

Siblings  reference zfraw/ops/lrn.py
          Numba     kernels/numba/lrn.py
          CUDA      kernels/cuda/lrn.py (launchers), kernels/cuda/lrn.cu
          cases     kernels/kernel_cases.py (LRNS)
          benchmark ``python -m benchmarks.op lrn_fwd``  (or lrn_bwd)

    scale[n,c,h,w] = bias + alpha/size * sum_{c' in win(c)} x[n,c',h,w]^2
    y = x * scale^(-beta)

with win(c) = [c - floor((size-1)/2), c + ceil((size-1)/2)] clipped to the channels.
"""
from __future__ import annotations

from .registry import register


def _channel_window_sum(a, before: int, after: int):
    """s[:, c] = sum of a[:, c-before .. c+after] (clipped). a: (N, C, H, W)."""
    C = a.shape[1]
    s = a.copy()
    for d in range(1, min(before, C - 1) + 1):  # `size` shifted adds, vectorized over the rest
        s[:, d:] += a[:, :C - d]
    for d in range(1, min(after, C - 1) + 1):
        s[:, :C - d] += a[:, d:]
    return s


def check_lrn(name: str, *arrays):
    """Raise unless every array is 4-d (N, C, H, W) and all share one shape."""
    shape = tuple(arrays[0].shape)
    if len(shape) != 4:
        raise ValueError(f"{name}: expected a 4-d input (N, C, H, W), got shape {shape}")
    for a in arrays[1:]:
        if tuple(a.shape) != shape:
            raise ValueError(f"{name}: all inputs must have shape {shape}, got {tuple(a.shape)}")


def lrn_window(size: int):
    """(channels before, channels after) of the ONNX window of ``size`` channels."""
    if size < 1:
        raise ValueError(f"lrn: size must be >= 1, got {size}")
    return (size - 1) // 2, size // 2


@register("lrn_fwd", "numpy")
def lrn_fwd(x, size: int, alpha: float, beta: float, bias: float):
    """x: (N, C, H, W) -> (y, scale), both (N, C, H, W); scale is kept for the backward."""
    before, after = lrn_window(size)
    check_lrn("lrn_fwd", x)
    scale = _channel_window_sum(x * x, before, after)
    scale *= alpha / size
    scale += bias
    y = x * scale ** (-beta)
    return y, scale


@register("lrn_bwd", "numpy")
def lrn_bwd(dy, x, y, scale, size: int, alpha: float, beta: float):
    """Exact gradient of lrn_fwd. dy, x, y, scale: (N, C, H, W) -> dx: (N, C, H, W).

    dx_c = dy_c * scale_c^-beta - 2*alpha*beta/size * x_c * sum_{j: c in win(j)} dy_j*y_j/scale_j
    and c is in win(j) exactly when j is in the mirrored window [c - after, c + before].
    """
    before, after = lrn_window(size)
    check_lrn("lrn_bwd", dy, x, y, scale)
    t = dy * y / scale
    acc = _channel_window_sum(t, after, before)
    return dy * scale ** (-beta) - (2.0 * alpha * beta / size) * x * acc
