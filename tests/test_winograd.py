"""Winograd F(2x2, 3x3): the transforms against the direct convolution, their adjoints, and the
Conv2d layout that uses them (forward, both gradients, deconv) against the im2col one."""
import numpy as np
import pytest

import zfraw.layers.conv as conv_module
from zfraw.layers import Conv2d
from zfraw.ops import conv as conv_ref
from zfraw.ops import winograd as wg
from zfraw.ops import registry

from definitions import check_layer_grads, conv64
from gradcheck import tie_free

# (N, C, H, W), filters, pad: odd and even sizes, no padding, asymmetric padding, 1x1 output.
CASES = [((2, 3, 7, 6), 4, 1), ((1, 2, 5, 5), 3, 0), ((2, 3, 6, 9), 2, (1, 0, 2, 1)),
         ((1, 1, 3, 3), 2, 0), ((3, 4, 4, 4), 5, (0, 2, 1, 0))]


def direct(x, W, pad):
    """The 3x3 stride-1 correlation as im2col + one product, in float64."""
    n, c, h, w = x.shape
    f = W.shape[0]
    oh, ow, _, _ = wg.tile_grid(h, w, pad)
    cols = conv_ref.im2col(x.astype(np.float64), 3, 3, 1, pad)
    return (W.reshape(f, -1).astype(np.float64) @ cols).reshape(f, n, oh, ow).transpose(1, 0, 2, 3)


def winograd_conv(x, W, pad):
    oh, ow, _, _ = wg.tile_grid(x.shape[2], x.shape[3], pad)
    return wg.output_transform(wg.filter_transform(W) @ wg.input_transform(x, pad), len(x), oh, ow)


@pytest.mark.parametrize("shape,f,pad", CASES, ids=str)
def test_the_transforms_compute_the_convolution(shape, f, pad):
    rng = np.random.default_rng(0)
    x, W = rng.standard_normal(shape), rng.standard_normal((f, shape[1], 3, 3))
    np.testing.assert_allclose(winograd_conv(x, W, pad), direct(x, W, pad), rtol=1e-12, atol=1e-12)


def test_float32_error_on_a_zf_conv3_shape():
    """zf's conv4 at batch 2 (384 -> 384 maps, 13x13): the float32 Winograd result is within
    2e-6 of the float64 direct sum, relative to the largest output (measured: about 6e-7 at
    batch 16; the direct float32 im2col product is about 2e-7)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 384, 13, 13)).astype(np.float32)
    W = (rng.standard_normal((384, 384, 3, 3)) / 60).astype(np.float32)
    ref = direct(x, W, 1)
    err = np.abs(winograd_conv(x, W, 1) - ref).max() / np.abs(ref).max()
    assert err < 2e-6, err


@pytest.mark.parametrize("shape,f,pad", CASES, ids=str)
def test_the_adjoints_are_the_transposes(shape, f, pad):
    """<T x, r> = <x, T^T r> for the input and the output transforms."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    V = wg.input_transform(x, pad)
    r = rng.standard_normal(V.shape)
    assert np.vdot(V, r) == pytest.approx(np.vdot(x, wg.input_transform_adjoint(r, shape, pad)),
                                          rel=1e-12)
    oh, ow, _, _ = wg.tile_grid(shape[2], shape[3], pad)
    M = rng.standard_normal((16, f, V.shape[2]))
    dy = rng.standard_normal((shape[0], f, oh, ow))
    assert np.vdot(wg.output_transform(M, shape[0], oh, ow), dy) == pytest.approx(
        np.vdot(M, wg.output_transform_adjoint(dy)), rel=1e-12)
    dU = rng.standard_normal((16, f, shape[1]))
    W = rng.standard_normal((f, shape[1], 3, 3))
    assert np.vdot(wg.filter_transform(W), dU) == pytest.approx(
        np.vdot(W, wg.filter_transform_adjoint(dU)), rel=1e-12)


@pytest.fixture
def winograd_on(monkeypatch):
    """Winograd on the CPU for every shape (the small test maps waste much of their tiles, and
    have fewer channels than WINOGRAD_MIN_CHANNELS)."""
    monkeypatch.setitem(conv_module.WINOGRAD, "cpu", True)
    monkeypatch.setattr(conv_module, "WINOGRAD_MAX_TILED", float("inf"))
    monkeypatch.setattr(conv_module, "WINOGRAD_MIN_CHANNELS", 1)


def test_winograd_is_left_to_im2col_where_its_tiles_waste_much(monkeypatch):
    """WINOGRAD_MAX_TILED: an 8x8 output (tiles cover it exactly) and a 13x13 one (196 tile
    outputs for 169) take Winograd; a 5x5 one (36 for 25) and a 9x9 one (100 for 81) do not."""
    monkeypatch.setitem(conv_module.WINOGRAD, "cpu", True)
    monkeypatch.setattr(conv_module, "WINOGRAD_MIN_CHANNELS", 1)
    for side, expected in ((8, True), (13, True), (5, False), (9, False)):
        layer = Conv2d(2, 3, 3, 1, 1)
        layer.forward(np.zeros((1, 2, side, side), np.float32))
        assert (layer.layout == "winograd") == expected, side


def test_winograd_is_left_to_im2col_below_its_channel_count(monkeypatch):
    """WINOGRAD_MIN_CHANNELS: thin layers' 16 products are too thin to pay for the transforms."""
    monkeypatch.setitem(conv_module.WINOGRAD, "cpu", True)
    least = conv_module.WINOGRAD_MIN_CHANNELS
    for channels, expected in ((least - 1, False), (least, True)):
        layer = Conv2d(channels, 2, 3, 1, 1)
        layer.forward(np.zeros((1, channels, 8, 8), np.float32))
        assert (layer.layout == "winograd") == expected, channels


@pytest.mark.parametrize("shape,f,pad", CASES, ids=str)
def test_the_winograd_layer_passes_the_gradient_check(winograd_on, shape, f, pad):
    layer = conv64(shape[1], f, 3, 1, pad, seed=3)
    check_layer_grads(layer, tie_free(shape, seed=4))
    assert layer.layout == "winograd"


@pytest.mark.parametrize("impl", [i for i in ("numpy", "numba") if registry.available(i)])
@pytest.mark.parametrize("shape,f,pad", CASES, ids=str)
def test_the_winograd_layer_equals_the_im2col_layer(monkeypatch, impl, shape, f, pad):
    monkeypatch.setattr(conv_module, "WINOGRAD_MAX_TILED", float("inf"))
    monkeypatch.setattr(conv_module, "WINOGRAD_MIN_CHANNELS", 1)
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(np.float32)
    results = {}
    for on in (False, True):
        monkeypatch.setitem(conv_module.WINOGRAD, "cpu", on)
        layer = Conv2d(shape[1], f, 3, 1, pad)
        layer.params["W"][...] = rng.standard_normal(layer.params["W"].shape) if not on \
            else results[False]["W"]
        layer.params["b"][...] = np.arange(f)
        with registry.use_impl(impl):
            y = layer.forward(x)
            dy = np.random.default_rng(6).standard_normal(y.shape).astype(np.float32)
            dx = layer.backward(dy)
            results[on] = dict(y=y, dx=dx, dW=layer.grads["W"].copy(), db=layer.grads["b"].copy(),
                               deconv=layer.deconv(dy), W=layer.params["W"].copy(),
                               layout=layer.layout)
    assert results[True]["layout"] == "winograd" and results[False]["layout"] != "winograd"
    for key in ("y", "dx", "dW", "db", "deconv"):
        np.testing.assert_allclose(results[True][key], results[False][key], rtol=1e-4,
                                   atol=1e-4 * np.abs(results[False][key]).max(), err_msg=key)


@pytest.mark.parametrize("k,stride,groups", [(5, 1, 1), (3, 2, 1), (3, 1, 2)])
def test_other_layers_keep_im2col(winograd_on, k, stride, groups):
    layer = Conv2d(4, 4, k, stride, 1, groups=groups)
    layer.forward(np.zeros((1, 4, 8, 8), np.float32))
    assert layer.layout != "winograd"
