"""Nets: whole-net gradients, projections, receptive fields, summaries, errors, state."""
import re

import numpy as np
import pytest

from zfraw import nets, ops
from zfraw.nets import Net, build, build_layers

from gradcheck import assert_close, numeric_grad, tie_free

TINY = [("conv1", "conv", dict(out=4, k=3, stride=1, pad=1)), ("relu1", "relu", {}),
        ("pool1", "pool", dict(k=3, stride=2, pad=1)), ("norm1", "lrn", dict(alpha=0.5)),
        ("conv2", "conv", dict(out=5, k=3, stride=2, pad=1)), ("relu2", "relu", {}),
        ("pool2", "pool", dict(k=2, stride=2)), ("flatten", "flatten", {}),
        ("fc3", "fc", dict(out=6)), ("relu3", "relu", {}), ("fc4", "fc", dict(out="classes"))]


def tiny_net(specs=TINY, shape=(3, 9, 9), classes=3, seed=0):
    net = Net(build_layers(specs, shape, classes, dtype=np.float64), shape, classes, "tiny")
    rng = np.random.default_rng(seed)
    for _, p, _ in net.params_and_grads():
        p[...] = rng.standard_normal(p.shape) * 0.5
    return net


def test_whole_net_gradients_inputs_and_parameters():
    net = tiny_net()
    x = tie_free((2, 3, 9, 9), seed=4)
    labels = np.array([0, 2])

    def objective():
        return float(ops.softmax_xent(net.forward(x), labels)[0])

    _, probs = ops.softmax_xent(net.forward(x), labels)
    dx = net.backward(ops.softmax_xent_bwd(probs, labels))
    analytic = {name: g.copy() for name, _, g in net.params_and_grads()}
    assert_close(dx, numeric_grad(objective, x), atol=1e-7, rtol=1e-4, what="dx")
    for name, p, _ in net.params_and_grads():
        assert_close(analytic[name], numeric_grad(objective, p), atol=1e-7, rtol=1e-4, what=name)


def test_backprop_projection_is_the_input_gradient_and_rules_differ_only_at_relus():
    net = tiny_net().eval()
    x = np.random.default_rng(1).standard_normal((2, 3, 9, 9))
    out = net.forward(x, until="relu2")
    r = np.random.default_rng(2).standard_normal(out.shape)
    grad = numeric_grad(lambda: float(np.vdot(net.forward(x, until="relu2"), r)), x)
    net.forward(x, until="relu2")
    assert_close(net.project("relu2", r, "backprop"), grad, atol=1e-7, rtol=1e-4)
    guided = net.project("relu2", r, "guided")
    deconv = net.deconv("relu2", r)
    assert not np.allclose(guided, deconv) and not np.allclose(guided, grad)
    with pytest.raises(ValueError, match="rule"):
        net.project("relu2", r, "magic")


def test_forward_until_and_capture():
    net = tiny_net()
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 9))
    logits, acts = net.forward(x, capture=("pool1", "fc3"))
    assert logits.shape == (2, 3)
    assert_close(acts["pool1"], net.forward(x, until="pool1"))
    assert acts["fc3"].shape == (2, 6) and net.output_shape("fc3") == (6,)
    with pytest.raises(ValueError, match="comes after"):
        net.forward(x, until="pool1", capture=("fc3",))


def test_zf_summary_matches_figure_3():
    net = build("zf", num_classes=1000)
    rows = {r["name"]: r for r in net.summary()}
    spatial = [rows[n]["out_shape"][1] for n in
               ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5")]
    assert spatial == [110, 55, 26, 13, 13, 13, 13, 6]
    assert rows["flatten"]["out_shape"] == (9216,)
    assert [rows[n]["out_shape"] for n in ("fc6", "fc7", "fc8")] == [(4096,), (4096,), (1000,)]
    # parameters: sum over layers of out*in*k*k + out, computed independently here
    convs = [(96, 3, 7), (256, 96, 5), (384, 256, 3), (384, 384, 3), (256, 384, 3)]
    fcs = [(4096, 9216), (4096, 4096), (1000, 4096)]
    expected = sum(o * i * k * k + o for o, i, k in convs) + sum(o * i + o for o, i in fcs)
    assert net.num_params() == expected == 62_357_608
    assert rows["conv1"]["macs"] == 96 * 3 * 49 * 110 * 110
    assert rows["conv2"]["macs"] == 256 * 96 * 25 * 26 * 26
    assert "62,357,608" in net.summary_text()


def test_alexnet_summary():
    rows = {r["name"]: r for r in build("alexnet", num_classes=1000).summary()}
    assert [rows[n]["out_shape"][1] for n in ("conv1", "pool1", "conv2", "pool2", "conv5", "pool5")] \
        == [55, 27, 27, 13, 13, 6]
    assert rows["conv1"]["params"] == 96 * 3 * 121 + 96


def test_alexnet_grouped_is_bvlc_alexnet():
    net = build("alexnet-grouped", num_classes=1000)
    rows = {r["name"]: r for r in net.summary()}
    # bvlc_alexnet's order: conv, relu, LRN, then pooling, in blocks 1 and 2.
    assert [layer.name for layer in net.layers][:10] == [
        "conv1", "relu1", "norm1", "pool1", "conv2", "relu2", "norm2", "pool2", "conv3", "relu3"]
    assert net.input_shape == (3, 227, 227)
    assert [rows[n]["out_shape"] for n in ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4",
                                            "conv5", "pool5")] == [
        (96, 55, 55), (96, 27, 27), (256, 27, 27), (256, 13, 13), (384, 13, 13),
        (384, 13, 13), (256, 13, 13), (256, 6, 6)]
    assert rows["flatten"]["out_shape"] == (9216,)
    assert [rows[n]["out_shape"] for n in ("fc6", "fc7", "fc8")] == [(4096,), (4096,), (1000,)]
    assert [net.layers[net.index(n)].groups for n in ("conv1", "conv2", "conv3", "conv4",
                                                        "conv5")] == [1, 2, 1, 2, 2]
    norm = net.layers[net.index("norm1")]
    assert (norm.size, norm.alpha, norm.beta, norm.bias) == (5, 1e-4, 0.75, 1.0)  # Caffe's k=1
    # (out, in per group, k): a grouped filter sees half its input maps.
    convs = [(96, 3, 11), (256, 48, 5), (384, 256, 3), (384, 192, 3), (256, 192, 3)]
    fcs = [(4096, 9216), (4096, 4096), (1000, 4096)]
    expected = sum(o * i * k * k + o for o, i, k in convs) + sum(o * i + o for o, i in fcs)
    assert net.num_params() == expected == 60_965_224
    assert rows["conv2"]["macs"] == 256 * 48 * 25 * 27 * 27
    assert net.layers[net.index("conv4")].params["W"].shape == (384, 192, 3, 3)
    assert "60,965,224" in net.summary_text() and "256x6x6" in net.summary_text()


def test_alexnet_grouped_narrow_builds_runs_and_keeps_channels_divisible():
    net = build("alexnet-grouped", num_classes=5, width=0.05, init="he")
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5"):
        layer = net.layers[net.index(name)]
        assert layer.in_ch % layer.groups == 0 and layer.out_ch % layer.groups == 0
        if name != "conv5":   # conv4 and conv5 are grouped: their inputs must divide too
            assert layer.out_ch % 2 == 0
    x = np.random.default_rng(0).standard_normal((2, 3, 227, 227)).astype(np.float32)
    assert net.forward(x).shape == (2, 5)


def test_small_variants_build_and_share_the_block_structure():
    for arch in ("zf-64", "alexnet-64", "alexnet-64s4", "zf-32"):
        net = build(arch, num_classes=10, width=0.125)
        assert [layer.name for layer in net.layers] == [layer.name for layer in build("zf", 10).layers]
    for arch in ("alexnet-64", "alexnet-64s4"):
        assert build("zf-64", 10).output_shape("pool2") == build(arch, 10).output_shape("pool2")


def test_alexnet_64s4_keeps_alexnets_first_layer():
    net = build("alexnet-64s4", 10, width=0.5)
    conv1 = net.layer("conv1")
    assert (conv1.params["W"].shape[-1], conv1.stride) == (11, 4)
    assert net.output_shape("conv1") == (48, 16, 16) and net.output_shape("pool1") == (48, 16, 16)
    assert net.layer("conv2").stride == 1
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    assert net.forward(x).shape == (2, 10)


def test_receptive_fields_by_hand_for_zf():
    net = build("zf", num_classes=10, width=0.05)
    assert net.receptive_field("conv1") == (7, 2, -1)
    assert net.receptive_field("pool1") == (11, 4, -3)   # 7 + 2*2, 2*2, -1 - 1*2
    assert net.receptive_field("conv2") == (27, 8, -3)   # 11 + 4*4, 4*2, -3 - 0
    assert net.receptive_field("pool2") == (43, 16, -11)
    assert net.rf_box("conv2", 2, 3) == (13, 21, 40, 48)


def test_receptive_field_is_exact_on_a_conv_chain():
    # With positive weights and inputs every unit is active, so the input gradient of one output
    # is non-zero exactly on its receptive field (clipped to the image).
    specs = [("c1", "conv", dict(out=2, k=3, stride=2, pad=1)), ("r1", "relu", {}),
             ("c2", "conv", dict(out=2, k=5, stride=1, pad=2)), ("r2", "relu", {}),
             ("c3", "conv", dict(out=2, k=3, stride=2, pad=0))]
    net = Net(build_layers(specs, (1, 23, 23), 2, dtype=np.float64), (1, 23, 23), 2)
    for _, p, _ in net.params_and_grads():
        p[...] = 1.0
    x = np.ones((1, 1, 23, 23))
    out = net.forward(x, until="c3")
    for (y, xx) in [(0, 0), (2, 1), (out.shape[2] - 1, out.shape[3] - 1)]:
        r = np.zeros_like(out)
        r[0, 0, y, xx] = 1.0
        net.forward(x, until="c3")
        g = net.project("c3", r, "backprop")[0, 0]
        ys, xs = np.nonzero(g)
        y0, x0, y1, x1 = net.rf_box("c3", y, xx)
        assert (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1) == \
            (max(y0, 0), max(x0, 0), min(y1, 23), min(x1, 23))


def test_receptive_field_bounds_every_influence_through_pooling():
    net = build("zf-32", num_classes=4, width=0.125, init="he")
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    base = net.forward(x, until="conv3")
    y0, x0, y1, x1 = net.rf_box("conv3", 1, 2)
    outside = [(i, j) for i in range(32) for j in range(32)
               if not (y0 <= i < y1 and x0 <= j < x1)]
    for i, j in outside[::7]:
        x2 = x.copy()
        x2[0, :, i, j] += 10.0
        assert np.array_equal(net.forward(x2, until="conv3")[0, :, 1, 2], base[0, :, 1, 2])


def test_bad_inputs_are_named():
    net = build("zf-32", num_classes=4, width=0.125)
    with pytest.raises(ValueError, match="unknown architecture 'zf-99'"):
        build("zf-99")
    with pytest.raises(ValueError, match=r"expected input \(N, 3, 32, 32\)"):
        net.forward(np.zeros((2, 3, 31, 32), np.float32))
    with pytest.raises(ValueError, match=r"expected input \(N, 3, 32, 32\)"):
        net.forward(np.zeros((3, 32, 32), np.float32))
    with pytest.raises(KeyError, match="no layer named 'conv9'"):
        net.forward(np.zeros((1, 3, 32, 32), np.float32), until="conv9")
    with pytest.raises(ValueError, match="smaller than"):
        Net(build_layers(TINY, (3, 2, 2), 3), (3, 2, 2), 3)


def test_state_dict_round_trip_includes_dropout_counters():
    a = build("zf-32", num_classes=4, width=0.125, seed=1)
    b = build("zf-32", num_classes=4, width=0.125, seed=2)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    a.forward(x)
    state = a.state_dict()
    assert int(state["drop6.calls"]) == 1
    b.load_state_dict(state)
    assert np.array_equal(a.forward(x), b.forward(x))  # same weights and same next dropout mask
    bad = dict(state)
    bad["conv1.W"] = bad["conv1.W"][:1]
    with pytest.raises(ValueError, match="conv1.W"):
        b.load_state_dict(bad)


def test_archs_listed():
    assert set(nets.ARCHS) == {"zf", "alexnet", "alexnet-grouped", "zf-64", "alexnet-64",
                               "alexnet-64s4", "zf-32"}


def test_backward_without_input_gradient_gives_the_same_parameter_gradients():
    net = tiny_net()
    x = np.random.default_rng(5).standard_normal((2, 3, 9, 9))
    labels = np.array([1, 2])
    _, probs = ops.softmax_xent(net.forward(x), labels)
    net.backward(ops.softmax_xent_bwd(probs, labels))
    full = {name: g.copy() for name, _, g in net.params_and_grads()}
    for _, _, g in net.params_and_grads():
        g[...] = 0
    _, probs = ops.softmax_xent(net.forward(x), labels)
    assert net.backward(ops.softmax_xent_bwd(probs, labels), input_grad=False) is None
    for name, _, g in net.params_and_grads():
        assert_close(g, full[name], rtol=1e-12, what=name)


def test_forward_drops_the_last_forwards_arrays_before_allocating_new_ones():
    """Every layer a forward will run lets go of what the last forward kept before the first
    layer computes anything (so the new arrays can take their memory); the layers after
    ``until`` keep theirs."""
    import weakref

    net = build("zf-32", num_classes=10, width=0.25).train()
    x = np.random.default_rng(6).standard_normal((2,) + net.input_shape).astype(np.float32)
    net.forward(x)
    kept = {f"{layer.name}.{attr}": weakref.ref(getattr(layer, attr))
            for layer in net.layers for attr in layer.saved
            if getattr(layer, attr, None) is not None}   # e.g. a conv's Winograd tiles when off
    assert len(kept) >= 10
    alive_at_start = {}
    first = net.layers[0]
    original = first.forward

    def spy(inp):
        alive_at_start.update({k: ref() is not None for k, ref in kept.items()})
        return original(inp)

    first.forward = spy
    net.forward(x, until="conv3")
    stop = net.index("conv3")
    for name, alive in alive_at_start.items():
        ran = net.index(name.split(".")[0]) <= stop
        assert alive != ran, f"{name}: {'still held' if alive else 'dropped'} at the start"


def test_forward_needs_an_array():
    net = tiny_net()
    with pytest.raises(TypeError, match=r"needs an \(N, 3, 9, 9\) numpy or cupy array, got list"):
        net.forward(np.zeros((1, 3, 9, 9)).tolist())


def test_project_and_backward_check_the_signal_against_the_last_forward():
    net = tiny_net().eval()
    x = np.random.default_rng(7).standard_normal((2, 3, 9, 9))
    with pytest.raises(ValueError, match=r"project\('pool1'\).*forward.*first"):
        net.project("pool1", np.zeros((2, 4, 5, 5)))  # before any forward
    out = net.forward(x, until="pool1")
    assert out.shape == (2, 4, 5, 5)
    for bad in [(2, 3, 5, 5), (1, 4, 5, 5), (2, 4, 5, 4)]:  # channels, batch, width
        message = f"project('pool1'): signal shape {bad} does not match (2, 4, 5, 5), the output"
        with pytest.raises(ValueError, match=re.escape(message) + " of 'pool1'"):
            net.project("pool1", np.zeros(bad))
    with pytest.raises(ValueError, match=r"backward\('pool1'\): signal shape \(1, 4, 5, 5\)"):
        net.backward(np.zeros((1, 4, 5, 5)), start="pool1")
    assert net.project("pool1", out).shape == x.shape


def test_project_refuses_a_layer_the_last_forward_did_not_reach():
    """After a full forward, a shorter one re-runs (and releases) only the layers up to its
    ``until``: the later layers still hold the earlier forward's switches and masks, so
    projecting or backpropagating from them must be refused, not silently served stale."""
    net = tiny_net().eval()
    x = np.random.default_rng(8).standard_normal((2, 3, 9, 9))
    net.forward(x)
    net.forward(x[:1], until="relu1")
    assert net.last_forward == ("relu1", net.index("relu1"), 1)
    assert net.layer("pool2").switches is not None  # stale, but still there
    with pytest.raises(ValueError, match=r"project\('pool2'\): the last forward stopped at "
                                         r"until='relu1', before 'pool2'"):
        net.project("pool2", np.zeros((1, 5, 1, 1)))
    with pytest.raises(ValueError, match=r"backward\('fc4'\).*until='relu1'"):
        net.backward(np.zeros((1, 3)))
    assert net.project("conv1", np.ones((1, 4, 9, 9))).shape == (1, 3, 9, 9)


def test_a_forward_that_fails_midway_leaves_no_forward_to_project_from(monkeypatch):
    net = tiny_net().eval()
    x = np.random.default_rng(9).standard_normal((2, 3, 9, 9))
    out = net.forward(x, until="conv2")

    def fail(inp):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(net.layer("conv2"), "forward", fail)
    with pytest.raises(RuntimeError):
        net.forward(x, until="conv2")
    assert net.last_forward is None  # conv1.. were released and re-run, conv2 was not
    with pytest.raises(ValueError, match="no completed forward"):
        net.project("conv2", out)


def test_backward_asks_every_layer_for_dx_except_the_lowest_with_parameters():
    """input_grad=False: the layers above the lowest with parameters get need_dx=True, that
    one need_dx=False, and the layers below it (no parameters) are not visited."""
    specs = [("pool0", "pool", dict(k=2, stride=1)), ("flatten", "flatten", {}),
             ("fc1", "fc", dict(out=5)), ("relu1", "relu", {}), ("fc2", "fc", dict(out="classes"))]
    net = tiny_net(specs, shape=(2, 3, 3), classes=3)
    calls = []
    for layer in net.layers:
        def spy(dy, need_dx=True, _layer=layer, _backward=layer.backward):
            calls.append((_layer.name, need_dx))
            return _backward(dy, need_dx=need_dx)
        layer.backward = spy
    net.forward(np.random.default_rng(10).standard_normal((4, 2, 3, 3)))
    assert net.backward(np.ones((4, 3)), input_grad=False) is None
    assert calls == [("fc2", True), ("relu1", True), ("fc1", False)]
    calls.clear()
    assert net.backward(np.ones((4, 3))).shape == (4, 2, 3, 3)
    assert calls == [(name, True) for name in ("fc2", "relu1", "fc1", "flatten", "pool0")]
