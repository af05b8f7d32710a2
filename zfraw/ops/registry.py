"""One registry of primitive implementations, enumerated by the tests and the benchmarks.

Each primitive (``im2col``, ``maxpool_fwd``, ...) has one NumPy reference, registered under the
impl name ``"numpy"``; it is written against ``xp`` and so also runs on CuPy arrays. Faster
versions register under ``"numba"`` (kernels/numba, CPU arrays) or ``"cuda"`` (kernels/cuda,
CuPy arrays). The public functions in :mod:`zfraw.ops` call :func:`lookup`, which picks the
selected impl when it has that primitive and works on the array's device, else the reference.

Kernel packages are imported lazily, the first time their impl is asked for, so the package
imports and runs on a machine without Numba or CuPy.
"""
from __future__ import annotations

import importlib

from .. import backend

IMPLS = ("numpy", "numba", "cuda")
IMPL_DEVICE = {"numpy": None, "numba": "cpu", "cuda": "cuda"}  # None: any device
_KERNEL_PACKAGES = {"numba": "kernels.numba", "cuda": "kernels.cuda"}

_table: dict[tuple[str, str], object] = {}
_loaded: dict[str, bool] = {}  # impl -> import succeeded
_load_errors: dict[str, str] = {}
_selected = {"impl": None}  # None: the default, the fastest present for the array's device


def register(op: str, impl: str):
    """Decorator: register ``fn`` as implementation ``impl`` of primitive ``op``."""
    if impl not in IMPLS:
        raise ValueError(f"unknown impl {impl!r}; choose one of {IMPLS}")

    def deco(fn):
        _table[(op, impl)] = fn
        return fn

    return deco


def _load(impl: str) -> bool:
    """Import an impl's kernel package once; False (and the reason kept) when it cannot load."""
    if impl == "numpy":
        return True
    if impl not in _loaded:
        try:
            if impl == "cuda" and not backend.cuda_available():
                raise RuntimeError(f"no usable GPU/CuPy: {backend.cuda_unavailable_reason()}")
            importlib.import_module(_KERNEL_PACKAGES[impl])
            _loaded[impl] = True
        except Exception as e:  # noqa: BLE001 - optional dependency missing or broken
            _loaded[impl] = False
            _load_errors[impl] = f"{type(e).__name__}: {e}"
    return _loaded[impl]


def available(impl: str) -> bool:
    """True when ``impl`` can run here (its kernel package imports)."""
    if impl not in IMPLS:
        raise ValueError(f"unknown impl {impl!r}; choose one of {IMPLS}")
    return _load(impl)


def available_impls(device: str | None = None) -> list[str]:
    """The impls that can run here, optionally only those usable on ``device``."""
    return [i for i in IMPLS if available(i)
            and (device is None or IMPL_DEVICE[i] in (None, device))]


def default_impl(device: str) -> str:
    """The fastest impl present for ``device``: cuda on the GPU, numba on the CPU, else numpy."""
    preferred = "cuda" if device == "cuda" else "numba"
    return preferred if available(preferred) else "numpy"


def set_impl(impl: str | None) -> None:
    """Select the impl used by :mod:`zfraw.ops` (None restores the per-device default)."""
    if impl is not None:
        if impl not in IMPLS:
            raise ValueError(f"unknown impl {impl!r}; choose one of {', '.join(IMPLS)}")
        if not available(impl):
            raise RuntimeError(f"impl {impl!r} is not usable here: {_load_errors.get(impl)}")
    _selected["impl"] = impl


def get_impl() -> str | None:
    """The impl selected with :func:`set_impl` (None means the per-device default)."""
    return _selected["impl"]


class use_impl:
    """Context manager: ``with use_impl('numba'): ...`` selects an impl, then restores."""

    def __init__(self, impl: str | None):
        self.impl = impl

    def __enter__(self):
        self.saved = get_impl()
        set_impl(self.impl)
        return self

    def __exit__(self, *exc):
        _selected["impl"] = self.saved


def implementations(op: str) -> dict[str, object]:
    """Every usable implementation of ``op``, by impl name (the reference first)."""
    return {i: _table[(op, i)] for i in IMPLS if available(i) and (op, i) in _table}


def ops() -> list[str]:
    """Names of all registered primitives."""
    return sorted({op for op, impl in _table if impl == "numpy"})


def lookup(op: str, x):
    """The implementation of ``op`` to run on array ``x``: the selected (or default) impl when
    it has ``op`` and runs on x's device, else the NumPy/xp reference."""
    device = backend.device_of(x)
    impl = _selected["impl"] or default_impl(device)
    if impl != "numpy" and IMPL_DEVICE[impl] == device and _load(impl):
        fn = _table.get((op, impl))
        if fn is not None:
            return fn
    return _table[(op, "numpy")]
