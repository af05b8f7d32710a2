"""One registry of primitive implementations, enumerated by the tests and the benchmarks.

Each primitive (``im2col``, ``maxpool_fwd``, ...) has one NumPy reference, registered under the
impl name ``"numpy"``; it is written against ``xp`` and so also runs on CuPy arrays. Faster
versions register under ``"numba"`` (kernels/numba, CPU arrays) or ``"cuda"`` (kernels/cuda,
CuPy arrays). The public functions in :mod:`zfraw.ops` call :func:`lookup`, which picks the
selected impl when it has that primitive and works on the array's device, else the reference.

Variants: an impl may hold several versions of a primitive, registered as ``"<impl>:<name>"``
(``"numba:scatter"``, ``"cuda:ring"``): numbered or named versions beside the default one, the
llm.c habit. :func:`implementations` lists each, so the tests check every variant against the
reference and the benchmarks time them side by side; ``set_impl("numba:scatter")`` makes
:func:`lookup` take the variant where the primitive has one and the impl's default elsewhere.

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


def base_impl(name: str) -> str:
    """The impl of an implementation name: ``"numba:scatter"`` -> ``"numba"``; an error for
    an unknown impl."""
    impl = name.split(":", 1)[0]
    if impl not in IMPLS or name.endswith(":"):
        raise ValueError(f"unknown impl {name!r}; choose one of {', '.join(IMPLS)} "
                         f"(or a variant such as numba:scatter)")
    return impl


def impl_device(name: str) -> str | None:
    """Where an impl's (or variant's) arrays live: 'cpu', 'cuda', or None (any: the reference)."""
    return IMPL_DEVICE[base_impl(name)]


def register(op: str, impl: str):
    """Decorator: register ``fn`` as implementation ``impl`` of primitive ``op``; ``impl`` is an
    impl name or a variant ``"<impl>:<name>"``."""
    if base_impl(impl) == "numpy" and impl != "numpy":
        raise ValueError(f"the reference has no variants: {impl!r}")

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


def unavailable_reason(impl: str) -> str | None:
    """Why ``impl`` cannot run here (its kernel package's import error), or None when it can."""
    return None if available(impl) else _load_errors.get(impl)


def available_impls(device: str | None = None) -> list[str]:
    """The impls that can run here, optionally only those usable on ``device``."""
    return [i for i in IMPLS if available(i)
            and (device is None or IMPL_DEVICE[i] in (None, device))]


def default_impl(device: str) -> str:
    """The fastest impl present for ``device``: cuda on the GPU, numba on the CPU, else numpy."""
    preferred = "cuda" if device == "cuda" else "numba"
    return preferred if available(preferred) else "numpy"


def variants(impl: str | None = None) -> list[str]:
    """Every registered variant name (``"numba:scatter"``, ...), optionally of one impl's."""
    names = {name for _, name in _table if ":" in name}
    return sorted(n for n in names if impl is None or base_impl(n) == impl)


def set_impl(impl: str | None) -> None:
    """Select the impl (or variant) used by :mod:`zfraw.ops`; None restores the per-device
    default."""
    if impl is not None:
        base = base_impl(impl)
        if not available(base):
            raise RuntimeError(f"impl {base!r} is not usable here: {_load_errors.get(base)}")
        if ":" in impl and impl not in variants(base):
            known = ", ".join(variants(base)) or "none"
            raise ValueError(f"unknown variant {impl!r}; {base} has: {known}")
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


def registered(op: str) -> dict[str, object]:
    """Every implementation of ``op`` registered so far, usable here or not, by name: each
    impl's default followed by its variants, the reference first."""
    names = [name for o, name in _table if o == op]
    order = {impl: k for k, impl in enumerate(IMPLS)}
    names.sort(key=lambda n: (order[base_impl(n)], ":" in n, n))
    return {n: _table[(op, n)] for n in names}


def implementations(op: str) -> dict[str, object]:
    """Every usable implementation of ``op`` (variants included), by name, the reference
    first."""
    for impl in IMPLS:
        available(impl)  # imports the kernel packages, which register their versions
    return {n: fn for n, fn in registered(op).items() if available(base_impl(n))}


def ops() -> list[str]:
    """Names of all registered primitives."""
    return sorted({op for op, impl in _table if impl == "numpy"})


def lookup(op: str, x):
    """The implementation of ``op`` to run on array ``x``: the selected (or default) impl when
    it has ``op`` and runs on x's device (a selected variant where ``op`` has it, else that
    impl's default), else the NumPy/xp reference."""
    device = backend.device_of(x)
    name = _selected["impl"] or default_impl(device)
    impl = base_impl(name)
    if impl != "numpy" and IMPL_DEVICE[impl] == device and _load(impl):
        fn = _table.get((op, name)) or _table.get((op, impl))
        if fn is not None:
            return fn
    return _table[(op, "numpy")]
