"""Boundary helpers shared by the Numba kernel wrappers."""
from __future__ import annotations

import numpy as np


def as_c(x, dtype=None) -> np.ndarray:
    """x as a C-contiguous NumPy array (a copy only when x is strided or of another dtype): the
    kernels index planes as dense rows, so every wrapper passes its inputs through here."""
    return np.ascontiguousarray(x, dtype=dtype)


def scalar(value, dtype):
    """A Python number as a NumPy scalar of the array's dtype, so float32 kernels stay in float32
    arithmetic (a Python float would promote every product to float64 inside the kernel)."""
    return np.dtype(dtype).type(value)
