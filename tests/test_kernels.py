"""Every kernel impl and variant of every primitive against the NumPy reference, on the one
case table (tests/kernel_cases.py).

The targets of a primitive are :func:`zfraw.ops.registry.implementations` less the reference
(numba and its variants on a CPU, cuda and its variants on a GPU machine), and every CUDA
version once more as ``<name>@emu``: the same .cu kernels compiled for the CPU by g++ and run
through the same Python launchers on NumPy arrays (tests/cuda_emu.py). Each is compared with the
``numpy`` reference on random inputs, float32 and float64. Tolerances are ``atol + rtol*|ref|``.

Numba compiles each kernel once per dtype signature (then caches it), so inputs keep to two
float dtypes and contiguous layouts reach the kernels (the wrappers copy strided inputs).
"""
from __future__ import annotations

import numpy as np
import pytest

import cuda_emu
import kernels.cuda  # noqa: F401 - registers the CUDA launchers, which the emulator runs here
from definitions import assert_switches_in_image
from kernel_cases import (DTYPES, LRNS, POOL_VALUES, POOLS, POOLS_ASYM_CEIL, RELU_SHAPES,
                          SGD_CASES, TOL, WINDOWS, WINOGRAD, XENT_CASES, pool_input, rand,
                          strided)
from kernels.cuda import _loader
from zfraw import backend
from zfraw.ops import registry

EMU = "@emu"


def kernel_impls(op):
    """pytest params: every non-reference version of ``op`` that runs here, the emulated CUDA
    ones included (a skip when there is none)."""
    native = [pytest.param(n, marks=pytest.mark.cuda) if is_cuda(n) else n
              for n in registry.implementations(op) if n != "numpy"]   # -m cuda: the GPU ones
    emulated = ([n + EMU for n in registry.registered(op) if registry.base_impl(n) == "cuda"]
                if cuda_emu.available() else [])
    return native + emulated or [pytest.param(None, marks=pytest.mark.skip(
        reason=f"no kernel for {op}"))]


def is_cuda(target: str) -> bool:
    return registry.base_impl(target.removesuffix(EMU)) == "cuda"


@pytest.fixture
def run(request, monkeypatch):
    """``run(op, target, *args)``: call ``target``'s ``op`` with the array args moved to its
    device; results come back to the host. An ``@emu`` target runs the CUDA launcher on NumPy
    arrays with the emulator's kernels."""
    def call(op, target, *args):
        if target.endswith(EMU):
            monkeypatch.setattr(_loader, "kernel", request.getfixturevalue("emulator").kernel)
            fn, device = registry.registered(op)[target.removesuffix(EMU)], "cpu"
        else:
            fn, device = registry.implementations(op)[target], registry.impl_device(target) or "cpu"
        moved = [backend.to_device(a, device) if isinstance(a, np.ndarray) else a for a in args]
        out = fn(*moved)
        for a, m in zip(args, moved):  # in-place ops (sgd_update) update the device copies
            if isinstance(a, np.ndarray) and m is not a:
                a[...] = backend.to_host(m)
        if isinstance(out, tuple):
            return tuple(backend.to_host(o) for o in out)
        return None if out is None else backend.to_host(out)

    return call


def reference(op, *args):
    return registry.implementations(op)["numpy"](*args)


def assert_close(got, ref, dtype):
    atol, rtol = TOL[dtype]
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape and got.dtype == ref.dtype, (got.shape, got.dtype, ref.dtype)
    err = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    bound = atol + rtol * np.abs(ref.astype(np.float64))
    assert (err <= bound).all(), f"max error {err.max():.3g}, worst excess {(err - bound).max():.3g}"


@pytest.mark.parametrize("impl", kernel_impls("winograd_input"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,pad,nc", WINOGRAD)
def test_winograd_transforms(run, impl, dtype, shape, pad, nc):
    from zfraw.ops.winograd import tile_grid
    rng = np.random.default_rng(11)
    x = rand(rng, shape, dtype, nc)
    V = reference("winograd_input", x, pad)
    assert_close(run("winograd_input", impl, x, pad), V, dtype)
    dV = rand(rng, V.shape, dtype, nc)
    assert_close(run("winograd_input_adjoint", impl, dV, shape, pad),
                 reference("winograd_input_adjoint", dV, shape, pad), dtype)
    oh, ow, _, _ = tile_grid(shape[2], shape[3], pad)
    M = rand(rng, (16, 5, V.shape[2]), dtype, nc)
    assert_close(run("winograd_output", impl, M, shape[0], oh, ow),
                 reference("winograd_output", M, shape[0], oh, ow), dtype)
    dy = rand(rng, (shape[0], 5, oh, ow), dtype, nc)
    assert_close(run("winograd_output_adjoint", impl, dy),
                 reference("winograd_output_adjoint", dy), dtype)
    W = rand(rng, (5, shape[1], 3, 3), dtype, nc)
    assert_close(run("winograd_filter", impl, W), reference("winograd_filter", W), dtype)
    dU = rand(rng, (16, 5, shape[1]), dtype, nc)
    assert_close(run("winograd_filter_adjoint", impl, dU),
                 reference("winograd_filter_adjoint", dU), dtype)


@pytest.mark.parametrize("impl", kernel_impls("im2col"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,kh,kw,s,p,nc", WINDOWS)
def test_im2col(run, impl, dtype, shape, kh, kw, s, p, nc):
    x = rand(np.random.default_rng(0), shape, dtype, nc)
    assert_close(run("im2col", impl, x, kh, kw, s, p), reference("im2col", x, kh, kw, s, p), dtype)


@pytest.mark.parametrize("impl", kernel_impls("col2im"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,kh,kw,s,p,nc", WINDOWS)
def test_col2im(run, impl, dtype, shape, kh, kw, s, p, nc):
    cols_shape = reference("im2col", np.zeros(shape, dtype), kh, kw, s, p).shape
    cols = rand(np.random.default_rng(1), cols_shape, dtype, nc)
    assert_close(run("col2im", impl, cols, shape, kh, kw, s, p),
                 reference("col2im", cols, shape, kh, kw, s, p), dtype)


@pytest.mark.parametrize("impl", kernel_impls("maxpool_fwd"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("values", POOL_VALUES)
@pytest.mark.parametrize("shape,k,s,p,nc", POOLS)
def test_maxpool_fwd(run, impl, dtype, values, shape, k, s, p, nc):
    x = pool_input(np.random.default_rng(2), shape, dtype, values, nc)
    y, sw = run("maxpool_fwd", impl, x, k, s, p)
    y_ref, sw_ref = reference("maxpool_fwd", x, k, s, p)
    np.testing.assert_array_equal(y, y_ref)  # a maximum is one of its inputs: exact (-inf too)
    assert sw.dtype == np.uint8
    np.testing.assert_array_equal(sw, sw_ref)
    assert_switches_in_image(sw_ref, shape, k, s, p)
    assert_switches_in_image(sw, shape, k, s, p)


@pytest.mark.parametrize("impl", kernel_impls("maxpool_bwd"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s,p,nc", POOLS)
def test_maxpool_bwd(run, impl, dtype, shape, k, s, p, nc):
    rng = np.random.default_rng(3)
    x = pool_input(rng, shape, dtype, "neg_inf")  # ties and -inf: routing follows the switches
    _, sw = reference("maxpool_fwd", x, k, s, p)
    dy = rand(rng, sw.shape, dtype, nc)
    assert_close(run("maxpool_bwd", impl, dy, sw, shape, k, s, p),
                 reference("maxpool_bwd", dy, sw, shape, k, s, p), dtype)


@pytest.mark.parametrize("impl", kernel_impls("maxpool_fwd"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("values", POOL_VALUES)
@pytest.mark.parametrize("shape,k,s,p,ceil,nc", POOLS_ASYM_CEIL)
def test_maxpool_fwd_asymmetric_and_ceil(run, impl, dtype, values, shape, k, s, p, ceil, nc):
    x = pool_input(np.random.default_rng(4), shape, dtype, values, nc)
    y, sw = run("maxpool_fwd", impl, x, k, s, p, ceil)
    y_ref, sw_ref = reference("maxpool_fwd", x, k, s, p, ceil)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(sw, sw_ref)
    assert_switches_in_image(sw, shape, k, s, p)


@pytest.mark.parametrize("impl", kernel_impls("maxpool_bwd"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s,p,ceil,nc", POOLS_ASYM_CEIL)
def test_maxpool_bwd_asymmetric_and_ceil(run, impl, dtype, shape, k, s, p, ceil, nc):
    rng = np.random.default_rng(5)
    x = pool_input(rng, shape, dtype, "neg_inf")
    _, sw = reference("maxpool_fwd", x, k, s, p, ceil)
    dy = rand(rng, sw.shape, dtype, nc)
    assert_close(run("maxpool_bwd", impl, dy, sw, shape, k, s, p, ceil),
                 reference("maxpool_bwd", dy, sw, shape, k, s, p, ceil), dtype)


@pytest.mark.parametrize("impl", kernel_impls("lrn_fwd"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,size,alpha,beta,nc", LRNS)
def test_lrn_fwd(run, impl, dtype, shape, size, alpha, beta, nc):
    x = rand(np.random.default_rng(4), shape, dtype, nc) * 3
    got = run("lrn_fwd", impl, x, size, alpha, beta, 2.0)
    for g, r in zip(got, reference("lrn_fwd", x, size, alpha, beta, 2.0)):
        assert_close(g, r, dtype)


@pytest.mark.parametrize("impl", kernel_impls("lrn_bwd"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,size,alpha,beta,nc", LRNS)
def test_lrn_bwd(run, impl, dtype, shape, size, alpha, beta, nc):
    rng = np.random.default_rng(5)
    x = rand(rng, shape, dtype) * 3
    y, scale = reference("lrn_fwd", x, size, alpha, beta, 2.0)
    dy = rand(rng, shape, dtype, nc)
    x_in = strided(x) if nc else x
    assert_close(run("lrn_bwd", impl, dy, x_in, y, scale, size, alpha, beta),
                 reference("lrn_bwd", dy, x, y, scale, size, alpha, beta), dtype)


@pytest.mark.parametrize("impl", kernel_impls("relu_fwd"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,nc", RELU_SHAPES)
def test_relu_fwd(run, impl, dtype, shape, nc):
    x = rand(np.random.default_rng(6), shape, dtype, nc)
    assert_close(run("relu_fwd", impl, x), reference("relu_fwd", x), dtype)


@pytest.mark.parametrize("impl", kernel_impls("relu_bwd"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,nc", RELU_SHAPES)
def test_relu_bwd(run, impl, dtype, shape, nc):
    rng = np.random.default_rng(7)
    y = np.maximum(rng.integers(-2, 3, shape), 0).astype(dtype)  # exact zeros pass nothing
    dy = rand(rng, shape, dtype, nc)
    assert_close(run("relu_bwd", impl, dy, y), reference("relu_bwd", dy, y), dtype)


@pytest.mark.parametrize("impl", kernel_impls("sgd_update"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,wd,nc", SGD_CASES)
def test_sgd_update(run, impl, dtype, shape, wd, nc):
    if nc and is_cuda(impl):
        pytest.skip("cuda updates contiguous params only (a ValueError, test_kernels_cuda.py)")
    rng = np.random.default_rng(8)
    param, grad, vel = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    if nc:  # a strided param and velocity are still updated in place
        param, vel = strided(param), strided(vel)
    p_ref, v_ref = param.copy(), vel.copy()
    reference("sgd_update", p_ref, grad, v_ref, 0.01, 0.9, wd)
    assert run("sgd_update", impl, param, grad, vel, 0.01, 0.9, wd) is None
    assert_close(param, p_ref, dtype)
    assert_close(vel, v_ref, dtype)


@pytest.mark.parametrize("impl", kernel_impls("softmax_xent"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k,nc", XENT_CASES)
def test_softmax_xent(run, impl, dtype, n, k, nc):
    rng = np.random.default_rng(9)
    logits = rand(rng, (n, k), dtype, nc) * 30  # large logits: the max shift must be there
    labels = rng.integers(0, k, n)
    loss, probs = run("softmax_xent", impl, logits, labels)
    loss_ref, probs_ref = reference("softmax_xent", logits, labels)
    assert_close(loss, loss_ref, dtype)
    assert_close(probs, probs_ref, dtype)


@pytest.mark.parametrize("impl", kernel_impls("softmax_xent_bwd"))
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_xent_bwd(run, impl, dtype):
    rng = np.random.default_rng(10)
    _, probs = reference("softmax_xent", rng.standard_normal((6, 9)).astype(dtype),
                         np.zeros(6, dtype=np.int64))
    labels = rng.integers(0, 9, 6)
    assert_close(run("softmax_xent_bwd", impl, probs, labels),
                 reference("softmax_xent_bwd", probs, labels), dtype)


BAD_CALLS = [  # (op, args): each must raise the reference's ValueError, message and all
    ("im2col", (np.zeros((2, 3, 4)), 3, 3, 1, 0)),
    ("im2col", (np.zeros((1, 1, 2, 2)), 3, 3, 1, 0)),
    ("im2col", (np.zeros((1, 1, 5, 5)), 3, 3, 0, 0)),
    ("col2im", (np.zeros((1, 9, 10)), (1, 1, 5, 5), 3, 3, 1, 0)),
    ("maxpool_fwd", (np.zeros((1, 1, 5, 5)), 3, 2, 3)),
    ("maxpool_fwd", (np.zeros((1, 1, 40, 40)), 16, 1, 0)),
    ("maxpool_bwd", (np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 3, 3), np.uint8), (1, 1, 5, 5),
                     3, 2, 0)),
    ("lrn_fwd", (np.zeros((1, 2, 3, 3)), 0, 1e-4, 0.75, 2.0)),
    ("softmax_xent", (np.zeros((2, 3, 1)), np.zeros(2, np.int64))),
    ("softmax_xent", (np.zeros((2, 3)), np.zeros(3, np.int64))),
]


@pytest.mark.parametrize("op,args", BAD_CALLS, ids=[f"{op}-{i}" for i, (op, _) in
                                                    enumerate(BAD_CALLS)])
def test_bad_input_errors_match_reference(run, op, args):
    with pytest.raises(ValueError) as ref_err:
        reference(op, *args)
    impls = [i if isinstance(i, str) else i.values[0] for i in kernel_impls(op)]
    impls = [i for i in impls if i is not None]
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
