"""Every layer: float64 central-difference gradient checks and its deconv against the definition."""
import numpy as np
import pytest

import zfraw.layers.conv as conv_module
from zfraw.layers import (Conv2d, Dropout, Flatten, Linear, LocalResponseNorm, MaxPool2d, ReLU,
                          SoftmaxCrossEntropy)

from gradcheck import assert_close, numeric_grad, tie_free


def check_layer_grads(layer, x, seed=0, atol=1e-6, rtol=1e-5):
    """Compare backward's dx and every param grad with central differences of <f(x), dy>."""
    dy = np.random.default_rng(seed).standard_normal(layer.forward(x).shape)
    objective = lambda: float(np.vdot(layer.forward(x), dy))  # noqa: E731
    layer.forward(x)
    dx = layer.backward(dy)
    assert_close(dx, numeric_grad(objective, x), atol, rtol, what=f"{layer.name} dx")
    for key, p in layer.params.items():
        layer.forward(x)
        layer.backward(dy)
        analytic = layer.grads[key].copy()
        assert_close(analytic, numeric_grad(objective, p), atol, rtol, what=f"{layer.name} d{key}")


def conv64(in_ch, out_ch, k, s, p, seed=0):
    layer = Conv2d(in_ch, out_ch, k, s, p, dtype=np.float64)
    rng = np.random.default_rng(seed)
    layer.params["W"][...] = rng.standard_normal(layer.params["W"].shape)
    layer.params["b"][...] = rng.standard_normal(out_ch)
    return layer


@pytest.fixture(params=["batched", "per-image"])
def conv_products(request, monkeypatch):
    """Run a conv test through both ways of doing the products (zfraw/layers/conv.py): the
    threshold on output pixels is set so that every map is small, or every map is large."""
    monkeypatch.setattr(conv_module, "PER_IMAGE_MIN_PIXELS", 10**9 if request.param == "batched" else 1)
    return request.param


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
def test_maxpool_gradients_and_deconv(k, s, p):
    layer = MaxPool2d(k, s, p)
    x = tie_free((2, 3, 9, 8), seed=k * s + p)
    check_layer_grads(layer, x, atol=1e-5)
    y = layer.forward(x)
    r = np.random.default_rng(1).standard_normal(y.shape)
    assert_close(layer.deconv(r), layer.backward(r))


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


def test_softmax_cross_entropy_layer_gradient():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 4))
    labels = rng.integers(0, 4, 6)
    loss = SoftmaxCrossEntropy()
    loss.forward(logits, labels)
    num = numeric_grad(lambda: float(SoftmaxCrossEntropy().forward(logits, labels)), logits)
    assert_close(loss.backward(), num, atol=1e-8)


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
