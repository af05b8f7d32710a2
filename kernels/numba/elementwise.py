"""Numba ReLU forward/backward and the fused SGD-with-momentum update, same contracts as
:mod:`zfraw.ops.elementwise`.

Siblings  reference zfraw/ops/elementwise.py
          Numba     kernels/numba/elementwise.py  (no dropout_fwd: the reference runs)
          CUDA      kernels/cuda/elementwise.py (launchers), kernels/cuda/elementwise.cu
          cases     kernels/kernel_cases.py (RELU_SHAPES, DROPOUTS, SGD_CASES)
          benchmark ``python -m benchmarks.op relu_fwd``  (or relu_bwd, dropout_fwd, sgd_update)

What this version does differently from the NumPy reference:
- ReLU backward is one pass writing dy-or-0, instead of a boolean mask, a where() and a cast.
- sgd_update fuses the reference's four whole-array passes (decay, scale, subtract, add) into
  one read of param/grad/velocity and one write of param/velocity, split across the cores.
- All run over the flattened array in parallel chunks. dropout_fwd is not provided here: the
  registry falls back to the reference for it.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from zfraw.ops import elementwise as reference
from zfraw.ops.registry import register

from ._util import as_c, floats_only, scalar, threaded

# Serial below this many values (kernels/numba/_util.py): a pass over memory, which one core
# nearly saturates (ReLU over 2^22 values: 529 us serial, 665 us parallel on the 2-core VM).
SERIAL_BELOW = 1 << 23


@threaded(SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _relu_fwd(x, y):
    for p in prange(x.size):
        v = x[p]
        y[p] = 0 if v < 0 else v  # NaN passes through, as with np.maximum


@threaded(SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _relu_bwd(dy, y, dx):
    for p in prange(dy.size):
        dx[p] = dy[p] if y[p] > 0 else 0


@threaded(SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _sgd(param, grad, velocity, lr, momentum, weight_decay):
    for p in prange(param.size):
        v = momentum * velocity[p] - lr * (grad[p] + weight_decay * param[p])
        velocity[p] = v
        param[p] += v


@register("relu_fwd", "numba")
@floats_only(reference.relu_fwd)
def relu_fwd(x):
    """max(x, 0), elementwise; any shape. Also the deconvnet's rectification of the signal."""
    x = as_c(x)
    y = np.empty_like(x)
    _relu_fwd(x.size, x.reshape(-1), y.reshape(-1))
    return y


@register("relu_bwd", "numba")
@floats_only(reference.relu_bwd)
def relu_bwd(dy, y):
    """dy where the forward output y was positive, else 0; dy, y of the same shape."""
    if dy.shape != y.shape:
        raise ValueError(f"relu_bwd: dy {dy.shape} and y {y.shape} must have the same shape")
    dy = as_c(dy)
    dx = np.empty_like(dy)
    _relu_bwd(dy.size, dy.reshape(-1), as_c(y).reshape(-1), dx.reshape(-1))
    return dx


@register("sgd_update", "numba")
@floats_only(reference.sgd_update)
def sgd_update(param, grad, velocity, lr: float, momentum: float, weight_decay: float):
    """In place: v <- momentum*v - lr*(grad + weight_decay*param); param <- param + v.
    param, grad, velocity: arrays of one shape; returns None."""
    if not (param.shape == grad.shape == velocity.shape):
        raise ValueError(f"sgd_update: param {param.shape}, grad {grad.shape} and velocity "
                         f"{velocity.shape} must have the same shape")
    if not (param.flags.c_contiguous and velocity.flags.c_contiguous
            and velocity.dtype == param.dtype):
        # Updated in place, so they cannot be copied to a contiguous buffer; rare, use numpy.
        return reference.sgd_update(param, grad, velocity, lr, momentum, weight_decay)
    dt = param.dtype
    _sgd(param.size, param.reshape(-1), as_c(grad, dt).reshape(-1), velocity.reshape(-1),
         scalar(lr, dt), scalar(momentum, dt), scalar(weight_decay, dt))
