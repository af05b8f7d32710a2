"""Every kernel impl and variant of every primitive against the NumPy reference, on the one
case table (kernels/kernel_cases.py, which ``python -m benchmarks.op NAME`` also checks).

The targets of a primitive are :func:`zfraw.ops.registry.implementations` less the reference
(numba and its variants on a CPU, cuda and its variants on a GPU machine), and every CUDA
version once more as ``<name>@emu``: the same .cu kernels compiled for the CPU by g++ and run
through the same Python launchers on NumPy arrays (kernels/cuda/emulator.py). Each is compared
with the ``numpy`` reference on the table's inputs, float32 and float64: within
``atol + rtol*|ref|``, or bit for bit where the result is one of the inputs (max pooling's
values and switches, dropout).

Numba compiles each kernel once per dtype signature (then caches it), so inputs keep to two
float dtypes and contiguous layouts reach the kernels (the wrappers copy strided inputs). Every
Numba kernel has a parallel version and a serial twin, chosen per call by its size
(kernels/numba/_util.py); the table's small cases would reach only the twin, so each Numba
version runs twice: forced parallel (its plain name) and forced serial (``<name>@serial``).
"""
from __future__ import annotations

import numpy as np
import pytest

import kernels.cuda  # noqa: F401 - registers the CUDA launchers, which the emulator runs here
from definitions import assert_switches_in_image
from kernels import kernel_cases
from kernels.cuda import _loader, emulator
from zfraw import backend
from zfraw.ops import registry

EMU = "@emu"
SERIAL = "@serial"  # a Numba version with every kernel forced onto its serial twin


def version_name(target: str) -> str:
    """The registry's name of a test target (``numba@serial`` -> ``numba``)."""
    return target.removesuffix(EMU).removesuffix(SERIAL)


def kernel_impls(op) -> list[str]:
    """Every non-reference version of ``op`` that runs here, the emulated CUDA ones included."""
    native = [n for n in registry.implementations(op) if n != "numpy"]
    native += [n + SERIAL for n in native if registry.base_impl(n) == "numba"]
    emulated = ([n + EMU for n in registry.registered(op) if registry.base_impl(n) == "cuda"]
                if emulator.available() else [])
    return native + emulated


def is_cuda(target: str) -> bool:
    return registry.base_impl(version_name(target)) == "cuda"


def kernel_targets(ops) -> list:
    """pytest params (impl, case): every version of every primitive in ``ops`` that runs here,
    on every case of that primitive's table; the GPU ones carry the cuda mark (-m cuda)."""
    params = []
    for op in ops:
        for impl in kernel_impls(op):
            marks = [pytest.mark.cuda] if is_cuda(impl) and not impl.endswith(EMU) else []
            params += [pytest.param(impl, case, marks=marks, id=f"{op}-{impl}-{case}")
                       for case in kernel_cases.cases(op)]
    return params or [pytest.param(None, None, marks=pytest.mark.skip(reason="no kernels"))]


@pytest.fixture
def run(request, monkeypatch):
    """``run(op, target, *args)``: call ``target``'s ``op`` with the array args moved to its
    device; results come back to the host. An ``@emu`` target runs the CUDA launcher on NumPy
    arrays with the emulator's kernels."""
    def call(op, target, *args):
        if target.endswith(EMU):
            monkeypatch.setattr(_loader, "kernel", request.getfixturevalue("emulator").kernel)
            fn, device = registry.registered(op)[target.removesuffix(EMU)], "cpu"
        elif registry.base_impl(version_name(target)) == "numba":
            from kernels.numba import _util

            monkeypatch.setattr(_util, "FORCE", "serial" if target.endswith(SERIAL) else "parallel")
            fn, device = registry.implementations(op)[version_name(target)], "cpu"
        else:
            fn, device = registry.implementations(op)[target], registry.impl_device(target) or "cpu"
        return kernel_cases.call(fn, args, device)

    return call


def reference(op, *args):
    return registry.implementations(op)["numpy"](*args)


def test_the_case_table_covers_every_primitive():
    assert kernel_cases.ops() == registry.ops()


@pytest.mark.parametrize("impl,case", kernel_targets(kernel_cases.ops()))
def test_kernel_agrees_with_the_reference(run, impl, case):
    """One version of one primitive on one case of its table; for an op that updates in place
    (sgd_update) the updated arguments are compared, and it must return None."""
    if registry.base_impl(version_name(impl)) in case.refused_by:
        pytest.skip(f"{impl} refuses these inputs by contract (tests/test_kernels_cuda.py)")
    args, ref_args = case.args(), case.args()
    got = run(case.op, impl, *args)
    ref = reference(case.op, *ref_args)
    msg = kernel_cases.disagreement(case, got, ref, args, ref_args)
    assert msg is None, f"{impl} {case.op} {case}: {msg}"
    if case.op == "maxpool_fwd":  # and the switches point at real input pixels, never padding
        x, k, s, p = ref_args[:4]
        assert got[1].dtype == np.uint8
        assert_switches_in_image(ref[1], x.shape, k, s, p)
        assert_switches_in_image(got[1], x.shape, k, s, p)


BAD_CALLS = [  # (op, args): each must raise the reference's ValueError, message and all
    ("im2col", (np.zeros((2, 3, 4)), 3, 3, 1, 0)),
    ("im2col", (np.zeros((1, 1, 2, 2)), 3, 3, 1, 0)),
    ("im2col", (np.zeros((1, 1, 5, 5)), 3, 3, 0, 0)),
    ("col2im", (np.zeros((1, 9, 10)), (1, 1, 5, 5), 3, 3, 1, 0)),
    ("maxpool_fwd", (np.zeros((1, 1, 5, 5)), 3, 2, 3)),
    ("maxpool_fwd", (np.zeros((1, 1, 40, 40)), 16, 1, 0)),
    ("maxpool_bwd", (np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 3, 3), np.uint8), (1, 1, 5, 5),
                     3, 2, 0)),
    ("avgpool_fwd", (np.zeros((1, 1, 5, 5)), 3, 3, 2, (0, 3, 0, 0))),
    ("avgpool_fwd", (np.zeros((1, 1, 2, 2)), 5, 5, 1, 1)),
    ("avgpool_bwd", (np.zeros((1, 1, 3, 3)), (1, 1, 5, 5), 3, 3, 2, 0)),
    ("lrn_fwd", (np.zeros((1, 2, 3, 3)), 0, 1e-4, 0.75, 2.0)),
    ("softmax_xent", (np.zeros((2, 3, 1)), np.zeros(2, np.int64))),
    ("softmax_xent", (np.zeros((2, 3)), np.zeros(3, np.int64))),
]


@pytest.mark.parametrize("op,args", BAD_CALLS, ids=[f"{op}-{i}" for i, (op, _) in
                                                    enumerate(BAD_CALLS)])
def test_bad_input_errors_match_reference(run, op, args):
    with pytest.raises(ValueError) as ref_err:
        reference(op, *args)
    impls = kernel_impls(op)
    if not impls:
        pytest.skip(f"no kernel for {op}")
    for impl in impls:
        with pytest.raises(ValueError) as err:
            run(op, impl, *args)
        assert str(err.value) == str(ref_err.value)


@pytest.mark.parametrize("impl", [i for i in registry.IMPLS if i != "numpy"])
def test_dispatch_selects_the_kernel(impl):
    """zfraw.ops routes to the selected impl's kernel for arrays on its device."""
    if not registry.available(impl) or (impl == "cuda" and not backend.cuda_available()):
        pytest.skip(f"{impl} not usable here")
    x = backend.to_device(np.zeros((1, 1, 4, 4), np.float32), registry.impl_device(impl))
    with registry.use_impl(impl):
        assert registry.lookup("maxpool_fwd", x) is registry.implementations("maxpool_fwd")[impl]


def test_a_selected_variant_is_used_where_it_exists_and_the_default_elsewhere():
    """set_impl('numba:scatter') sends col2im to the variant and every other primitive to
    numba's default; unknown variants and impls are refused."""
    if not registry.available("numba"):
        pytest.skip("numba not usable here")
    x = np.zeros((1, 1, 4, 4), np.float32)
    assert "numba:scatter" in registry.variants("numba")
    with registry.use_impl("numba:scatter"):
        assert registry.lookup("col2im", x) is registry.implementations("col2im")["numba:scatter"]
        assert registry.lookup("im2col", x) is registry.implementations("im2col")["numba"]
    assert registry.lookup("col2im", x) is registry.implementations("col2im")["numba"]
    with pytest.raises(ValueError, match="unknown variant 'numba:nope'; numba has: .*numba:scatter"):
        registry.set_impl("numba:nope")
    with pytest.raises(ValueError, match="unknown impl 'fortran:v1'"):
        registry.set_impl("fortran:v1")
    assert registry.get_impl() is None


@pytest.mark.parametrize("op,args", [
    ("relu_fwd", (np.arange(-3, 3).reshape(2, 3),)),
    ("maxpool_fwd", (np.arange(16).reshape(1, 1, 4, 4), 2, 2, 0)),
    ("lrn_fwd", (np.arange(8, dtype=np.float16).reshape(1, 2, 2, 2), 3, 0.1, 0.75, 2.0)),
    ("im2col", (np.arange(9, dtype=np.int32).reshape(1, 1, 3, 3), 2, 2, 1, 0)),
])
def test_other_dtypes_give_the_reference_result(run, op, args):
    """Integer and float16 inputs: every CPU impl returns what the reference returns, dtype too
    (the CUDA kernels refuse them: test_kernels_cuda.py)."""
    ref = reference(op, *args)
    for impl in [i for i in registry.implementations(op) if i != "numpy" and not is_cuda(i)]:
        got = run(op, impl, *args)
        for g, r in zip(got if isinstance(got, tuple) else (got,),
                        ref if isinstance(ref, tuple) else (ref,)):
            assert g.dtype == r.dtype
            np.testing.assert_allclose(g.astype(np.float64), r.astype(np.float64), rtol=1e-3)


def test_numba_kernels_run_serially_below_their_size_and_in_parallel_above(monkeypatch):
    """kernels/numba/_util.py: a call's size picks the serial twin or the parallel kernel."""
    pytest.importorskip("numba")
    from kernels.numba import _util, elementwise

    kernel, ran = elementwise._relu_fwd, []
    names = (kernel.serial.py_func.__qualname__, kernel.parallel.py_func.__qualname__)
    assert names == ("_relu_fwd_serial", "_relu_fwd")        # their own on-disk cache entries
    monkeypatch.setattr(kernel, "serial", lambda *a: ran.append("serial"))
    monkeypatch.setattr(kernel, "parallel", lambda *a: ran.append("parallel"))
    kernel(kernel.serial_below - 1)
    kernel(kernel.serial_below)
    monkeypatch.setattr(_util, "FORCE", "parallel")
    kernel(1)
    assert ran == ["serial", "parallel", "parallel"]
