"""Loads the kernels of kernels/cuda/*.cu with CuPy and picks launch configurations.

Each ``.cu`` file is compiled once per process (``cupy.RawModule``, which also keeps CuPy's
on-disk cache), and its ``extern "C"`` kernels are looked up by name, with a dtype suffix:
``maxpool_fwd_f32`` / ``maxpool_fwd_f64``. CuPy is only touched when a kernel is first asked
for, so the launcher modules import (and register) on a machine without a GPU.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from zfraw import backend

SOURCE_DIR = Path(__file__).resolve().parent
THREADS = 256  # threads per block for the one-thread-per-element kernels
MAX_BLOCKS = 65535 * 8  # the kernels loop with a grid stride, so the grid may be capped
_INCLUDE = re.compile(r'^#include "([\w.]+\.cuh)"$', re.MULTILINE)
_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


@functools.lru_cache(maxsize=None)
def _module(stem: str):
    """The compiled module of kernels/cuda/<stem>.cu (once per process)."""
    cupy = backend.cupy_module()
    return cupy.RawModule(code=source(stem), options=("-std=c++17",))


def source(stem: str) -> str:
    """The text of kernels/cuda/<stem>.cu with its ``#include "x.cuh"`` lines replaced by those
    files, so the compile cache, keyed on this text, notices a change in a shared header."""
    text = (SOURCE_DIR / f"{stem}.cu").read_text()
    return _INCLUDE.sub(lambda m: (SOURCE_DIR / m.group(1)).read_text(), text)


@functools.lru_cache(maxsize=None)
def kernel(stem: str, name: str):
    """The kernel ``name`` of kernels/cuda/<stem>.cu, callable as ``k(grid, block, args)``."""
    return _module(stem).get_function(name)


def suffix(dtype, op: str) -> str:
    """'f32' or 'f64', the name suffix of a kernel instantiated for ``dtype``."""
    try:
        return _SUFFIX[np.dtype(dtype)]
    except KeyError:
        raise TypeError(f"{op} (cuda): only float32 and float64 are supported, "
                        f"got {np.dtype(dtype)}") from None


def grid_1d(total: int) -> tuple[int]:
    """Grid for ``total`` elements at THREADS per block (at least one block)."""
    return (max(1, min((total + THREADS - 1) // THREADS, MAX_BLOCKS)),)


def launch_1d(stem: str, op: str, dtype, total: int, args: tuple) -> None:
    """Run kernel ``<op>_f32`` or ``<op>_f64`` (after ``dtype``) of <stem>.cu with one thread per
    element of ``total`` (the kernels loop with a grid stride)."""
    kernel(stem, f"{op}_{suffix(dtype, op)}")(grid_1d(total), (THREADS,), args)


def i64(*values) -> tuple:
    """Sizes as int64 scalars: the kernels take ``long long``, and CuPy passes a scalar with
    exactly the width of its NumPy type."""
    return tuple(np.int64(v) for v in values)
