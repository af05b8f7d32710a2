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


# Every parallel kernel also has a serial twin, and each call runs one or the other by its size
# (:class:`Threaded`). Waking the worker threads for a parallel loop costs about 0.1 ms per call
# on the 2-core VM (Numba's workqueue layer, kernels/numba/__init__.py; measured with the
# machine otherwise idle: a ReLU over 4,096 values 87 us in parallel, 0.4 us serial; over 2^20
# values 208 vs 64 us; over 2^22 665 vs 529 us), more than the whole work of most calls in the
# small nets the reproduction trains, which make about 70 kernel calls a step. Memory-bound
# kernels gain little from the second core, so they stay serial up to millions of values;
# compute-bound ones (pooling, LRN, col2im's sums) go parallel from tens of thousands.
# "parallel" or "serial" forces every call one way (the kernel tests check both twins).
FORCE: str | None = None


class Threaded:
    """A parallel Numba kernel and its serial twin: ``k(work, *args)`` runs the twin when
    ``work`` (the kernel's own measure of its size, stated where it is made) is below
    ``serial_below``, the parallel kernel otherwise. ``k.parallel`` and ``k.serial`` are the two
    compiled versions."""

    def __init__(self, kernel, serial_below: int):
        self.parallel, self.serial, self.serial_below = kernel, serial_twin(kernel), serial_below

    def __call__(self, work: int, *args):
        serial = FORCE == "serial" or (FORCE is None and work < self.serial_below)
        return (self.serial if serial else self.parallel)(*args)


def threaded(serial_below: int):
    """Decorator over ``@njit(parallel=True, cache=True)``: the kernel as a :class:`Threaded`."""
    return lambda kernel: Threaded(kernel, serial_below)


def serial_twin(kernel):
    """The same Numba kernel compiled without threads (its prange loops run as plain loops),
    for calls too small to pay for waking the worker threads (:class:`Threaded`).

    The twin is a copy of the kernel's Python function under its own name: Numba's on-disk
    cache files are named after the function, so the two compiled versions keep separate
    entries (two dispatchers of one function would share, and load each other's, code)."""
    import types

    from numba import njit

    py = kernel.py_func
    twin = types.FunctionType(py.__code__, py.__globals__, py.__name__ + "_serial",
                              py.__defaults__, py.__closure__)
    twin.__qualname__ = py.__qualname__ + "_serial"
    twin.__module__ = py.__module__
    twin.__doc__ = py.__doc__
    return njit(cache=True, nogil=True)(twin)
