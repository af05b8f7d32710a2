"""SGD with momentum, schedules, filter renormalization, initialisation, and overfitting."""
import numpy as np
import pytest

from zfraw.nets import build
from zfraw.optim import SGD, ReduceLROnPlateau, StepLR, initialize, renormalize_filters
from zfraw.training import train_step

from gradcheck import assert_close


@pytest.mark.parametrize("lr_mult", [None, {"conv1": 10.0, "fc8": 0.5}])
def test_sgd_momentum_and_no_weight_decay_on_biases(lr_mult):
    net = build("zf-32", num_classes=3, width=0.0625, dtype=np.float64)
    opt = SGD(net, lr=0.1, momentum=0.9, weight_decay=0.5, lr_mult=lr_mult)
    params = {n: p.copy() for n, p, _ in net.params_and_grads()}
    for _, _, g in net.params_and_grads():
        g[...] = 1.0
    opt.step()
    opt.step()
    for name, p, _ in net.params_and_grads():
        w0 = params[name]
        wd = 0.0 if name.endswith(".b") else 0.5
        lr = 0.1 * (lr_mult or {}).get(name.split(".")[0], 1.0)
        v1 = -lr * (1.0 + wd * w0)
        w1 = w0 + v1
        v2 = 0.9 * v1 - lr * (1.0 + wd * w1)
        assert_close(p, w1 + v2, rtol=1e-12, what=name)
    assert opt.lr == 0.1   # the schedules keep changing the base rate


def test_sgd_refuses_a_multiplier_for_no_layer():
    net = build("zf-32", num_classes=3, width=0.0625)
    with pytest.raises(ValueError, match="conv9 is not"):
        SGD(net, lr=0.1, lr_mult={"conv9": 2.0})
    with pytest.raises(ValueError, match="must be > 0"):
        SGD(net, lr=0.1, lr_mult={"conv1": 0.0})


def test_step_and_plateau_schedules():
    net = build("zf-32", num_classes=3, width=0.0625)
    opt = SGD(net, lr=1.0)
    step = StepLR(opt, step_size=2, gamma=0.5)
    assert [step.step() for _ in range(4)] == [1.0, 0.5, 0.5, 0.25]
    opt.lr = 1.0
    plateau = ReduceLROnPlateau(opt, factor=0.1, patience=1)
    lrs = [plateau.step(m) for m in (0.9, 0.8, 0.8, 0.8, 0.7, 0.7, 0.7)]
    assert_close(np.array(lrs), np.array([1, 1, 1, 0.1, 0.1, 0.1, 0.01]), rtol=1e-12)


def test_renormalize_filters_only_rescales_filters_over_the_radius():
    net = build("zf-32", num_classes=3, width=0.0625)
    W = net.layer("conv1").params["W"]
    W[...] = 0.01
    W[0] = 0.5
    W[1] = -0.3
    fc_before = net.layer("fc6").params["W"].copy()
    renormalize_filters(net, radius=0.1)
    rms = np.sqrt((W.reshape(W.shape[0], -1) ** 2).mean(axis=1))
    assert_close(rms[:2], np.array([0.1, 0.1]), rtol=1e-6)
    assert_close(W[2:], np.full_like(W[2:], 0.01))
    assert np.array_equal(net.layer("fc6").params["W"], fc_before)


def test_initialisations():
    net = build("zf-64", num_classes=10, width=0.25, init="paper")
    w = net.layer("conv2").params["W"]
    assert abs(w.std() - 0.01) < 5e-4 and (net.layer("conv2").params["b"] == 0).all()
    initialize(net, "he", seed=1)
    w = net.layer("conv2").params["W"]
    assert abs(w.std() - np.sqrt(2 / np.prod(w.shape[1:]))) < 0.05 * w.std()
    with pytest.raises(ValueError, match="unknown init"):
        initialize(net, "xavier")


def test_tiny_net_overfits_a_small_batch():
    rng = np.random.default_rng(0)
    net = build("zf-32", num_classes=4, width=0.125, init="he", seed=0)
    for layer in net.layers:  # at this width (128 fc units) dropout 0.5 prevents memorising
        if layer.kind == "dropout":
            layer.p = 0.0
    x = rng.standard_normal((16, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 4, 16)
    opt = SGD(net, lr=0.01, momentum=0.9)
    losses = []
    for _ in range(60):   # the training step itself, without the filter renormalization
        loss, _ = train_step(net, opt, x, y, renorm_radius=0)
        losses.append(float(loss))
    assert losses[-1] < losses[0] / 100, losses[::10]
    assert (net.eval().forward(x).argmax(1) == y).all()
