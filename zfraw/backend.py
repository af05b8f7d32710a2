"""The one place that chooses the array module and moves arrays between host and device.

Nothing else in zfraw imports cupy directly. CuPy is optional: without it (or without a GPU)
only the ``cpu`` device exists and everything runs on NumPy.

Usage inside an op::

    xp = get_array_module(x)      # numpy or cupy, following the array
    y = xp.maximum(x, 0)
"""
from __future__ import annotations

import numpy as np

DEVICES = ("cpu", "cuda")

_cupy_error: Exception | None = None  # why CuPy is unusable, shown when 'cuda' is asked for
try:  # CuPy is optional; a broken install (no driver, no GPU) counts as absent.
    import cupy as _cupy

    _cupy.cuda.runtime.getDeviceCount()
except Exception as e:  # noqa: BLE001 - any failure means "no usable GPU"
    _cupy, _cupy_error = None, e


def cuda_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    return _cupy is not None


def cuda_unavailable_reason() -> str | None:
    """Why device 'cuda' is unusable here (CuPy's import or device-count error), or None."""
    if _cupy is not None:
        return None
    if _cupy_error is None:
        return "CuPy is not usable"
    return f"{type(_cupy_error).__name__}: {_cupy_error}"


def cupy_module():
    """The cupy module; raises a clear error, with CuPy's own, when there is no usable GPU."""
    if _cupy is None:
        raise RuntimeError(f"device 'cuda' needs CuPy and an NVIDIA GPU, and they are not usable "
                           f"here ({cuda_unavailable_reason()}); install cupy-cuda12x with a "
                           f"working driver, or use --device cpu")
    return _cupy


def check_device(device: str) -> str:
    """Validate a device name ('cpu' or 'cuda') and return it."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "cuda":
        cupy_module()
    return device


def xp_for(device: str):
    """The array module for a device name: numpy for 'cpu', cupy for 'cuda'."""
    return np if check_device(device) == "cpu" else cupy_module()


def get_array_module(*arrays):
    """numpy or cupy, following the arrays given (Chainer's idiom). Non-arrays are ignored."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


def device_of(x) -> str:
    """'cuda' for a cupy array, 'cpu' otherwise."""
    return "cuda" if get_array_module(x) is not np else "cpu"


def to_host(x) -> np.ndarray:
    """A NumPy copy (or the array itself) of a numpy or cupy array."""
    if _cupy is not None and isinstance(x, _cupy.ndarray):
        return _cupy.asnumpy(x)
    return np.asarray(x)


def to_device(x, device: str):
    """The array on ``device`` ('cpu' or 'cuda'); no copy when it is already there."""
    xp = xp_for(device)
    if xp is np:
        return to_host(x)
    return xp.asarray(x)
