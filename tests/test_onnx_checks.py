"""The ONNX importer's pattern for PyTorch's LocalResponseNorm on hand-built graphs (what it takes,
what it refuses, naming the node), BatchNormalization folding, the refusals of bad files, bad
weights and oversized graphs (one line; exit 2 from the report), and the opsets save_onnx
writes."""
import os

import numpy as np
import pytest

from definitions import one_line_error

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from zfraw.nets import build  # noqa: E402
from zfraw.nets.onnx import (MAX_IMAGE_BYTES, SAVE_OPSET_MIN, OnnxImportError,  # noqa: E402
                             load_onnx, save_onnx)
from zfraw.ops import registry  # noqa: E402

FILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onnx_files")
IMPLS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(
    not registry.available("numba"), reason="numba impl not importable"))]


class Graph:
    """A graph under construction: ``g.node(op, inputs, **attrs)`` returns its output name;
    ``g.const(array)`` an initializer's."""

    def __init__(self, shape=(6, 5, 5), batch="N", seed=0):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.shape, self.batch = [], [], shape, batch
        self.x = "x"

    def const(self, array, name=None):
        name = name or f"c{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op, inputs, name=None, **attrs):
        out = f"t{len(self.nodes)}"
        self.nodes.append(helper.make_node(op, list(inputs), [out],
                                           name=name or f"{op.lower()}{len(self.nodes)}",
                                           **attrs))
        return out

    def conv(self, x, cin, cout, k=3, pads=1, name=None):
        W = (self.rng.standard_normal((cout, cin, k, k)) * 0.3).astype(np.float32)
        b = (self.rng.standard_normal(cout) * 0.1).astype(np.float32)
        return self.node("Conv", [x, self.const(W), self.const(b)], name=name,
                         kernel_shape=[k, k], pads=[pads] * 4)

    def head(self, x, features, classes=4):
        """Flatten and a Gemm to ``classes``."""
        f = self.node("Flatten", [x], axis=1)
        W = (self.rng.standard_normal((classes, features)) * 0.1).astype(np.float32)
        return self.node("Gemm", [f, self.const(W), self.const(np.zeros(classes, np.float32))],
                         name="fc", transB=1)

    def model(self, out, opset=13, classes=4):
        graph = helper.make_graph(
            self.nodes, "g", [helper.make_tensor_value_info(self.x, TensorProto.FLOAT,
                                                            [self.batch, *self.shape])],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, [self.batch, classes])],
            initializer=self.inits)
        ops = [helper.make_opsetid("", opset)]
        return helper.make_model(graph, opset_imports=ops,
                                 ir_version=helper.find_min_ir_version_for(ops))


def torch_lrn(g, x, size, alpha=0.2, beta=0.75, k=2.0, before=None, after=None, **change):
    """PyTorch's LocalResponseNorm as its dynamo exporter writes it (static shapes), with the
    window ``before``/``after`` (default: PyTorch's size//2, (size-1)//2) and one part replaced
    by ``change`` (pad_pads, pool_attrs, alpha_array, ...)."""
    c, h, w = g.shape
    before = size // 2 if before is None else before
    after = (size - 1) // 2 if after is None else after
    sq = g.node("Mul", [x, x], name="lrn/Mul")
    v = g.node("Reshape", [sq, g.const(np.array([-1, 1, c, h, w], np.int64))], name="lrn/View")
    pads = change.get("pad_pads", [0, 0, before, 0, 0, 0, 0, after, 0, 0])
    p = g.node("Pad", [v, g.const(np.array(pads, np.int64))], name="lrn/Pad")
    pool = dict(kernel_shape=[size, 1, 1], strides=[1, 1, 1], count_include_pad=1)
    pool.update(change.get("pool_attrs", {}))
    a = g.node("AveragePool", [p], name="lrn/AveragePool", **pool)
    s = g.node("Squeeze", [a, g.const(np.array([1], np.int64))], name="lrn/Squeeze")
    alpha_c = change.get("alpha_array", np.array(alpha, np.float32))
    m = g.node("Mul", [s, g.const(alpha_c)], name="lrn/Mul_1")
    ad = g.node("Add", [m, g.const(np.array(k, np.float32))], name="lrn/Add")
    pw = g.node("Pow", [ad, g.const(np.array(beta, np.float32))], name="lrn/Pow")
    return g.node("Div", [x, pw], name="lrn/Div")


def lrn_model(size, **kw):
    g = Graph()
    y = g.conv(g.x, 6, 6, name="conv1")
    y = torch_lrn(g, g.node("Relu", [y], name="relu1"), size, **kw)
    return g.model(g.head(y, 6 * 5 * 5))


def refused(model, *needles, **kw):
    with pytest.raises(OnnxImportError) as e:
        load_onnx(model, **kw)
    msg = str(e.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, msg
    return msg


def ort_out(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def rel_err(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def images(shape, n=3, seed=1):
    return (np.random.default_rng(seed).standard_normal((n, *shape)) * 2).astype(np.float32)


# -- PyTorch's LocalResponseNorm pattern ---------------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("size,before,after", [(5, None, None), (3, None, None), (1, None, None),
                                               (4, 1, 2), (2, 0, 1), (6, 2, 3)])
def test_lrn_pattern_with_onnxs_window_imports_exactly(size, before, after, impl):
    """Odd sizes as PyTorch writes them, and even sizes whose window is ONNX's (one channel
    fewer before than after): one LRN layer, onnxruntime's outputs."""
    model = lrn_model(size, before=before, after=after)
    net = load_onnx(model)
    assert [layer.kind for layer in net.layers] == ["conv", "relu", "lrn", "flatten", "fc"]
    lrn = net.layers[2]
    assert (lrn.size, lrn.name) == (size, "lrn_LRN")
    np.testing.assert_allclose([lrn.alpha, lrn.beta, lrn.bias], [0.2, 0.75, 2.0], rtol=1e-6)
    x = images(net.input_shape)
    with registry.use_impl(impl):
        assert rel_err(net.forward(x), ort_out(model, x)) < 1e-4


def test_lrn_pattern_with_pytorchs_even_window_is_refused():
    refused(lrn_model(4), "'lrn/AveragePool'", "even size 4", "c-2..c+1", "c-1..c+2")


@pytest.mark.parametrize("change,node,words", [
    ({"pad_pads": [0, 0, 2, 0, 2, 0, 0, 2, 0, 2]}, "lrn/Pad", "only the channel axis"),
    ({"pool_attrs": {"strides": [2, 1, 1]}}, "lrn/AveragePool", "stride 1"),
    ({"pool_attrs": {"kernel_shape": [5, 1, 3]}}, "lrn/AveragePool", "channel axis only"),
    ({"pool_attrs": {"kernel_shape": [0, 1, 1]}}, "lrn/AveragePool", "at least 1"),
    ({"pad_pads": [0, 0, 4, 0, 0, 0, 0, 0, 0, 0]}, "lrn/AveragePool", "averages channels c-4..c+0"),
    ({"pad_pads": [0, 0, 2, 0, 0, 0, 0, 1, 0, 0]}, "lrn/AveragePool",
     "9 channels (pads included) into 5"),
    ({"alpha_array": np.full(6, 0.2, np.float32).reshape(1, 6, 1, 1)}, "lrn/Mul_1",
     "one number"),
    ({"alpha_array": np.array(np.nan, np.float32)}, "lrn/Mul_1", "nan"),
])
def test_lrn_pattern_that_is_not_an_lrn_is_refused_at_its_node(change, node, words):
    refused(lrn_model(5, **change), repr(node), words)


def test_other_uses_of_the_patterns_ops_stay_refused():
    g = Graph()
    y = g.node("Relu", [g.conv(g.x, 6, 6)], name="relu1")
    y = g.node("Mul", [y, y], name="square")               # x*x, no LRN around it
    refused(g.model(g.head(y, 150)), "'square'", "op Mul is not supported")

    g = Graph()
    y = g.node("Relu", [g.conv(g.x, 6, 6)], name="relu1")
    y = g.node("Div", [y, g.const(np.array(2.0, np.float32))], name="halve")
    refused(g.model(g.head(y, 150)), "'halve'", "op Div is not supported")

    g = Graph()                                            # an AveragePool over channels of
    y = g.node("Relu", [g.conv(g.x, 6, 6)], name="relu1")  # the activations (not squared)
    v = g.node("Reshape", [y, g.const(np.array([-1, 1, 6, 5, 5], np.int64))])
    a = g.node("AveragePool", [v], name="chanpool", kernel_shape=[3, 1, 1], pads=[1, 0, 0] * 2,
               count_include_pad=1)
    y = g.node("Reshape", [a, g.const(np.array([-1, 6, 5, 5], np.int64))])
    refused(g.model(g.head(y, 150)), "(Reshape)", "only a reshape to (N, -1)")


def test_lrn_pattern_sharing_a_tensor_with_the_rest_is_refused():
    g = Graph()
    y = g.node("Relu", [g.conv(g.x, 6, 6)], name="relu1")
    out = torch_lrn(g, y, 5)
    model = g.model(g.head(out, 150))
    pooled = next(n for n in model.graph.node if n.name == "lrn/AveragePool").output[0]
    model.graph.output.append(helper.make_tensor_value_info(pooled, TensorProto.FLOAT, None))
    refused(model, "'lrn/AveragePool'", "also read by the graph output")


def test_lrn_node_of_size_below_one_is_refused():
    g = Graph()
    y = g.node("LRN", [g.node("Relu", [g.conv(g.x, 6, 6)])], name="norm1", size=0)
    refused(g.model(g.head(y, 150)), "'norm1'", "size=0", ">= 1")


# -- BatchNormalization ---------------------------------------------------------------------------
def bn_params(g, n, var=None):
    r = g.rng
    var = (r.random(n) * 2 + 0.1) if var is None else var
    return [g.const(v.astype(np.float32)) for v in
            (r.standard_normal(n), r.standard_normal(n), r.standard_normal(n), var)]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("opset", [9, 13, 15])
def test_batchnorm_folds_into_conv_gemm_and_matmul(opset, impl):
    g = Graph()
    y = g.node("BatchNormalization", [g.conv(g.x, 6, 8, name="conv1"), *bn_params(g, 8)],
               name="bn1", epsilon=1e-3)
    y = g.node("Relu", [y])
    f = g.node("Flatten", [y], axis=1)
    W = (g.rng.standard_normal((200, 12)) * 0.1).astype(np.float32)
    y = g.node("MatMul", [f, g.const(W)], name="fc1")
    y = g.node("Add", [y, g.const(np.ones(12, np.float32))], name="fc1_bias")
    y = g.node("BatchNormalization", [y, *bn_params(g, 12)], name="bn2")
    W = (g.rng.standard_normal((4, 12)) * 0.3).astype(np.float32)
    y = g.node("Gemm", [g.node("Relu", [y]), g.const(W), g.const(np.zeros(4, np.float32))],
               name="fc2", transB=1)
    y = g.node("BatchNormalization", [y, *bn_params(g, 4)], name="bn3")
    model = g.model(y, opset)
    net = load_onnx(model)
    assert [layer.kind for layer in net.layers] == ["conv", "relu", "flatten", "fc", "relu",
                                                    "fc"]
    assert net.onnx_info["folded_batchnorm"] == {"bn1": "conv1", "bn2": "fc1", "bn3": "fc2"}
    x = images(net.input_shape)
    with registry.use_impl(impl):
        assert rel_err(net.forward(x), ort_out(model, x)) < 1e-4


@pytest.mark.parametrize("where,words", [
    ("after_relu", ["follows layer 'relu1' (ReLU)", "the Conv or Gemm right before it"]),
    ("first", ["follows the graph input"]),
    ("after_pool", ["follows layer 'pool1' (MaxPool2d)"]),
    ("training", ["training_mode=1"]),
    ("bad_var", ["plus epsilon", "not positive"]),
    ("nan_mean", ["NaN", "mean"]),
])
def test_batchnorm_that_cannot_fold_is_refused_at_its_node(where, words):
    g = Graph()
    x = g.x
    extra = {}
    var = None
    if where == "first":
        y = g.node("BatchNormalization", [x, *bn_params(g, 6)], name="bn")
        y = g.conv(y, 6, 6)
    else:
        y = g.conv(x, 6, 6, name="conv1")
        if where == "after_relu":
            y = g.node("Relu", [y], name="relu1")
        if where == "after_pool":
            y = g.node("MaxPool", [y], name="pool1", kernel_shape=[1, 1])
        if where == "training":
            extra = {"training_mode": 1}
        if where == "bad_var":
            var = np.array([1, 1, -2, 1, 1, 1], np.float32)
        params = bn_params(g, 6, var)
        if where == "nan_mean":
            g.inits[-2] = numpy_helper.from_array(np.array([0, np.nan, 0, 0, 0, 0], np.float32),
                                                  g.inits[-2].name)
        y = g.node("BatchNormalization", [y, *params], name="bn", **extra)
    refused(g.model(g.head(y, 150), opset=15), "'bn'", *words)


# -- bad weights, files and sizes ----------------------------------------------------------------
def tiny(shape=(6, 5, 5)):
    g = Graph(shape)
    y = g.node("Relu", [g.conv(g.x, shape[0], 6, name="conv1")], name="relu1")
    return g, g.model(g.head(y, 6 * shape[1] * shape[2]))


@pytest.mark.parametrize("which,value,needles", [
    ("conv1 weight", np.nan, ["'conv1'", "weight 'c0'", "1 NaN and 0 infinite"]),
    ("conv1 bias", np.inf, ["'conv1'", "bias 'c1'", "0 NaN and 1 infinite"]),
    ("fc weight", -np.inf, ["'fc'", "'c2'", "infinite"]),
])
def test_non_finite_weights_are_refused_naming_the_initializer(which, value, needles):
    _, model = tiny()
    index = {"conv1 weight": 0, "conv1 bias": 1, "fc weight": 2}[which]
    t = model.graph.initializer[index]
    a = numpy_helper.to_array(t).copy()
    a.reshape(-1)[3 if a.size > 3 else 0] = value
    t.CopyFrom(numpy_helper.from_array(a, t.name))
    refused(model, *needles)


def test_oversized_graphs_are_refused_naming_the_layer_and_the_estimate():
    g = Graph((3, 8192, 8192), batch=1)        # declared 8192 x 8192: ~34 GiB for one image
    y = g.node("Relu", [g.conv(g.x, 3, 32, name="conv1")], name="relu1")
    for _ in range(3):
        y = g.node("MaxPool", [y], kernel_shape=[8, 8], strides=[8, 8])
    model = g.model(g.head(y, 32 * 16 * 16))
    msg = refused(model, "layer 'conv1'", "GiB", "over the limit of 2.0 GiB",
                  "max_image_bytes")
    assert "im2col" in msg
    assert MAX_IMAGE_BYTES == 2 << 30
    # the limit is an option: a tiny net over a tiny limit, and no limit at all
    _, small = tiny()
    refused(small, "layer 'conv1'", "KiB", "over the limit of 1000 bytes",
            max_image_bytes=1000)
    assert load_onnx(small, max_image_bytes=None).num_classes == 4


def test_empty_and_non_onnx_files_are_refused(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    refused(str(empty), "empty.onnx", "the file is empty (0 bytes), not an ONNX model")
    text = tmp_path / "notes.onnx"
    text.write_text("these are not weights\n" * 5)
    refused(str(text), "notes.onnx", "not an ONNX model")
    noise = tmp_path / "noise.onnx"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    refused(str(noise), "noise.onnx", "not an ONNX model")
    refused(onnx.ModelProto(), "not an ONNX model (it has no graph and no opset)")


# -- the report: one line, exit 2 -----------------------------------------------------------------
def test_the_report_refuses_each_in_one_line_with_exit_2(tmp_path, capsys):
    from zfraw import report

    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    text = tmp_path / "notes.onnx"
    text.write_text("not an onnx file\n")
    nan = tmp_path / "nan.onnx"
    _, model = tiny((3, 16, 16))
    a = numpy_helper.to_array(model.graph.initializer[0]).copy()
    a[0, 0, 0, 0] = np.nan
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(a, "c0"))
    onnx.save(model, str(nan))
    ok = tmp_path / "ok.onnx"
    onnx.save(tiny((3, 16, 16))[1], str(ok))
    lrn0 = tmp_path / "lrn0.onnx"
    g = Graph((3, 16, 16))
    y = g.node("LRN", [g.node("Relu", [g.conv(g.x, 3, 6)])], name="norm1", size=0)
    onnx.save(g.model(g.head(y, 6 * 256)), str(lrn0))
    bn = tmp_path / "bn.onnx"
    g = Graph((3, 16, 16))
    y = g.node("Relu", [g.conv(g.x, 3, 6)], name="relu1")
    y = g.node("BatchNormalization", [y, *bn_params(g, 6)], name="bn_after_relu")
    onnx.save(g.model(g.head(y, 6 * 256)), str(bn))
    cases = {
        "empty": ([str(empty)], ["empty.onnx", "empty (0 bytes)"]),
        "not onnx": ([str(text)], ["notes.onnx", "not an ONNX model"]),
        "nan": ([str(nan)], ["'c0'", "NaN"]),
        "lrn 0": ([str(lrn0)], ["'norm1'", "size=0"]),
        "bn": ([str(bn)], ["'bn_after_relu'", "follows layer 'relu1'"]),
        "memory": ([str(ok), "--max-image-mib", "0.01"], ["layer 'conv1'", "--max-image-mib"]),
        "bad limit": ([str(ok), "--max-image-mib", "-1"], ["--max-image-mib must be >= 0"]),
        "even lrn": ([os.path.join(FILES, "lrn_even.onnx")], ["even size 4", "AveragePool"]),
    }
    for name, (model_args, words) in cases.items():
        rc = report.main(["--model", *model_args, "--data", "synthetic", "--preprocess", "none",
                          "--out", str(tmp_path / "out")])
        one_line_error(capsys, rc, *words)
    assert not (tmp_path / "out").exists()


# -- save_onnx's opsets --------------------------------------------------------------------------
def test_save_onnx_writes_exactly_the_opsets_the_checker_accepts(tmp_path):
    """Every opset from SAVE_OPSET_MIN (7) to onnx's newest passes onnx.checker and reads back
    the same net; the ones around are refused before anything is written."""
    net = build("alexnet-64", num_classes=5, width=0.125, seed=1).eval()  # conv, LRN, pool, fc
    newest = onnx.defs.onnx_opset_version()
    assert SAVE_OPSET_MIN == 7
    x = images(net.input_shape, 2)
    with registry.use_impl("numpy"):
        want = net.forward(x)
    for opset in range(SAVE_OPSET_MIN, newest + 1):
        path = tmp_path / f"o{opset}.onnx"
        model = save_onnx(net, path, opset=opset)
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        assert model.opset_import[0].version == opset
        back = load_onnx(path)
        with registry.use_impl("numpy"):
            np.testing.assert_array_equal(back.forward(x), want)
    for opset in (1, SAVE_OPSET_MIN - 1, newest + 1):
        with pytest.raises(ValueError, match=f"save_onnx writes opsets 7 to {newest}"):
            save_onnx(net, tmp_path / "no.onnx", opset=opset)
        assert not (tmp_path / "no.onnx").exists()
    for opset in (7, 8):  # the oldest run in onnxruntime too
        model = onnx.load(str(tmp_path / f"o{opset}.onnx"))
        assert rel_err(ort_out_named(model, x), want) < 1e-4


def ort_out_named(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]
