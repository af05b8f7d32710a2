"""Reference ReLU (also the deconvnet's rectification), dropout and the fused momentum update.

Siblings  reference zfraw/ops/elementwise.py
          Numba     kernels/numba/elementwise.py  (no dropout_fwd: the reference runs)
          CUDA      kernels/cuda/elementwise.py (launchers), kernels/cuda/elementwise.cu
          cases     kernels/kernel_cases.py (RELU_SHAPES, DROPOUTS, SGD_CASES)
          benchmark ``python -m benchmarks.op relu_fwd``  (or relu_bwd, dropout_fwd, sgd_update)
"""
from __future__ import annotations

from ..backend import get_array_module
from .registry import register


@register("relu_fwd", "numpy")
def relu_fwd(x):
    """max(x, 0), elementwise; any shape. Also the deconvnet's rectification of the signal."""
    xp = get_array_module(x)
    return xp.maximum(x, 0)


@register("relu_bwd", "numpy")
def relu_bwd(dy, y):
    """dy where the forward output y was positive, else 0; dy, y of the same shape."""
    xp = get_array_module(dy)
    return xp.where(y > 0, dy, 0).astype(dy.dtype, copy=False)


def _hash_uniform(n: int, seed: int, xp):
    """n uniform floats in [0, 1) from a counter-based hash of (index, seed).

    The same function is written in the CUDA kernel, so a dropout mask depends only on the
    seed, never on the backend: (index + seed*0x9E3779B9) through Wellons' 'lowbias32'.
    """
    h = xp.arange(n, dtype=xp.uint32) + xp.uint32((seed * 0x9E3779B9) & 0xFFFFFFFF)
    h ^= h >> xp.uint32(16)
    h *= xp.uint32(0x7FEB352D)
    h ^= h >> xp.uint32(15)
    h *= xp.uint32(0x846CA68B)
    h ^= h >> xp.uint32(16)
    return (h >> xp.uint32(8)).astype(xp.float32) * xp.float32(1.0 / (1 << 24))


def check_dropout_p(p: float) -> None:
    """Raise unless the drop probability p is in [0, 1)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")


@register("dropout_fwd", "numpy")
def dropout_fwd(x, p: float, seed: int):
    """Inverted dropout: keep each element with probability 1-p and scale it by 1/(1-p).
    x: any shape -> (y, mask), mask the per-element multiplier (0 or 1/(1-p)), x's dtype."""
    xp = get_array_module(x)
    check_dropout_p(p)
    keep = _hash_uniform(x.size, seed, xp).reshape(x.shape) >= xp.float32(p)
    mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
    return x * mask, mask


@register("sgd_update", "numpy")
def sgd_update(param, grad, velocity, lr: float, momentum: float, weight_decay: float):
    """In place: v <- momentum*v - lr*(grad + weight_decay*param); param <- param + v.
    param, grad, velocity: arrays of one shape; returns None."""
    step = grad + weight_decay * param if weight_decay else grad
    velocity *= momentum
    velocity -= lr * step
    param += velocity
