"""Boundary helpers shared by the Numba kernel wrappers."""
from __future__ import annotations

import functools

import numpy as np

KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_c(x, dtype=None) -> np.ndarray:
    """x as a C-contiguous NumPy array (a copy only when x is strided or of another dtype): the
    kernels index planes as dense rows, so every wrapper passes its inputs through here."""
    return np.ascontiguousarray(x, dtype=dtype)


def scalar(value, dtype):
    """A Python number as a NumPy scalar of the array's dtype, so float32 kernels stay in float32
    arithmetic (a Python float would promote every product to float64 inside the kernel)."""
    return np.dtype(dtype).type(value)


def floats_only(reference):
    """Decorator for a kernel wrapper: when its first argument is not float32/float64 (an
    integer or float16 array), call the NumPy ``reference`` instead, which defines the result
    for those dtypes; the kernels are compiled for the two float types only."""
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(first, *args, **kwargs):
            if np.asarray(first).dtype not in KERNEL_DTYPES:
                return reference(first, *args, **kwargs)
            return fn(first, *args, **kwargs)
        return wrapper
    return deco
