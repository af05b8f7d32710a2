"""Launchers for kernels/cuda/elementwise.cu: ReLU, dropout and the fused momentum SGD update
on CuPy arrays (impl 'cuda'). Same signatures as zfraw/ops/elementwise.py; dropout masks are
bit-identical to the reference's for a given seed.

Siblings  reference zfraw/ops/elementwise.py
          Numba     kernels/numba/elementwise.py  (no dropout_fwd: the reference runs)
          CUDA      kernels/cuda/elementwise.py (launchers), kernels/cuda/elementwise.cu
          cases     kernels/kernel_cases.py (RELU_SHAPES, DROPOUTS, SGD_CASES)
          benchmark ``python -m benchmarks.op relu_fwd``  (or relu_bwd, dropout_fwd, sgd_update)
"""
from __future__ import annotations

import numpy as np

from zfraw.backend import get_array_module
from zfraw.ops.elementwise import check_dropout_p
from zfraw.ops.registry import register

from . import _loader


@register("relu_fwd", "cuda")
def relu_fwd(x):
    """max(x, 0), elementwise; any shape. Also the deconvnet's rectification of the signal."""
    xp = get_array_module(x)
    x = xp.ascontiguousarray(x)
    y = xp.empty_like(x)
    _loader.launch_1d("elementwise", "relu_fwd", x.dtype, x.size, (x, y) + _loader.i64(x.size))
    return y


@register("relu_bwd", "cuda")
def relu_bwd(dy, y):
    """dy where the forward output y was positive, else 0; dy, y of the same shape."""
    xp = get_array_module(dy)
    if dy.shape != y.shape:
        raise ValueError(f"relu_bwd: dy {dy.shape} and y {y.shape} must have one shape")
    dy = xp.ascontiguousarray(dy)
    y = xp.ascontiguousarray(y, dtype=dy.dtype)
    dx = xp.empty_like(dy)
    _loader.launch_1d("elementwise", "relu_bwd", dy.dtype, dy.size,
                      (dy, y, dx) + _loader.i64(dy.size))
    return dx


@register("dropout_fwd", "cuda")
def dropout_fwd(x, p: float, seed: int):
    """Inverted dropout: keep each element with probability 1-p and scale it by 1/(1-p).
    x: any shape -> (y, mask), mask the per-element multiplier (0 or 1/(1-p)), x's dtype."""
    xp = get_array_module(x)
    check_dropout_p(p)
    x = xp.ascontiguousarray(x)
    y = xp.empty_like(x)
    mask = xp.empty_like(x)
    # As the reference: the seed enters the hash as (seed * golden ratio) mod 2^32, the uniform
    # float32 is compared with p rounded to float32, and kept values are scaled in x's dtype.
    seed_offset = np.uint32((int(seed) * 0x9E3779B9) & 0xFFFFFFFF)
    keep_scale = x.dtype.type(1.0 / (1.0 - p))
    _loader.launch_1d("elementwise", "dropout_fwd", x.dtype, x.size,
                      (x, y, mask) + _loader.i64(x.size)
                      + (np.float32(p), keep_scale, seed_offset))
    return y, mask


@register("sgd_update", "cuda")
def sgd_update(param, grad, velocity, lr: float, momentum: float, weight_decay: float):
    """In place: v <- momentum*v - lr*(grad + weight_decay*param); param <- param + v.
    param, grad, velocity: arrays of one shape; returns None. param and velocity must be
    C-contiguous (they are updated in place, so they cannot be copied)."""
    xp = get_array_module(param)
    if not param.shape == grad.shape == velocity.shape:
        raise ValueError(f"sgd_update: param {param.shape}, grad {grad.shape} and velocity "
                         f"{velocity.shape} must have one shape")
    if velocity.dtype != param.dtype:
        raise ValueError(f"sgd_update: velocity {velocity.dtype} and param {param.dtype} "
                         f"must have one dtype")
    if not (param.flags.c_contiguous and velocity.flags.c_contiguous):
        raise ValueError("sgd_update (cuda): param and velocity must be C-contiguous, "
                         "since they are updated in place")
    grad = xp.ascontiguousarray(grad, dtype=param.dtype)
    T = param.dtype.type
    _loader.launch_1d("elementwise", "sgd_update", param.dtype, param.size,
                      (param, grad, velocity) + _loader.i64(param.size)
                      + (T(lr), T(momentum), T(weight_decay)))
