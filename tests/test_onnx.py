"""ONNX import and export (zfraw.nets.onnx): graphs shaped like the model zoo's zfnet512 and
bvlc_alexnet, built here with onnx.helper and random weights (at reduced width and input size),
give onnxruntime's logits in zfraw; a zfraw net survives save_onnx -> load_onnx exactly; every
unsupported construct is refused by name."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from zfraw.layers import Conv2d, Linear, MaxPool2d  # noqa: E402
from zfraw.nets import build  # noqa: E402
from zfraw.nets.onnx import OnnxImportError, features, load_onnx, save_onnx  # noqa: E402
from zfraw.ops import registry  # noqa: E402

FEATURES = features()
needs_groups = pytest.mark.skipif(not FEATURES["groups"],
                                  reason="Conv2d has no `groups` argument yet (grouped conv)")
needs_asym = pytest.mark.skipif(not FEATURES["asymmetric_pads"],
                                reason="Conv2d/MaxPool2d take no 4-tuple pads yet")
needs_ceil = pytest.mark.skipif(not FEATURES["ceil_mode"],
                                reason="MaxPool2d has no `ceil_mode` argument yet")
IMPLS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(
    not registry.available("numba"), reason="numba impl not importable"))]


# -- building graphs -------------------------------------------------------------------------
class G:
    """A chain graph under construction: ``g.op('Conv', [w, b], name=..., **attrs)`` appends a
    node reading the current tensor (plus the given constants) and makes its output current."""

    def __init__(self, shape=(3, 32, 32), batch="N", seed=0, input_name="data"):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []
        self.input = helper.make_tensor_value_info(input_name, TensorProto.FLOAT,
                                                   [batch, *shape])
        self.cur, self.shape, self.n, self.batch = input_name, shape, 0, batch

    def const(self, array, name=None):
        name = name or f"w{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weights(self, *shape, fan_in=None):
        fan_in = fan_in or int(np.prod(shape[1:]))
        return (self.rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    def op(self, op_type, consts=(), name=None, outputs=1, first=None, **attrs):
        self.n += 1
        out = f"t{self.n}"
        outs = [out] + [f"t{self.n}_extra{i}" for i in range(1, outputs)]
        inputs = [first or self.cur, *consts]
        self.nodes.append(helper.make_node(op_type, inputs, outs,
                                           name=f"n{self.n}" if name is None else name, **attrs))
        self.cur = out
        return out

    def model(self, classes, opset=13, output_shape=None):
        out = helper.make_tensor_value_info(self.cur, TensorProto.FLOAT,
                                            output_shape or ["N", classes])
        graph = helper.make_graph(self.nodes, "test", [self.input], [out],
                                  initializer=self.inits)
        ops = [helper.make_opsetid("", opset)]
        return helper.make_model(graph, opset_imports=ops,
                                 ir_version=helper.find_min_ir_version_for(ops))

    # the zoo's building blocks
    def conv(self, cin, cout, k, stride=1, pads=0, group=1, name=None):
        pads = [pads] * 4 if isinstance(pads, int) else list(pads)
        W = self.weights(cout, cin // group, k, k)
        b = (self.rng.standard_normal(cout) * 0.1).astype(np.float32)
        return self.op("Conv", [self.const(W), self.const(b)], name=name, kernel_shape=[k, k],
                       strides=[stride, stride], pads=pads, group=group)

    def pool(self, k=3, stride=2, pads=0, ceil=None, name=None):
        pads = [pads] * 4 if isinstance(pads, int) else list(pads)
        extra = {} if ceil is None else {"ceil_mode": int(ceil)}
        return self.op("MaxPool", name=name, kernel_shape=[k, k], strides=[stride, stride],
                       pads=pads, **extra)

    def lrn(self, name=None, alpha=1e-4):
        return self.op("LRN", name=name, size=5, alpha=alpha, beta=0.75, bias=1.0)

    def relu(self, name=None):
        return self.op("Relu", name=name)

    def fc(self, fin, fout, style="gemm", name=None):
        """A fully connected layer in one of the zoo's forms."""
        W = self.weights(fout, fin)                                     # (out, in)
        b = (self.rng.standard_normal(fout) * 0.1).astype(np.float32)
        if style == "gemm":                                             # transB=1, as Caffe2
            return self.op("Gemm", [self.const(W), self.const(b)], name=name, transB=1)
        if style == "gemm_t0":          # B as (in, out), alpha/beta that must be folded in
            return self.op("Gemm", [self.const(W.T.copy() * 2), self.const(b[None] * 4)],
                           name=name, alpha=0.5, beta=0.25)
        if style == "matmul_add":
            self.op("MatMul", [self.const(W.T.copy())], name=name)
            return self.op("Add", [self.const(b)], name=f"{name}_bias" if name else None)
        raise ValueError(style)

    def flatten(self, style="flatten", name=None, features=-1):
        if style == "flatten":
            return self.op("Flatten", name=name, axis=1)
        if style == "reshape":  # the zoo's caffe2 graphs: Reshape with an initializer shape
            target = [1, -1] if self.batch == 1 else [-1, features]
            return self.op("Reshape", [self.const(np.array(target, np.int64))], name=name)
        if style == "reshape_constant":  # the shape from a Constant node
            self.n += 1
            self.nodes.append(helper.make_node(
                "Constant", [], [f"shape{self.n}"], name=f"shape{self.n}",
                value=numpy_helper.from_array(np.array([0, -1], np.int64))))
            return self.op("Reshape", [f"shape{self.n}"], name=name)
        raise ValueError(style)


def zfnet512_graph(head="flatten_gemm", opset=9, size=96, classes=10, seed=0):
    """The zoo's zfnet512 at 1/8 width (conv 12/32/64/128/64, fc 64) and a 96x96 input:
    conv1 96@7x7/2 pad 1, relu, LRN, 3x3/2 pool pad 1, conv2 256@5x5/2, relu, LRN, pool,
    conv3-5 3x3 pad 1 (512, 1024, 512 in the zoo), pool, fc6, fc7 (dropout), fc8, softmax."""
    g = G((3, size, size), batch=1, seed=seed, input_name="gpu_0/data_0")
    g.conv(3, 12, 7, 2, 1, name="gpu_0/conv1_1"); g.relu(""); g.lrn(""); g.pool(pads=1)
    g.conv(12, 32, 5, 2, 0); g.relu(); g.lrn(); g.pool(pads=1)
    g.conv(32, 64, 3, 1, 1); g.relu(); g.conv(64, 128, 3, 1, 1); g.relu()
    g.conv(128, 64, 3, 1, 1); g.relu(); g.pool(pads=0)
    return _head(g, head, 64 * 2 * 2, classes, opset)


def alexnet_graph(head="flatten_gemm", opset=9, pool_style="pads", size=135, classes=10,
                  seed=1):
    """The zoo's bvlc_alexnet at 1/8 width (conv 12/32/48/48/32, fc 64): conv1 11x11/4,
    relu, LRN before pooling, Caffe's rounded-up 3x3/2 pooling written as pads (0, 0, 1, 1) or
    as ceil_mode=1, group-2 conv2/4/5. A 135 input makes every map even, so each pool's last
    window hangs over the edge."""
    g = G((3, size, size), batch="N", seed=seed)

    def pool(name):
        if pool_style == "pads":
            g.pool(pads=[0, 0, 1, 1], name=name)
        else:
            g.pool(pads=0, ceil=True, name=name)

    g.conv(3, 12, 11, 4, 0, name="conv1"); g.relu("relu1"); g.lrn("norm1"); pool("pool1")
    g.conv(12, 32, 5, 1, 2, group=2, name="conv2"); g.relu("relu2"); g.lrn("norm2"); pool("pool2")
    g.conv(32, 48, 3, 1, 1, name="conv3"); g.relu("relu3")
    g.conv(48, 48, 3, 1, 1, group=2, name="conv4"); g.relu("relu4")
    g.conv(48, 32, 3, 1, 1, group=2, name="conv5"); g.relu("relu5"); pool("pool5")
    return _head(g, head, 32 * 4 * 4, classes, opset)


def _head(g, head, features_in, classes, opset):
    flat, fc = {"flatten_gemm": ("flatten", "gemm"), "reshape_gemm": ("reshape", "gemm_t0"),
                "gemm_on_maps": (None, "gemm"),
                "reshape_constant": ("reshape_constant", "gemm"),
                "matmul_add": ("flatten", "matmul_add")}[head]
    if flat:
        g.flatten(flat, features=features_in)
    g.fc(features_in, 64, fc, name="fc6"); g.relu()
    g.op("Dropout", outputs=2, ratio=0.5) if opset < 12 else g.op("Dropout")
    g.fc(64, 64, fc, name="fc7"); g.relu(); g.op("Dropout")
    g.fc(64, classes, fc, name="fc8")
    g.op("Softmax", name="prob", axis=1)
    return g.model(classes, opset)


def images(shape, n=2, seed=5):
    """Mean-subtracted-pixel-like inputs (std ~ 50), so that LRN does something."""
    return (np.random.default_rng(seed).standard_normal((n, *shape)) * 50).astype(np.float32)


def ort_logits(model, x):
    """onnxruntime's output for x, and for the model with its final Softmax cut off."""
    g = model.graph
    if g.node[-1].op_type == "Softmax":
        m = onnx.ModelProto()
        m.CopyFrom(model)
        del m.graph.node[-1]
        m.graph.output[0].name = g.node[-1].input[0]
        model = m
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    if model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1:
        return np.concatenate([sess.run(None, {model.graph.input[0].name: x[i:i + 1]})[0]
                               for i in range(len(x))])
    return sess.run(None, {model.graph.input[0].name: x})[0]


def rel_err(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def check_against_ort(model, impl, n=2):
    onnx.checker.check_model(model)
    net = load_onnx(model)
    x = images(net.input_shape, n)
    want = ort_logits(model, x)
    with registry.use_impl(impl):
        got = net.forward(x)
    assert got.shape == want.shape
    assert rel_err(got, want) < 1e-4, rel_err(got, want)
    return net


# -- the zoo's shapes against onnxruntime -------------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("head", ["flatten_gemm", "reshape_gemm", "reshape_constant",
                                  "matmul_add"])
def test_zfnet512_shaped_matches_onnxruntime(head, impl):
    net = check_against_ort(zfnet512_graph(head), impl)
    assert net.softmax_output is True
    kinds = [layer.kind for layer in net.layers]
    assert kinds[:4] == ["conv", "relu", "lrn", "pool"] and "dropout" not in kinds
    assert net.layers[0].name == "gpu_0_conv1_1"  # sanitized node name
    assert net.layers[1].name == "relu1"          # no name: op + index
    assert net.input_shape == (3, 96, 96) and net.num_classes == 10
    assert net.onnx_info["input_name"] == "gpu_0/data_0" and net.onnx_info["opset"] == 9


@needs_groups
@needs_asym
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("head", ["flatten_gemm", "reshape_gemm", "matmul_add"])
def test_alexnet_shaped_caffe_pads_matches_onnxruntime(head, impl):
    net = check_against_ort(alexnet_graph(head, pool_style="pads"), impl)
    assert net.layer("conv2").params["W"].shape == (32, 6, 5, 5)
    assert [layer.name for layer in net.layers[:4]] == ["conv1", "relu1", "norm1", "pool1"]


@needs_groups
@needs_ceil
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("opset", [10, 12, 13])
def test_alexnet_shaped_ceil_mode_matches_onnxruntime(opset, impl):
    check_against_ort(alexnet_graph("flatten_gemm", opset=opset, pool_style="ceil"), impl)


POOL_CASES = [  # (size, k, stride, pads, ceil_mode)
    (8, 3, 2, 0, 0), (8, 3, 2, 1, 0), (8, 3, 2, 0, 1), (7, 3, 2, 0, 1), (5, 2, 2, 1, 1),
    (6, 3, 3, 1, 1), (9, 3, 2, [0, 0, 1, 1], 0), (8, 2, 2, [1, 0, 0, 1], 0),
    (10, 3, 2, [0, 1, 1, 0], 1),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("size,k,stride,pads,ceil", POOL_CASES)
def test_pool_geometries_match_onnxruntime(size, k, stride, pads, ceil, impl):
    """Padding never wins and ceil mode's last windows follow onnxruntime, case by case."""
    if not isinstance(pads, int) and not FEATURES["asymmetric_pads"]:
        pytest.skip("MaxPool2d takes no (top, left, bottom, right) pads yet")
    if ceil and not FEATURES["ceil_mode"]:
        pytest.skip("MaxPool2d has no `ceil_mode` argument yet")
    g = G((2, size, size + 1), seed=size)
    g.pool(k, stride, pads, ceil=ceil)
    g.flatten()
    model = g.model(None, 12, output_shape=["N", None])
    net = load_onnx(model)
    x = -np.abs(images(net.input_shape, 2))  # all negative: a padding zero would win
    want = ort_logits(model, x)
    with registry.use_impl(impl):
        got = net.forward(x)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_auto_pad_same_and_valid_resolved_statically():
    g = G((3, 15, 15), seed=3)
    g.op("Conv", [g.const(g.weights(4, 3, 3, 3))], kernel_shape=[3, 3], strides=[2, 2],
         auto_pad="SAME_UPPER")
    g.op("MaxPool", kernel_shape=[3, 3], strides=[1, 1], auto_pad="VALID")
    g.flatten()
    model = g.model(None, 13, output_shape=["N", None])
    net = load_onnx(model)
    x = images(net.input_shape)
    with registry.use_impl("numpy"):
        assert rel_err(net.forward(x), ort_logits(model, x)) < 1e-5
    if FEATURES["asymmetric_pads"]:  # SAME_LOWER of an odd total: the extra pad comes first
        g = G((3, 16, 16), seed=4)
        g.op("Conv", [g.const(g.weights(4, 3, 4, 4))], kernel_shape=[4, 4], auto_pad="SAME_LOWER")
        g.flatten()
        model = g.model(None, 13, output_shape=["N", None])
        net = load_onnx(model)
        assert net.layers[0].output_shape((3, 16, 16)) == (4, 16, 16)
        x = images(net.input_shape)
        with registry.use_impl("numpy"):
            assert rel_err(net.forward(x), ort_logits(model, x)) < 1e-5


@needs_groups
@needs_asym
def test_gemm_straight_on_maps_reads_as_caffe2s_flattening_fc():
    """The zoo's oldest Caffe2 files (bvlcalexnet-3, zfnet512-3) feed pool5's maps straight to
    Gemm; onnxruntime refuses them, zfraw imports them as the same graph with a Flatten."""
    flat = load_onnx(alexnet_graph("flatten_gemm", opset=9))
    maps = load_onnx(alexnet_graph("gemm_on_maps", opset=9))
    assert maps.onnx_info["implicit_flatten"] == ["fc6"] and not flat.onnx_info["implicit_flatten"]
    assert [layer.kind for layer in maps.layers] == [layer.kind for layer in flat.layers]
    assert maps.layers[maps.index("fc6") - 1].name == "fc6_flatten"
    sa, sb = flat.state_dict(), maps.state_dict()
    assert sorted(v.shape for v in sa.values()) == sorted(v.shape for v in sb.values())
    x = images(flat.input_shape)
    with registry.use_impl("numpy"):
        np.testing.assert_array_equal(flat.forward(x), maps.forward(x))


def test_legacy_opset_forms_import_like_modern_ones():
    """Opsets 3 and 6 (the zoo's oldest files): Reshape's shape as an attribute, Dropout with
    is_test, consumed_inputs, Gemm's broadcast; the import equals that of the opset-9 graph."""
    modern = zfnet512_graph("reshape_gemm", opset=9)
    for opset in (3, 6):
        legacy = onnx.ModelProto()
        legacy.CopyFrom(modern)
        legacy.opset_import[0].version = opset
        legacy.ir_version = 3
        for node in legacy.graph.node:
            if node.op_type == "Reshape":  # the shape initializer becomes an attribute
                shape = [int(v) for v in numpy_helper.to_array(
                    next(t for t in legacy.graph.initializer if t.name == node.input[1]))]
                del node.input[1]
                node.attribute.append(helper.make_attribute("shape", shape))
            if node.op_type == "Dropout":
                node.attribute.append(helper.make_attribute("is_test", 1))
            if node.op_type == "Relu":
                node.attribute.append(helper.make_attribute("consumed_inputs", [0]))
            if node.op_type == "Gemm":
                node.attribute.append(helper.make_attribute("broadcast", 1))
        for t in legacy.graph.initializer:  # IR 3 lists initializers among the inputs too
            legacy.graph.input.append(helper.make_tensor_value_info(
                t.name, t.data_type, list(t.dims)))
        a, b = load_onnx(modern), load_onnx(legacy)
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(np.array_equal(sa[k], sb[k]) for k in sa)
        x = images(a.input_shape)
        with registry.use_impl("numpy"):
            np.testing.assert_array_equal(a.forward(x), b.forward(x))
        assert b.onnx_info["opset"] == opset and b.softmax_output


def test_torch_export_matches():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    import inspect
    import io

    # (nets with LocalResponseNorm, which torch writes as a subgraph: tests/test_onnx_torch.py)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 5, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, padding=1),
        nn.Conv2d(8, 16, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Flatten(), nn.Linear(16 * 4 * 4, 32), nn.ReLU(), nn.Dropout(),
        nn.Linear(32, 7)).eval()
    buf = io.BytesIO()
    extra = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    torch.onnx.export(model, torch.zeros(1, 3, 32, 32), buf, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
                      opset_version=13, **extra)
    net = load_onnx(onnx.load_from_string(buf.getvalue()))
    x = images((3, 32, 32), 3) / 50
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    with registry.use_impl("numpy"):
        assert rel_err(net.forward(x), want) < 1e-4


# -- export and the round trip --------------------------------------------------------------
def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    params = {k for k in sa if not k.endswith((".seed", ".calls"))}
    assert params == {k for k in sb if not k.endswith((".seed", ".calls"))}
    for k in params:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


@pytest.mark.parametrize("arch,opset", [("zf-32", 13), ("alexnet-64", 9), ("zf-64", 18)])
def test_round_trip_trained_net(arch, opset, tmp_path):
    net = build(arch, num_classes=7, width=0.125, seed=3).eval()
    path = tmp_path / f"{arch}.onnx"
    model = save_onnx(net, path, opset=opset)
    assert model.opset_import[0].version == opset
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert "Dropout" not in {n.op_type for n in model.graph.node}
    back = load_onnx(path)
    assert [layer.name for layer in back.layers] == [
        layer.name for layer in net.layers if layer.kind != "dropout"]
    _same_state(net, back)
    x = images(net.input_shape, 2)
    with registry.use_impl("numpy"):
        a, b = net.forward(x), back.forward(x)
    np.testing.assert_array_equal(a, b)
    assert rel_err(a, ort_logits(model, x)) < 1e-4
    assert back.softmax_output is False and back.onnx_info["metadata"]["zfraw.arch"] == arch


@needs_groups
@needs_asym
@needs_ceil
def test_round_trip_alexnet_shaped_import(tmp_path):
    """An imported graph with groups, asymmetric pads and ceil mode, written back and read
    again: the same parameters, the same logits, the Softmax kept."""
    for style in ("pads", "ceil"):
        net = load_onnx(alexnet_graph("flatten_gemm", opset=12, pool_style=style))
        save_onnx(net, tmp_path / "a.onnx", opset=12)
        back = load_onnx(tmp_path / "a.onnx")
        _same_state(net, back)
        assert back.softmax_output and [layer.name for layer in back.layers] == [
            layer.name for layer in net.layers]
        x = images(net.input_shape)
        with registry.use_impl("numpy"):
            np.testing.assert_array_equal(net.forward(x), back.forward(x))
        model = onnx.load(str(tmp_path / "a.onnx"))
        with registry.use_impl("numpy"):
            assert rel_err(back.forward(x), ort_logits(model, x)) < 1e-4


@needs_groups
@needs_ceil
def test_save_refuses_ceil_mode_before_opset_10(tmp_path):
    net = load_onnx(alexnet_graph("flatten_gemm", opset=12, pool_style="ceil"))
    with pytest.raises(ValueError, match="ceil_mode needs opset 10"):
        save_onnx(net, tmp_path / "a.onnx", opset=9)


# -- refusals ---------------------------------------------------------------------------------
def _tiny(shape=(3, 8, 8), batch="N"):
    g = G(shape, batch=batch)
    g.conv(shape[0], 4, 3, 1, 1, name="conv1")
    return g


def _refused(model, *needles):
    with pytest.raises(OnnxImportError) as e:
        load_onnx(model)
    for needle in needles:
        assert needle in str(e.value), str(e.value)
    return str(e.value)


def test_refuses_an_unsupported_op():
    g = _tiny()
    g.op("Sigmoid", name="sig1")
    g.flatten()
    _refused(g.model(None, output_shape=["N", 256]), "'sig1'", "Sigmoid", "not supported")


def test_refuses_dilation():
    g = G((3, 9, 9))
    g.op("Conv", [g.const(g.weights(4, 3, 3, 3))], name="dil", kernel_shape=[3, 3],
         dilations=[2, 2])
    g.flatten()
    _refused(g.model(None, output_shape=["N", 100]), "'dil'", "(Conv)", "dilations=[2, 2]")


def test_refuses_a_dynamic_spatial_size():
    g = G((3, "H", 8))
    g.relu("r")
    g.flatten()
    _refused(g.model(None, output_shape=["N", None]), "'data'", "dynamic", "'H'")


def test_refuses_a_branch():
    g = _tiny()
    a = g.relu("left")
    b = g.op("Relu", name="right", first="t1")  # conv1's output read a second time
    g.op("Add", [a], name="join", first=b)
    g.flatten()
    _refused(g.model(None, output_shape=["N", 256]), "'left'", "(Relu)",
             "'t1' is used 2 times (by 'left', 'right')")
    g2 = _tiny()  # an Add of two activations whose first input is not the previous output
    g2.relu("r")
    g2.op("Add", ["t1"], name="join")
    g2.flatten()
    _refused(g2.model(None, output_shape=["N", 256]), "'r'", "(Relu)", "used 2 times")


def test_refuses_add_of_two_activations():
    g = G((3, 4, 4))
    g.relu("r")
    g.op("Add", [g.input.name], name="skip")  # y = relu(x) + x: x is read twice
    g.flatten()
    _refused(g.model(None, output_shape=["N", 48]), "'r'", "(Relu)", "'data' is used 2 times")
    g = _tiny()
    g.op("Add", [g.cur], name="double")  # y = x + x
    g.flatten()
    _refused(g.model(None, output_shape=["N", 256]), "'double'", "(Add)",
             "2 non-constant inputs")


def test_refuses_reshape_that_keeps_channels():
    g = _tiny()
    g.op("Reshape", [g.const(np.array([0, 4, -1], np.int64))], name="keepc")
    g.op("Flatten", name="f", axis=1)
    _refused(g.model(None, output_shape=["N", 256]), "'keepc'", "(Reshape)", "[0, 4, -1]")


def test_refuses_gemm_trans_a():
    g = _tiny()
    g.flatten()
    g.op("Gemm", [g.const(g.weights(256, 5))], name="fc", transA=1)
    _refused(g.model(5), "'fc'", "(Gemm)", "transA=1")


def test_refuses_gemm_on_maps_and_unknown_attributes():
    g = _tiny()  # on (4, 8, 8) maps with B's K = 100, no reading fits
    g.op("Gemm", [g.const(g.weights(5, 100))], name="fc", transB=1)
    _refused(g.model(5), "'fc'", "(Gemm)", "Flatten or Reshape")
    g = _tiny()  # MatMul on maps is a batched product over the last two axes: refused
    g.op("MatMul", [g.const(g.weights(8, 5))], name="mm")
    _refused(g.model(5), "'mm'", "(MatMul)", "Flatten or Reshape")
    g = _tiny()
    g.op("LRN", name="n", size=3, colour=1)
    g.flatten()
    _refused(g.model(None, output_shape=["N", 256]), "'n'", "(LRN)", "colour")


def test_refuses_softmax_in_the_middle_and_a_second_output():
    g = _tiny()
    g.flatten()
    g.op("Softmax", name="sm", axis=1)
    g.fc(256, 5, name="fc")
    _refused(g.model(5), "'fc'", "after the Softmax")
    g = _tiny()
    g.pool(2, 2, name="p")
    g.nodes[-1].output.append("indices")
    g.flatten()
    m = g.model(None, output_shape=["N", 64])
    m.graph.output.append(helper.make_tensor_value_info("indices", TensorProto.INT64, None))
    _refused(m, "2 outputs")


def test_refuses_grouped_conv_when_unsupported():
    if FEATURES["groups"]:
        pytest.skip("this build has grouped convolution")
    g = G((4, 8, 8))
    g.conv(4, 4, 3, 1, 1, group=2, name="gconv")
    g.flatten()
    _refused(g.model(None, output_shape=["N", 256]), "'gconv'", "group=2")


def test_features_probe_matches_the_constructors():
    import inspect
    assert FEATURES["groups"] == ("groups" in inspect.signature(Conv2d).parameters)
    assert FEATURES["ceil_mode"] == ("ceil_mode" in inspect.signature(MaxPool2d).parameters)
    assert isinstance(Linear(2, 3).params["W"], np.ndarray)


def test_weights_from_constant_nodes_and_identities():
    """The same graph with every initializer turned into a Constant node (old exporters), and
    with shared weights behind Identity nodes (torch's exporter), imports identically."""
    model = zfnet512_graph("reshape_gemm")
    consts = onnx.ModelProto()
    consts.CopyFrom(model)
    nodes = [helper.make_node("Constant", [], [t.name + "_c"], name=f"c{i}", value=t)
             for i, t in enumerate(consts.graph.initializer)]
    nodes += [helper.make_node("Identity", [t.name + "_c"], [t.name], name=f"id{i}")
              for i, t in enumerate(consts.graph.initializer)]
    del consts.graph.initializer[:]
    body = list(consts.graph.node)
    del consts.graph.node[:]
    consts.graph.node.extend(nodes + body)
    a, b = load_onnx(model), load_onnx(consts)
    _same_state(a, b)
    assert [layer.name for layer in a.layers] == [layer.name for layer in b.layers]


def test_refuses_a_batch_one_reshape_on_a_batched_input_and_other_inputs():
    g = _tiny(batch="N")
    g.op("Reshape", [g.const(np.array([1, -1], np.int64))], name="r1")
    _refused(g.model(None, output_shape=[1, 256]), "'r1'", "(Reshape)", "[1, -1]")
    g = G((3, 4, 4))
    g.input.type.tensor_type.elem_type = TensorProto.DOUBLE
    g.relu("r")
    g.flatten()
    _refused(g.model(None, output_shape=["N", 48]), "'data'", "DOUBLE")
    g = _tiny()
    g.op("Relu", name="custom_relu", domain="com.example")
    g.flatten()
    _refused(g.model(None, output_shape=["N", 256]), "'custom_relu'", "com.example.Relu")


@needs_groups
@needs_asym
def test_imported_net_is_an_ordinary_net():
    """Summary, deconv projection and backward work on an imported net as on a built one."""
    net = load_onnx(alexnet_graph("flatten_gemm", opset=9))
    text = net.summary_text()
    assert "conv1" in text and "fc8" in text
    x = images(net.input_shape, 1)
    with registry.use_impl("numpy"):
        y = net.forward(x, until="conv5")
        r = net.project("conv5", np.maximum(y, 0))
        assert r.shape == x.shape
        logits = net.forward(x)
        dx = net.backward(np.ones_like(logits))
    assert dx.shape == x.shape
