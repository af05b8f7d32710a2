"""TF32 for the float32 matrix products of the GPU path (cupy.matmul, i.e. cuBLAS): off by
default, an explicit option. The raw kernels of this package never use tensor cores."""
from __future__ import annotations

import importlib
import os

import numpy as np

from zfraw import backend


def _cupy_linalg():
    """CuPy's module that holds the matmul compute type (not public API; see set_tf32)."""
    backend.cupy_module()  # a clear error when there is no usable GPU
    return importlib.import_module("cupy._core._routines_linalg")


def set_tf32(enabled: bool) -> None:
    """Allow (True) or forbid (False, the default) TF32 tensor-core math in float32 matrix
    products on the GPU: inputs rounded to 10 mantissa bits, float32 accumulation.

    Sets CuPy's documented ``CUPY_TF32`` environment variable. CuPy reads it only at the first
    float32 matmul of the process, so the compute type is also set directly through
    ``cupy._core._routines_linalg.set_compute_type`` (not public API), which makes the switch
    take effect at any time. float64 products are never affected."""
    os.environ["CUPY_TF32"] = "1" if enabled else "0"
    if backend.cuda_available():
        linalg = _cupy_linalg()
        linalg.set_compute_type(np.float32, linalg.COMPUTE_TYPE_TF32 if enabled
                                else linalg.COMPUTE_TYPE_DEFAULT)


def tf32_enabled() -> bool:
    """True when float32 matrix products on the GPU may use TF32 (for logs and benchmarks)."""
    if not backend.cuda_available():
        return False
    linalg = _cupy_linalg()
    return linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_TF32
