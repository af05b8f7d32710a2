"""Projections to pixel space: a hand computation on conv -> ReLU -> pool, the three rules
checked against each other and against backprop, and per-image switches in a batch."""
import numpy as np
import pytest

from zfraw import ops
from zfraw.layers import Conv2d, LocalResponseNorm, ReLU
from zfraw.nets import Net, build_layers
from zfraw.optim.init import initialize
from zfraw.viz.projection import project_strongest, project_units, unit_signal


def tiny_net(specs, input_shape, seed=0, dtype=np.float64):
    net = Net(build_layers(specs, input_shape, 3, dtype=dtype), input_shape, 3)
    initialize(net, "he", seed)
    for layer in net.layers:  # non-zero biases, which projections must ignore
        if "b" in layer.params:
            layer.params["b"][...] = np.random.default_rng(seed).standard_normal(
                layer.params["b"].shape)
    return net


def test_conv_relu_pool_projection_by_hand():
    # One 2x2 filter on a 5x5 image, ReLU, 2x2 max pool stride 2: all by explicit loops.
    net = tiny_net([("conv", "conv", dict(out=1, k=2)), ("relu", "relu", {}),
                    ("pool", "pool", dict(k=2, stride=2))], (1, 5, 5))
    W = np.array([[1.0, -2.0], [0.5, 3.0]])
    net.layer("conv").params["W"][0, 0] = W
    net.layer("conv").params["b"][...] = 0.25
    rng = np.random.default_rng(3)
    x = rng.permutation(25).reshape(1, 1, 5, 5).astype(np.float64) / 10 - 1.0

    conv = np.array([[(x[0, 0, i:i + 2, j:j + 2] * W).sum() + 0.25 for j in range(4)]
                     for i in range(4)])
    relu = np.maximum(conv, 0)
    pool = relu.reshape(2, 2, 2, 2).max(axis=(1, 3))
    py, px = np.unravel_index(np.argmax(pool), pool.shape)
    win = relu[2 * py:2 * py + 2, 2 * px:2 * px + 2]
    sy, sx = np.unravel_index(np.argmax(win), (2, 2))          # first maximum wins
    unpooled = np.zeros((4, 4))
    unpooled[2 * py + sy, 2 * px + sx] = pool[py, px]            # unpool through the switch
    rect = np.maximum(unpooled, 0)                               # rectify going down
    expect = np.zeros((5, 5))
    for i in range(4):                                           # transposed conv, no bias
        for j in range(4):
            expect[i:i + 2, j:j + 2] += rect[i, j] * W

    proj, units, values = project_strongest(net, x, "pool", 0)
    assert tuple(units[0]) == (0, py, px)
    np.testing.assert_allclose(values[0], pool[py, px], rtol=1e-12)
    np.testing.assert_allclose(proj[0, 0], expect, rtol=1e-12, atol=1e-12)
    assert np.count_nonzero(expect) > 1


NO_LRN = [("conv1", "conv", dict(out=4, k=3, stride=1, pad=1)), ("relu1", "relu", {}),
          ("pool1", "pool", dict(k=3, stride=2, pad=1)),
          ("conv2", "conv", dict(out=5, k=3, stride=2, pad=0)), ("relu2", "relu", {}),
          ("pool2", "pool", dict(k=2, stride=1)), ("flatten", "flatten", {}),
          ("fc3", "fc", dict(out=6)), ("relu3", "relu", {}), ("fc4", "fc", dict(out="classes"))]


def manual_projection(net, layer, signal, relu_rule):
    """Walk down with each layer's backward, except that ReLUs apply relu_rule."""
    r = signal
    for lay in reversed(net.layers[:net.index(layer) + 1]):
        r = relu_rule(lay, r) if isinstance(lay, ReLU) else lay.backward(r)
    return r


@pytest.mark.parametrize("layer", ["relu1", "pool1", "conv2", "pool2", "relu3"])
def test_rules_against_each_other(layer):
    net = tiny_net(NO_LRN, (2, 15, 15), seed=1)
    x = np.random.default_rng(2).standard_normal((3, 2, 15, 15))
    act = net.eval().forward(x, until=layer)
    sig = unit_signal(act, np.array([[0, 1, 1], [1, 0, 1], [2, 1, 0]]) if act.ndim == 4
                      else np.array([[0, 0, 0], [3, 0, 0], [5, 0, 0]]))
    deconv = net.project(layer, sig, "deconv")
    backprop = net.project(layer, sig, "backprop")
    guided = net.project(layer, sig, "guided")
    np.testing.assert_allclose(
        deconv, manual_projection(net, layer, sig, lambda lay, r: ops.rectify(r)), atol=1e-12)
    np.testing.assert_allclose(
        guided, manual_projection(net, layer, sig, lambda lay, r: ops.rectify(lay.backward(r))),
        atol=1e-12)
    np.testing.assert_allclose(backprop, net.backward(sig, start=layer), atol=1e-12)
    if layer not in ("relu1", "pool1"):  # above one ReLU the three rules really differ
        assert np.abs(deconv - backprop).max() > 1e-6


def test_backprop_rule_is_the_input_gradient_with_lrn():
    lrn = ("norm1", "lrn", dict(size=3, alpha=0.5, beta=0.75, bias=1.0))
    specs = NO_LRN[:3] + [lrn] + NO_LRN[3:5]
    net = tiny_net(specs, (2, 15, 15), seed=4)
    x = np.random.default_rng(5).standard_normal((2, 2, 15, 15))
    units = np.array([[1, 1, 1], [3, 2, 0]])
    p = project_units(net, x, "relu2", units, rule="backprop")
    # Finite differences of the selected activation w.r.t. the input (float64).
    eps, k = 1e-6, (0, 1, 5, 7)
    for n in range(2):
        xp, xm = x.copy(), x.copy()
        xp[n][k[1:]] += eps
        xm[n][k[1:]] -= eps
        c, yy, xx = units[n]
        fp = net.forward(xp, until="relu2")[n, c, yy, xx]
        fm = net.forward(xm, until="relu2")[n, c, yy, xx]
        act = net.forward(x, until="relu2")[n, c, yy, xx]
        # projection of the signal act * e_unit = act * d(unit)/dx
        np.testing.assert_allclose(p[n][k[1:]], act * (fp - fm) / (2 * eps), rtol=1e-5, atol=1e-8)
    d = project_units(net, x, "relu2", units, rule="deconv")
    assert isinstance(net.layer("norm1"), LocalResponseNorm) and np.abs(d - p).max() > 1e-6


def test_each_image_uses_its_own_switches():
    net = tiny_net(NO_LRN, (2, 15, 15), seed=6)
    x = np.random.default_rng(7).standard_normal((4, 2, 15, 15))
    batch, units, _ = project_strongest(net, x, "pool2", [0, 1, 2, 3], rule="deconv")
    for n in range(4):
        one = project_units(net, x[n:n + 1], "pool2", units[n:n + 1])
        np.testing.assert_allclose(batch[n], one[0], atol=1e-12)
    whole, _, vals = project_strongest(net, x, "pool2", 1, where="map")
    np.testing.assert_allclose(vals, net.forward(x, until="pool2")[:, 1].sum(axis=(1, 2)))
    with pytest.raises(ValueError):
        project_strongest(net, x, "pool2", 9)
    assert isinstance(net.layer("conv1"), Conv2d)
