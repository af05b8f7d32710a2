"""Every registered kernel impl of every primitive against the NumPy reference.

Generic over :func:`zfraw.ops.registry.implementations`: whatever impls are usable here (numba
on a CPU, cuda on a GPU machine) are each compared with the ``numpy`` reference on random
inputs, edge geometries (1x1 maps, stride larger than the kernel, odd sizes, padding),
non-contiguous inputs, float32 and float64; max pooling also on tie-heavy integer-valued inputs
and on windows whose real values are all -inf, where the switches must be identical and never
point into the padding. Tolerances are ``atol + rtol*|ref|``.

Numba compiles each kernel once per dtype signature (then caches it), so inputs keep to two
float dtypes and contiguous layouts reach the kernels (the wrappers copy strided inputs).
"""
from __future__ import annotations

import numpy as np
import pytest

from zfraw import backend
from zfraw.ops import registry
from zfraw.ops.registry import IMPL_DEVICE

from definitions import assert_switches_in_image

TOL = {np.float32: (1e-5, 1e-5), np.float64: (1e-12, 1e-10)}  # (atol, rtol)
DTYPES = [np.float32, np.float64]


def kernel_impls(op):
    """pytest params: every non-reference impl of ``op`` usable here (a skip when none is)."""
    impls = [i for i in registry.implementations(op) if i != "numpy"]
    return impls or [pytest.param(None, marks=pytest.mark.skip(reason=f"no kernel for {op}"))]


def run(op, impl, *args):
    """Call ``impl``'s ``op`` with array args moved to its device; results come back to host."""
    device = IMPL_DEVICE[impl] or "cpu"
    moved = [backend.to_device(a, device) if isinstance(a, np.ndarray) else a for a in args]
    out = registry.implementations(op)[impl](*moved)
    for a, m in zip(args, moved):  # in-place ops (sgd_update) update the device copies
        if isinstance(a, np.ndarray) and m is not a:
            a[...] = backend.to_host(m)
    if isinstance(out, tuple):
        return tuple(backend.to_host(o) for o in out)
    return None if out is None else backend.to_host(out)


def reference(op, *args):
    return registry.implementations(op)["numpy"](*args)


def assert_close(got, ref, dtype):
    atol, rtol = TOL[dtype]
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape and got.dtype == ref.dtype, (got.shape, got.dtype, ref.dtype)
    err = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    bound = atol + rtol * np.abs(ref.astype(np.float64))
    assert (err <= bound).all(), f"max error {err.max():.3g}, worst excess {(err - bound).max():.3g}"


def strided(x):
    """A non-contiguous view with x's values: every other element of a twice-as-wide array."""
    wide = np.empty(x.shape[:-1] + (2 * x.shape[-1],), dtype=x.dtype)
    wide[..., ::2] = x
    view = wide[..., ::2]
    assert not view.flags.c_contiguous
    return view


def rand(rng, shape, dtype, noncontig=False):
    x = rng.standard_normal(shape).astype(dtype)
    return strided(x) if noncontig else x


# Winograd F(2x2, 3x3): (N, C, H, W), pad, non-contiguous input (odd sizes, asymmetric pads).
WINOGRAD = [((2, 3, 7, 6), 1, False), ((1, 2, 5, 5), 0, True), ((2, 3, 6, 9), (1, 0, 2, 1), False),
            ((1, 1, 3, 3), 0, False), ((2, 4, 13, 13), 1, True)]


@pytest.mark.parametrize("impl", kernel_impls("winograd_input"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,pad,nc", WINOGRAD)
def test_winograd_transforms(impl, dtype, shape, pad, nc):
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


# (N, C, H, W), kh, kw, stride, pad, non-contiguous input
WINDOWS = [
    ((2, 3, 7, 7), 3, 3, 1, 1, False),
    ((1, 1, 1, 1), 1, 1, 1, 0, False),     # 1x1 map
    ((2, 2, 5, 6), 2, 2, 3, 0, False),     # stride larger than the kernel
    ((1, 3, 9, 8), 5, 5, 2, 2, True),      # odd sizes, padding, strided input
    ((2, 2, 7, 5), 3, 2, 2, 1, False),     # non-square kernel
    ((1, 2, 2, 3), 3, 3, 1, 2, False),     # padding larger than the map
    ((2, 3, 7, 6), 3, 3, 2, (1, 0, 2, 1), False),  # asymmetric (top, left, bottom, right)
    ((1, 2, 6, 9), 5, 3, 1, (0, 2, 1, 0), True),   # asymmetric, non-square kernel, strided
    ((2, 2, 5, 5), 2, 2, 3, (1, 1, 0, 0), False),  # stride > kernel, pads only before
]


@pytest.mark.parametrize("impl", kernel_impls("im2col"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,kh,kw,s,p,nc", WINDOWS)
def test_im2col(impl, dtype, shape, kh, kw, s, p, nc):
    x = rand(np.random.default_rng(0), shape, dtype, nc)
    assert_close(run("im2col", impl, x, kh, kw, s, p), reference("im2col", x, kh, kw, s, p), dtype)


@pytest.mark.parametrize("impl", kernel_impls("col2im"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,kh,kw,s,p,nc", WINDOWS)
def test_col2im(impl, dtype, shape, kh, kw, s, p, nc):
    cols_shape = reference("im2col", np.zeros(shape, dtype), kh, kw, s, p).shape
    cols = rand(np.random.default_rng(1), cols_shape, dtype, nc)
    assert_close(run("col2im", impl, cols, shape, kh, kw, s, p),
                 reference("col2im", cols, shape, kh, kw, s, p), dtype)


# (N, C, H, W), k, stride, pad, non-contiguous input
POOLS = [
    ((2, 3, 7, 7), 3, 2, 0, False),
    ((2, 3, 8, 9), 3, 2, 1, False),        # padding, odd width
    ((1, 1, 1, 1), 1, 1, 0, False),        # 1x1 map
    ((1, 2, 5, 5), 2, 3, 1, False),        # stride larger than the window
    ((2, 2, 6, 7), 3, 1, 2, True),         # overlapping windows, wide padding, strided input
    ((1, 1, 1, 2), 3, 2, 1, False),        # window larger than the map
    ((1, 2, 4, 5), 3, 2, 2, False),        # corner windows holding one real tap each
]
POOL_VALUES = ["random", "ties", "neg_inf"]


def pool_input(rng, shape, dtype, values, nc=False):
    """Pooling test input. 'ties': integers with many repeats (the first maximum, row-major,
    must win); 'neg_inf': the same with the top-left 2x2 of every plane and all of plane (0, 0)
    at -inf, so padded border windows whose real values are all -inf exist (padding must
    still lose: the switch is the window's first real tap)."""
    if values == "random":
        return rand(rng, shape, dtype, nc)
    x = rng.integers(-2, 3, shape).astype(dtype)
    if values == "neg_inf":
        x[..., :2, :2] = -np.inf
        x[0, 0] = -np.inf
    return strided(x) if nc else x


@pytest.mark.parametrize("impl", kernel_impls("maxpool_fwd"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("values", POOL_VALUES)
@pytest.mark.parametrize("shape,k,s,p,nc", POOLS)
def test_maxpool_fwd(impl, dtype, values, shape, k, s, p, nc):
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
def test_maxpool_bwd(impl, dtype, shape, k, s, p, nc):
    rng = np.random.default_rng(3)
    x = pool_input(rng, shape, dtype, "neg_inf")  # ties and -inf: routing follows the switches
    _, sw = reference("maxpool_fwd", x, k, s, p)
    dy = rand(rng, sw.shape, dtype, nc)
    assert_close(run("maxpool_bwd", impl, dy, sw, shape, k, s, p),
                 reference("maxpool_bwd", dy, sw, shape, k, s, p), dtype)


# (N, C, H, W), k, stride, pad (an int or (top, left, bottom, right)), ceil_mode, non-contiguous
POOLS_ASYM_CEIL = [
    ((2, 3, 8, 6), 3, 2, 0, True, False),             # ceil: a partial last window each way
    ((2, 2, 6, 7), 3, 2, (0, 1, 1, 0), False, True),  # asymmetric, strided input
    ((1, 3, 6, 7), 3, 2, (1, 0, 0, 1), True, False),  # asymmetric and ceil
    ((2, 2, 5, 5), 2, 2, (1, 1, 0, 0), True, False),  # the last window runs past the input
    ((1, 2, 4, 5), 3, 3, (2, 0, 1, 2), True, False),  # stride = window, heavy padding
    ((1, 1, 1, 2), 3, 2, (2, 1, 0, 0), True, False),  # window larger than the map
]


@pytest.mark.parametrize("impl", kernel_impls("maxpool_fwd"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("values", POOL_VALUES)
@pytest.mark.parametrize("shape,k,s,p,ceil,nc", POOLS_ASYM_CEIL)
def test_maxpool_fwd_asymmetric_and_ceil(impl, dtype, values, shape, k, s, p, ceil, nc):
    x = pool_input(np.random.default_rng(4), shape, dtype, values, nc)
    y, sw = run("maxpool_fwd", impl, x, k, s, p, ceil)
    y_ref, sw_ref = reference("maxpool_fwd", x, k, s, p, ceil)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(sw, sw_ref)
    assert_switches_in_image(sw, shape, k, s, p)


@pytest.mark.parametrize("impl", kernel_impls("maxpool_bwd"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s,p,ceil,nc", POOLS_ASYM_CEIL)
def test_maxpool_bwd_asymmetric_and_ceil(impl, dtype, shape, k, s, p, ceil, nc):
    rng = np.random.default_rng(5)
    x = pool_input(rng, shape, dtype, "neg_inf")
    _, sw = reference("maxpool_fwd", x, k, s, p, ceil)
    dy = rand(rng, sw.shape, dtype, nc)
    assert_close(run("maxpool_bwd", impl, dy, sw, shape, k, s, p, ceil),
                 reference("maxpool_bwd", dy, sw, shape, k, s, p, ceil), dtype)


# (N, C, H, W), size, beta, non-contiguous inputs
LRNS = [
    ((2, 7, 5, 4), 5, 0.75, False),        # the paper's setting (square-root path)
    ((1, 1, 1, 1), 5, 0.75, False),        # window wider than the channels
    ((2, 6, 3, 3), 4, 0.6, True),          # even size: asymmetric window; pow path; strided
    ((1, 3, 2, 5), 1, 0.75, False),
    ((2, 6, 17, 19), 5, 0.75, False),      # 323 pixels: two of the Numba backward's blocks
]


@pytest.mark.parametrize("impl", kernel_impls("lrn_fwd"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,size,beta,nc", LRNS)
def test_lrn_fwd(impl, dtype, shape, size, beta, nc):
    x = rand(np.random.default_rng(4), shape, dtype, nc) * 3
    got = run("lrn_fwd", impl, x, size, 0.1, beta, 2.0)
    for g, r in zip(got, reference("lrn_fwd", x, size, 0.1, beta, 2.0)):
        assert_close(g, r, dtype)


@pytest.mark.parametrize("impl", kernel_impls("lrn_bwd"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,size,beta,nc", LRNS)
def test_lrn_bwd(impl, dtype, shape, size, beta, nc):
    rng = np.random.default_rng(5)
    x = rand(rng, shape, dtype) * 3
    y, scale = reference("lrn_fwd", x, size, 0.1, beta, 2.0)
    dy = rand(rng, shape, dtype, nc)
    x_in = strided(x) if nc else x
    assert_close(run("lrn_bwd", impl, dy, x_in, y, scale, size, 0.1, beta),
                 reference("lrn_bwd", dy, x, y, scale, size, 0.1, beta), dtype)


RELU_SHAPES = [((2, 3, 4, 5), False), ((7,), False), ((3, 8), True)]


@pytest.mark.parametrize("impl", kernel_impls("relu_fwd"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,nc", RELU_SHAPES)
def test_relu_fwd(impl, dtype, shape, nc):
    x = rand(np.random.default_rng(6), shape, dtype, nc)
    assert_close(run("relu_fwd", impl, x), reference("relu_fwd", x), dtype)


@pytest.mark.parametrize("impl", kernel_impls("relu_bwd"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,nc", RELU_SHAPES)
def test_relu_bwd(impl, dtype, shape, nc):
    rng = np.random.default_rng(7)
    y = np.maximum(rng.integers(-2, 3, shape), 0).astype(dtype)  # exact zeros pass nothing
    dy = rand(rng, shape, dtype, nc)
    assert_close(run("relu_bwd", impl, dy, y), reference("relu_bwd", dy, y), dtype)


@pytest.mark.parametrize("impl", kernel_impls("sgd_update"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,wd,nc", [((4, 3, 5, 5), 5e-4, False), ((10,), 0.0, False),
                                         ((6, 7), 1e-3, True)])
def test_sgd_update(impl, dtype, shape, wd, nc):
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
@pytest.mark.parametrize("n,k,nc", [(5, 7, False), (1, 1, False), (4, 10, True)])
def test_softmax_xent(impl, dtype, n, k, nc):
    rng = np.random.default_rng(9)
    logits = rand(rng, (n, k), dtype, nc) * 30  # large logits: the max shift must be there
    labels = rng.integers(0, k, n)
    loss, probs = run("softmax_xent", impl, logits, labels)
    loss_ref, probs_ref = reference("softmax_xent", logits, labels)
    assert_close(loss, loss_ref, dtype)
    assert_close(probs, probs_ref, dtype)


@pytest.mark.parametrize("impl", kernel_impls("softmax_xent_bwd"))
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_xent_bwd(impl, dtype):
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
def test_bad_input_errors_match_reference(op, args):
    with pytest.raises(ValueError) as ref_err:
        reference(op, *args)
    impls = [i for i in registry.implementations(op) if i != "numpy"]
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
    x = backend.to_device(np.zeros((1, 1, 4, 4), np.float32), IMPL_DEVICE[impl])
    with registry.use_impl(impl):
        assert registry.lookup("maxpool_fwd", x) is registry.implementations("maxpool_fwd")[impl]


@pytest.mark.parametrize("op,args", [
    ("relu_fwd", (np.arange(-3, 3).reshape(2, 3),)),
    ("maxpool_fwd", (np.arange(16).reshape(1, 1, 4, 4), 2, 2, 0)),
    ("lrn_fwd", (np.arange(8, dtype=np.float16).reshape(1, 2, 2, 2), 3, 0.1, 0.75, 2.0)),
    ("im2col", (np.arange(9, dtype=np.int32).reshape(1, 1, 3, 3), 2, 2, 1, 0)),
])
def test_other_dtypes_give_the_reference_result(op, args):
    """Integer and float16 inputs: every impl returns what the reference returns, dtype too."""
    ref = reference(op, *args)
    for impl in [i for i in registry.implementations(op) if i != "numpy"]:
        got = run(op, impl, *args)
        for g, r in zip(got if isinstance(got, tuple) else (got,),
                        ref if isinstance(ref, tuple) else (ref,)):
            assert g.dtype == r.dtype
            np.testing.assert_allclose(g.astype(np.float64), r.astype(np.float64), rtol=1e-3)
