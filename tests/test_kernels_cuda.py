"""What is particular to kernels/cuda: its launchers' refusals, non-contiguous inputs, dropout's
bit-identical masks, the layers run on the CUDA window primitives, the TF32 switch. The
comparisons of each kernel (and variant) with the NumPy reference on the case table are in
tests/test_kernels.py, which runs the CUDA versions on a GPU and in the emulator.

Every test here runs on two backends (the ``dev`` fixture):
- ``gpu``: CuPy arrays on a real GPU, the kernels compiled by NVRTC (marked ``cuda``; skipped
  when zfraw.backend.cuda_available() is false);
- ``emu``: the same .cu files compiled for the CPU by g++ with kernels/cuda/host_shim.h and run
  through the same Python launchers on NumPy arrays (kernels/cuda/emulator.py; skipped without
  g++).
  This checks the kernels' index math, loop bounds, reductions and barriers, and the
  launchers' argument lists against the kernels' C signatures; not NVRTC, nor the GPU itself.
"""
from __future__ import annotations

import contextlib
import os
import zlib

import numpy as np
import pytest

from kernels.cuda import _loader, conv, elementwise, loss, pool
from kernels.kernel_cases import POOLS_ASYM_CEIL, pool_input
from zfraw import backend
from zfraw.ops import conv as ref_conv
from zfraw.ops import elementwise as ref_elementwise
from zfraw.ops import pool as ref_pool

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


class _Device:
    """Moves test data to the backend under test and back."""

    def __init__(self, name: str):
        self.name = name

    def put(self, a: np.ndarray):
        return backend.to_device(a, "cuda") if self.name == "gpu" else np.array(a)

    def get(self, a) -> np.ndarray:
        return backend.to_host(a)

    def noncontiguous(self, a: np.ndarray):
        """``a`` on the device as a non-contiguous view (spatial axes swapped in memory)."""
        return self.put(np.ascontiguousarray(np.swapaxes(a, -1, -2))).swapaxes(-1, -2)


@pytest.fixture(params=[pytest.param("gpu", marks=pytest.mark.cuda), "emu"])
def dev(request, monkeypatch):
    if request.param == "gpu":
        if not backend.cuda_available():
            pytest.skip("no usable GPU/CuPy")
    else:
        monkeypatch.setattr(_loader, "kernel", request.getfixturevalue("emulator").kernel)
    return _Device(request.param)


def _rng(*key):
    """A generator seeded from the test's key (crc32: stable across processes, unlike hash)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _close(dev, got, ref, dtype):
    got = dev.get(got)
    assert got.dtype == np.dtype(dtype) and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, **TOL[dtype])


def _equal(dev, got, ref):
    got = dev.get(got)
    assert got.dtype == ref.dtype and got.shape == ref.shape
    np.testing.assert_array_equal(got, ref)


# --- im2col / col2im -------------------------------------------------------------------------

def test_col2im_noncontiguous_and_bad_shape(dev):
    x_shape, (kh, kw, s, p) = (2, 3, 5, 4), (3, 2, 1, 1)
    OH, OW = ref_conv.check_window(x_shape, kh, kw, s, p)
    cols = _rng("col2im-nc").standard_normal((3 * kh * kw, 2 * OH * OW))
    got = conv.col2im(dev.noncontiguous(cols), x_shape, kh, kw, s, p)
    _close(dev, got, ref_conv.col2im(cols, x_shape, kh, kw, s, p), np.float64)
    with pytest.raises(ValueError, match="col2im"):
        conv.col2im(dev.put(cols[:, 1:]), x_shape, kh, kw, s, p)


def test_unsupported_dtype_is_rejected(dev):
    with pytest.raises(TypeError, match="float32 and float64"):
        conv.im2col(dev.put(np.zeros((1, 1, 3, 3), np.float16)), 2, 2, 1, 0)


# --- max pooling -----------------------------------------------------------------------------

def test_maxpool_noncontiguous_and_bad_shape(dev):
    x = _rng("pool-nc").standard_normal((2, 3, 7, 6))
    y, sw = pool.maxpool_fwd(dev.noncontiguous(x), 3, 2, 1)
    y_ref, sw_ref = ref_pool.maxpool_fwd(x, 3, 2, 1)
    _equal(dev, y, y_ref)
    _equal(dev, sw, sw_ref)
    dy = _rng("pool-nc-dy").standard_normal(y_ref.shape)
    dx = pool.maxpool_bwd(dev.noncontiguous(dy), sw, x.shape, 3, 2, 1)
    _close(dev, dx, ref_pool.maxpool_bwd(dy, sw_ref, x.shape, 3, 2, 1), np.float64)
    with pytest.raises(ValueError, match="maxpool_bwd"):
        pool.maxpool_bwd(dev.put(dy[:, :, 1:]), sw, x.shape, 3, 2, 1)
    with pytest.raises(ValueError, match="padding"):
        pool.maxpool_fwd(dev.put(x), 2, 2, 2)


# --- layers on the cuda primitives: grouped conv, asymmetric pads, ceil_mode pooling ---------

WINDOW_OPS = ("im2col", "col2im", "maxpool_fwd", "maxpool_bwd")


@contextlib.contextmanager
def _numpy_arrays_to_cuda_launchers():
    """While active, zfraw.ops sends the window primitives of NumPy arrays to the cuda
    launchers (which the emulator runs)."""
    from zfraw import ops
    from zfraw.ops import registry
    plain = ops.lookup
    ops.lookup = lambda op, x: registry._table[(op, "cuda")] if op in WINDOW_OPS else plain(op, x)
    try:
        yield
    finally:
        ops.lookup = plain


@pytest.fixture
def cuda_primitives(dev):
    """A context in which the layers run the cuda window primitives: on the GPU the registry's
    impl 'cuda'; emulated, the launchers called on NumPy arrays."""
    from zfraw import ops
    return ops.use_impl("cuda") if dev.name == "gpu" else _numpy_arrays_to_cuda_launchers()


def _layer_passes(dev, layer, x, r, context):
    """forward, backward (dx and grads) and deconv on ``dev`` under ``context``, on the host."""
    for d in (layer.params, layer.grads):
        for key in d:
            d[key] = dev.put(backend.to_host(d[key]))
    with context:
        y = dev.get(layer.forward(dev.put(x)))
        dx = dev.get(layer.backward(dev.put(r)))
        grads = [dev.get(layer.grads[key]).copy() for key in sorted(layer.grads)]
        down = dev.get(layer.deconv(dev.put(r)))
    return [y, dx, down] + grads


@pytest.mark.parametrize("cin,cout,k,s,pad,groups", [
    (4, 6, 3, 2, (1, 0, 2, 1), 2), (3, 3, 3, 1, 1, 3), (4, 4, 2, 1, (0, 1, 1, 0), 1)])
def test_conv_layer_grouped_and_asymmetric_on_cuda_primitives(dev, cuda_primitives, cin, cout,
                                                              k, s, pad, groups):
    from zfraw.layers import Conv2d
    rng = _rng("conv-layer", cin, cout, k, s, pad, groups)
    layer = Conv2d(cin, cout, k, s, pad, dtype=np.float64, groups=groups)
    layer.params["W"][...] = rng.standard_normal(layer.params["W"].shape)
    layer.params["b"][...] = rng.standard_normal(cout)
    x = rng.standard_normal((2, cin, 7, 6))
    r = rng.standard_normal((2,) + layer.output_shape(x.shape[1:]))
    ref = _layer_passes(_Device("emu"), layer, x, r, contextlib.nullcontext())  # NumPy arrays
    got = _layer_passes(dev, layer, x, r, cuda_primitives)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, **TOL[np.float64])


@pytest.mark.parametrize("shape,k,s,p,ceil,nc", POOLS_ASYM_CEIL, ids=str)
def test_maxpool_layer_asymmetric_and_ceil_on_cuda_primitives(dev, cuda_primitives, shape, k, s,
                                                              p, ceil, nc):
    from zfraw.layers import MaxPool2d
    layer = MaxPool2d(k, s, p, ceil_mode=ceil)
    x = pool_input(_rng("pool-layer", shape), shape, np.float64, "neg_inf")
    r = _rng("pool-layer-r", shape).standard_normal((shape[0],) + layer.output_shape(x.shape[1:]))
    ref = _layer_passes(_Device("emu"), layer, x, r, contextlib.nullcontext())
    sw_ref = backend.to_host(layer.switches)
    got = _layer_passes(dev, layer, x, r, cuda_primitives)
    np.testing.assert_array_equal(dev.get(layer.switches), sw_ref)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, **TOL[np.float64])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 0.7])
@pytest.mark.parametrize("seed", [0, 1, 12345, -7])
def test_dropout_mask_is_bit_identical(dev, p, seed, dtype):
    x = _rng("dropout").standard_normal((3, 7, 11)).astype(dtype)
    y, mask = elementwise.dropout_fwd(dev.noncontiguous(x), p, seed)
    y_ref, mask_ref = ref_elementwise.dropout_fwd(x, p, seed)
    _equal(dev, mask, mask_ref)
    _equal(dev, y, y_ref)


def test_dropout_rejects_bad_p(dev):
    with pytest.raises(ValueError, match="dropout"):
        elementwise.dropout_fwd(dev.put(np.ones(4, np.float32)), 1.0, 0)


def test_sgd_update_needs_contiguous_param(dev):
    p = dev.noncontiguous(np.zeros((3, 4), np.float32))
    z = dev.put(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="contiguous"):
        elementwise.sgd_update(p, z, z, 0.1, 0.9, 0.0)


# --- softmax cross-entropy -------------------------------------------------------------------

def test_softmax_xent_bad_label_gives_nan_and_bad_shapes_raise(dev):
    logits = dev.put(np.zeros((2, 3), np.float32))
    loss_got, _ = loss.softmax_xent(logits, dev.put(np.array([0, 3])))
    assert np.isnan(dev.get(loss_got))
    with pytest.raises(ValueError, match="labels"):
        loss.softmax_xent(logits, dev.put(np.array([0, 1, 2])))
    with pytest.raises(ValueError, match="one class"):
        loss.softmax_xent(dev.put(np.zeros((2, 0), np.float32)), dev.put(np.array([0, 0])))
    with pytest.raises(TypeError, match="integers"):
        loss.softmax_xent(logits, dev.put(np.array([0.0, 1.0])))


# --- dispatch through zfraw.ops (GPU only: the registry sends CuPy arrays to impl 'cuda') ----

@pytest.mark.cuda
def test_registry_dispatches_cupy_arrays_to_the_kernels():
    if not backend.cuda_available():
        pytest.skip("no usable GPU/CuPy")
    from zfraw import ops
    x = _rng("dispatch").standard_normal((2, 3, 7, 7)).astype(np.float32)
    xd = backend.to_device(x, "cuda")
    with ops.use_impl("cuda"):
        assert ops.lookup("maxpool_fwd", xd) is pool.maxpool_fwd
        y, sw = ops.maxpool_fwd(xd, 3, 2, 0)
        dx = ops.unpool(y, sw, x.shape, 3, 2, 0)
    y_ref, sw_ref = ref_pool.maxpool_fwd(x, 3, 2, 0)
    np.testing.assert_array_equal(backend.to_host(sw), sw_ref)
    np.testing.assert_allclose(backend.to_host(dx), ref_pool.maxpool_bwd(y_ref, sw_ref, x.shape,
                                                                         3, 2, 0), rtol=1e-6)


# --- TF32 switch for cupy.matmul -------------------------------------------------------------

def test_set_tf32_sets_cupys_environment_variable(monkeypatch):
    from kernels.cuda import set_tf32, tf32_enabled
    monkeypatch.delenv("CUPY_TF32", raising=False)  # restored after the test
    try:
        set_tf32(True)
        assert os.environ["CUPY_TF32"] == "1"
        assert tf32_enabled() == backend.cuda_available()
    finally:
        set_tf32(False)
    assert os.environ["CUPY_TF32"] == "0" and not tf32_enabled()


@pytest.mark.cuda
def test_set_tf32_changes_float32_matmul_precision():
    if not backend.cuda_available():
        pytest.skip("no usable GPU/CuPy")
    from kernels.cuda import set_tf32
    cupy = backend.cupy_module()
    if int(cupy.cuda.Device().compute_capability) < 80:
        pytest.skip("TF32 needs compute capability 8.0+")
    # 1 + 2^-12 rounds to 1.0 in TF32 (10 mantissa bits), while every partial sum of up to
    # 1024 such terms is exact in float32 (22 bits), whatever the summation order. n is large
    # enough that cuBLAS picks tensor-core kernels when they are allowed.
    n = 1024
    a = cupy.full((n, n), 1.0 + 2.0 ** -12, dtype=cupy.float32)
    b = cupy.ones((n, n), dtype=cupy.float32)
    try:
        set_tf32(False)
        full = float((a @ b)[0, 0])
        set_tf32(True)
        tf32 = float((a @ b)[0, 0])
    finally:
        set_tf32(False)
    assert full == n * (1.0 + 2.0 ** -12)
    assert tf32 == float(n)  # the inputs rounded to 1.0
