"""Every layer: float64 central-difference gradient checks and its deconv against the definition."""
import numpy as np
import pytest

import zfraw.layers.conv as conv_module
from zfraw import backend, ops
from zfraw.layers import (AvgPool2d, Conv2d, Dropout, Flatten, GlobalAvgPool2d, Linear,
                          LocalResponseNorm, MaxPool2d, ReLU)
from zfraw.ops import registry

from definitions import check_layer_grads, conv64, naive_avgpool
from gradcheck import assert_close, numeric_grad, tie_free


@pytest.mark.parametrize("n,c,h,w,f,k,s,p", [
    (1, 1, 5, 5, 1, 3, 1, 0), (2, 3, 7, 6, 4, 3, 2, 1), (3, 2, 9, 9, 3, 5, 2, 2),
    (1, 3, 8, 7, 2, 7, 2, 1), (2, 2, 5, 5, 2, 1, 3, 0), (2, 1, 6, 6, 2, 2, 2, 0)])
def test_conv_gradients(n, c, h, w, f, k, s, p, conv_products):
    check_layer_grads(conv64(c, f, k, s, p), tie_free((n, c, h, w), seed=n + k))


def test_conv_deconv_is_gradient_of_inner_product_and_flipped_transposed_filter(conv_products):
    layer = conv64(3, 4, 3, 1, 1, seed=1)
    layer.params["b"][...] = 5.0  # the deconv must ignore the bias
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 6, 5))
    r = rng.standard_normal(layer.forward(x).shape)
    down = layer.deconv(r)
    grad = numeric_grad(lambda: float(np.vdot(layer.forward(x), r)), x)
    assert_close(down, grad, atol=1e-6)
    # Stride 1, pad 1, 3x3: the same as a 'same' correlation of r with W flipped in both spatial
    # axes and transposed in/out channels, written out directly.
    Wt = layer.params["W"][:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (in, out, 3, 3)
    rp = np.pad(r, ((0, 0), (0, 0), (1, 1), (1, 1)))
    direct = np.zeros_like(x)
    for i in range(3):
        for j in range(3):
            direct += np.einsum("oc,nchw->nohw", Wt[:, :, i, j], rp[:, :, i:i + 6, j:j + 5])
    assert_close(down, direct, atol=1e-10)


def test_relu_gradient_and_deconv_rectifies():
    layer = ReLU()
    layer.name = "relu"
    x = tie_free((2, 3, 4, 5), seed=3)
    check_layer_grads(layer, x)
    layer.forward(x)
    r = np.random.default_rng(0).standard_normal(x.shape)
    assert_close(layer.deconv(r), np.maximum(r, 0))  # regardless of where x was active
    assert (layer.deconv(r)[x < 0] > 0).any()


@pytest.mark.parametrize("k,s,p", [(3, 2, 1), (3, 2, 0), (2, 2, 0), (3, 3, 1)])
def test_maxpool_gradients(k, s, p):
    check_layer_grads(MaxPool2d(k, s, p), tie_free((2, 3, 9, 8), seed=k * s + p), atol=1e-5)


def unpool_by_hand(r, switches, x_shape, k, s, p):
    """The definition of unpooling: each r[n, c, oh, ow] added at its window's position
    (i, j) = divmod(switch, k) of a zero map padded by p, the padding then cropped."""
    N, C, H, W = x_shape
    up = np.zeros((N, C, H + 2 * p, W + 2 * p), r.dtype)
    for n, c, oh, ow in np.ndindex(*r.shape):
        i, j = divmod(int(switches[n, c, oh, ow]), k)
        up[n, c, oh * s + i, ow * s + j] += r[n, c, oh, ow]
    return up[:, :, p:p + H, p:p + W]


@pytest.mark.parametrize("impl", registry.available_impls())
@pytest.mark.parametrize("k,s,p", [(3, 2, 1), (3, 1, 1), (2, 2, 0), (3, 3, 1)])
def test_maxpool_deconv_unpools_through_the_switches(impl, k, s, p):
    """On every impl present: forward records switches at each window's maximum, deconv puts r
    there (overlapping windows, k=3 s=1, accumulate)."""
    device = registry.impl_device(impl) or "cpu"
    x = tie_free((2, 3, 9, 8), seed=k * s + p)
    layer = MaxPool2d(k, s, p)
    with ops.use_impl(impl):
        y = backend.to_host(layer.forward(backend.to_device(x, device)))
        r = np.random.default_rng(1).standard_normal(y.shape)
        got = backend.to_host(layer.deconv(backend.to_device(r, device)))
    switches = backend.to_host(layer.switches)
    for n, c, oh, ow in np.ndindex(*y.shape):  # each switch is a real pixel holding the maximum
        i, j = divmod(int(switches[n, c, oh, ow]), k)
        h, w = oh * s - p + i, ow * s - p + j
        assert 0 <= h < x.shape[2] and 0 <= w < x.shape[3] and x[n, c, h, w] == y[n, c, oh, ow]
    assert_close(got, unpool_by_hand(r, switches, x.shape, k, s, p), atol=1e-12)


AVG_GEOMETRIES = [  # k, stride, pad, ceil_mode, count_include_pad
    (3, 2, 1, False, False), (3, 2, 1, False, True), (2, 2, 0, False, False),
    (3, 1, 2, False, True), (3, 2, 0, True, True), (3, 2, 1, True, True),
    (3, 2, (1, 0, 0, 1), True, False), (3, 3, (0, 1, 2, 0), False, True)]


def _on(impl, fn, *arrays):
    """fn(*arrays) under ``impl``, the arrays moved to its device and the result brought back."""
    device = registry.impl_device(impl) or "cpu"
    with ops.use_impl(impl):
        return backend.to_host(fn(*(backend.to_device(a, device) for a in arrays)))


@pytest.mark.parametrize("impl", registry.available_impls())
@pytest.mark.parametrize("k,s,p,ceil,count_pad", AVG_GEOMETRIES)
def test_avgpool_forward_is_the_onnx_definition_and_backward_its_gradient(impl, k, s, p, ceil,
                                                                          count_pad):
    """On every impl present: forward equals the window-by-window definition (both divisors,
    ceil mode, asymmetric pads), backward equals float64 central differences."""
    layer = AvgPool2d(k, s, p, ceil_mode=ceil, count_include_pad=count_pad)
    x = tie_free((2, 3, 9, 8), seed=k * s + ceil + 2 * count_pad)
    y = _on(impl, layer.forward, x)
    assert_close(y, naive_avgpool(x, k, k, s, p, ceil, count_pad), atol=1e-12, rtol=1e-12)
    with ops.use_impl(impl):
        if registry.impl_device(impl) in (None, "cpu"):  # host float64 arrays
            check_layer_grads(layer, x)


@pytest.mark.parametrize("impl", registry.available_impls())
@pytest.mark.parametrize("k,s,p,ceil,count_pad", AVG_GEOMETRIES)
def test_avgpool_deconv_spreads_each_value_evenly_over_its_window(impl, k, s, p, ceil,
                                                                   count_pad):
    """deconv is the transpose of the average, written out: each r[oh, ow] / divisor added to
    every input pixel of its window; and <A x, r> = <x, A^T r>."""
    layer = AvgPool2d(k, s, p, ceil_mode=ceil, count_include_pad=count_pad)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 9, 8))
    y = _on(impl, layer.forward, x)
    r = rng.standard_normal(y.shape)
    got = _on(impl, layer.deconv, r)
    H, W = x.shape[2:]
    t, left, bottom, right = layer.pads
    want = np.zeros_like(x)
    for n, c, oh, ow in np.ndindex(*r.shape):
        h0, w0 = oh * s - t, ow * s - left
        if count_pad:  # taps inside the padded input
            div = (min(h0 + k, H + bottom) - h0) * (min(w0 + k, W + right) - w0)
        else:          # taps inside the input
            div = (min(h0 + k, H) - max(h0, 0)) * (min(w0 + k, W) - max(w0, 0))
        want[n, c, max(h0, 0):h0 + k, max(w0, 0):w0 + k] += r[n, c, oh, ow] / div
    assert_close(got, want, atol=1e-12)
    assert abs(np.vdot(y, r) - np.vdot(x, got)) < 1e-10 * np.abs(y).sum() * np.abs(r).max()


@pytest.mark.parametrize("impl", registry.available_impls())
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 2, 1, 1), (2, 4, 6, 6)])
def test_global_avgpool_is_the_mean_of_each_map(impl, shape):
    layer = GlobalAvgPool2d()
    x = tie_free(shape, seed=shape[2])
    assert layer.output_shape(shape[1:]) == (shape[1], 1, 1)
    assert_close(_on(impl, layer.forward, x), x.mean(axis=(2, 3), keepdims=True), atol=1e-12)
    r = np.random.default_rng(1).standard_normal((shape[0], shape[1], 1, 1))
    h, w = shape[2:]
    assert_close(_on(impl, layer.deconv, r), np.broadcast_to(r / (h * w), shape), atol=1e-12)
    with ops.use_impl(impl):
        if registry.impl_device(impl) in (None, "cpu"):
            check_layer_grads(layer, x)


def test_avgpool_layers_refuse_bad_geometry_by_name():
    layer = AvgPool2d(3, 2, 3)
    layer.name = "pool9"
    with pytest.raises(ValueError, match=r"pool9.*smaller than the window"):
        layer.output_shape((2, 8, 8))
    gap = GlobalAvgPool2d()
    gap.name = "gap"
    with pytest.raises(ValueError, match=r"gap.*4-d"):
        gap.forward(np.zeros((3, 4, 4), np.float32))


@pytest.mark.parametrize("size", [3, 5])
def test_lrn_gradients_and_deconv_passes_through(size):
    layer = LocalResponseNorm(size=size, alpha=0.4, beta=0.75, bias=1.0)
    x = np.random.default_rng(size).standard_normal((2, 7, 3, 3))
    check_layer_grads(layer, x)
    r = np.random.default_rng(0).standard_normal(x.shape)
    assert layer.deconv(r) is r


def test_linear_and_flatten_gradients_and_deconv():
    rng = np.random.default_rng(0)
    lin = Linear(12, 5, dtype=np.float64)
    lin.params["W"][...] = rng.standard_normal((5, 12))
    lin.params["b"][...] = rng.standard_normal(5)
    x = rng.standard_normal((3, 12))
    check_layer_grads(lin, x)
    r = rng.standard_normal((3, 5))
    assert_close(lin.deconv(r), r @ lin.params["W"])
    flat = Flatten()
    xm = rng.standard_normal((2, 3, 2, 2))
    check_layer_grads(flat, xm)
    assert_close(flat.deconv(flat.forward(xm)), xm)


def test_dropout_gradient_train_and_eval():
    layer = Dropout(0.5, seed=3)
    x = np.random.default_rng(0).standard_normal((4, 50))
    y = layer.forward(x)
    mask = layer.mask
    assert_close(y, x * mask)
    assert_close(layer.backward(np.ones_like(x)), mask)
    y_next = layer.forward(x)
    assert not np.array_equal(y_next, y)  # a fresh mask on every training call
    layer.training = False
    assert layer.forward(x) is x and layer.backward(x) is x


def test_layers_name_bad_inputs():
    conv = Conv2d(3, 8, 5)
    conv.name = "conv1"
    with pytest.raises(ValueError, match=r"conv1.*3 input channels"):
        conv.forward(np.zeros((1, 4, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"conv1.*4-d"):
        conv.forward(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"conv1.*smaller than"):
        conv.forward(np.zeros((1, 3, 4, 4), np.float32))
    lin = Linear(10, 2)
    with pytest.raises(ValueError, match=r"\(N, 10\)"):
        lin.forward(np.zeros((2, 9), np.float32))


def test_conv_products_per_image_and_batched_agree_on_a_large_map(monkeypatch):
    """On a 64x64 output map (which runs per image at the default threshold), both ways of doing
    the products give the same forward, weight/bias/input gradients and deconv."""
    assert 64 * 64 >= conv_module.PER_IMAGE_MIN_PIXELS
    rng = np.random.default_rng(3)
    layer = conv64(3, 5, 3, 1, 1)
    x, dy = rng.standard_normal((2, 3, 64, 64)), rng.standard_normal((2, 5, 64, 64))
    results = []
    for threshold in (1, 10**9):
        monkeypatch.setattr(conv_module, "PER_IMAGE_MIN_PIXELS", threshold)
        y = layer.forward(x)
        dx = layer.backward(dy)
        results.append((y, dx, layer.grads["W"].copy(), layer.grads["b"].copy(), layer.deconv(dy)))
    for per_image, batched in zip(*results):
        assert_close(per_image, batched, atol=1e-9)


def _every_kind_of_layer():
    """(layer, input) for each layer class, float64, with parameters where it has them."""
    rng = np.random.default_rng(4)
    lin = Linear(12, 5, dtype=np.float64)
    lin.params["W"][...] = rng.standard_normal((5, 12))
    maps = tie_free((2, 3, 6, 5), seed=4)
    return [(conv64(3, 4, 3, 1, 1), maps), (ReLU(), maps), (MaxPool2d(3, 2, 1), maps),
            (LocalResponseNorm(size=3, alpha=0.4), maps), (Dropout(0.5, seed=1), maps),
            (Flatten(), maps), (lin, rng.standard_normal((3, 12))),
            (AvgPool2d(3, 2, 1, count_include_pad=True), maps), (GlobalAvgPool2d(), maps)]


@pytest.mark.parametrize("index", range(9))
def test_every_layer_takes_need_dx_and_then_fills_only_its_grads(index, conv_products):
    """The base Layer's contract: backward(dy, need_dx=False) returns None and fills the same
    grads as backward(dy)."""
    layer, x = _every_kind_of_layer()[index]
    dy = np.random.default_rng(5).standard_normal(layer.forward(x).shape)
    assert layer.backward(dy).shape == x.shape
    full = {key: g.copy() for key, g in layer.grads.items()}
    for g in layer.grads.values():
        g[...] = 0
    assert layer.backward(dy, need_dx=False) is None
    for key, g in layer.grads.items():
        assert_close(g, full[key], atol=0, rtol=1e-12, what=key)


@pytest.mark.parametrize("threshold,layout", [(1, "per_image"), (10**9, "batched")])
def test_conv_backward_and_deconv_read_the_layout_forward_recorded(monkeypatch, threshold, layout):
    """Forward names the products' layout it picked; backward and deconv follow it without
    deciding again (here deciding again would raise)."""
    monkeypatch.setattr(conv_module, "PER_IMAGE_MIN_PIXELS", threshold)
    rng = np.random.default_rng(6)
    layer = conv64(3, 4, 3, 2, 1)
    x = rng.standard_normal((2, 3, 7, 6))
    dy = rng.standard_normal(layer.forward(x).shape)
    assert layer.layout == layout
    expected = (layer.backward(dy), layer.grads["W"].copy(), layer.grads["b"].copy(),
                layer.deconv(dy))

    def decide(*args):
        raise AssertionError("the layout was decided again after forward")

    monkeypatch.setattr(conv_module, "_per_image", decide)
    got = (layer.backward(dy), layer.grads["W"], layer.grads["b"], layer.deconv(dy))
    for g, e in zip(got, expected):
        assert_close(g, e, atol=0, rtol=0)
