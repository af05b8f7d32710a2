"""ONNX graphs without a classifier, and average pooling (AveragePool, GlobalAveragePool,
ReduceMean over the spatial axes): ONNX's own operator test graphs import and give their
expected outputs; single-node AveragePool graphs give onnxruntime's output on every geometry of
the kernels' case table; headless chains import with no classes; PyTorch-exported files
(tests/onnx_files, written by tests/onnx_files/make_headless.py) give onnxruntime's output on
every CPU impl; save_onnx writes the pooling layers and headless nets back."""
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from kernels.kernel_cases import AVGPOOLS  # noqa: E402
from test_onnx import G, IMPLS, images, ort_logits, rel_err  # noqa: E402
from zfraw.layers import AvgPool2d, Flatten, GlobalAvgPool2d, Linear  # noqa: E402
from zfraw.nets.onnx import OnnxImportError, load_onnx, save_onnx  # noqa: E402
from zfraw.ops import registry  # noqa: E402

FILES = Path(__file__).resolve().parent / "onnx_files"


def _refused(model, *needles):
    with pytest.raises(OnnxImportError) as e:
        load_onnx(model)
    for needle in needles:
        assert needle in str(e.value), str(e.value)


def run_ort(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {model.graph.input[0].name: x})[0]


# -- ONNX's own operator test graphs ----------------------------------------------------------
# The single-node graphs of ONNX's backend tests (onnx.backend.test.case.node), with the inputs
# after the first (Conv's weights) made initializers; the 2-d ones zfraw imports, and the others
# with the reason it refuses them.
OPERATOR_CASES = {
    **{f"test_averagepool_2d_{c}": None for c in (
        "precomputed_pads", "precomputed_pads_count_include_pad", "precomputed_strides",
        "precomputed_same_upper", "default", "same_upper", "same_lower", "pads",
        "pads_count_include_pad", "strides", "ceil", "ceil_last_window_starts_on_pad")},
    "test_averagepool_2d_dilations": "dilations=[2, 2]",
    "test_globalaveragepool": None, "test_globalaveragepool_precomputed": None,
    **{f"test_maxpool_2d_{c}": None for c in (
        "precomputed_pads", "precomputed_strides", "precomputed_same_upper", "default",
        "same_upper", "same_lower", "pads", "strides", "ceil",
        "ceil_output_size_reduce_by_one")},
    "test_maxpool_2d_dilations": "dilations=[2, 2]",
    "test_maxpool_2d_uint8": "element type UINT8",
    "test_maxpool_with_argmax_2d_precomputed_pads": "2 outputs",
    **{f"test_{c}": None for c in (
        "basic_conv_with_padding", "basic_conv_without_padding", "conv_with_strides_padding",
        "conv_with_strides_no_padding", "conv_with_strides_and_asymmetric_padding",
        "conv_with_autopad_same")},
}


@pytest.fixture(scope="module")
def operator_cases():
    """{name: (model with its weights as initializers, input, expected output, rtol, atol)}."""
    try:
        from onnx.backend.test.case import node
    except ImportError:
        pytest.skip("this onnx has no backend test cases")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = {c.name: c for c in node.collect_testcases(None) if c.name in OPERATOR_CASES}
    out = {}
    for name, c in found.items():
        model = onnx.ModelProto()
        model.CopyFrom(c.model)
        inputs, outputs = c.data_sets[0]
        for vi, value in list(zip(model.graph.input, inputs))[1:]:
            model.graph.initializer.append(numpy_helper.from_array(value, vi.name))
        while len(model.graph.input) > 1:
            del model.graph.input[1]
        out[name] = (model, inputs[0], outputs[0], c.rtol, c.atol)
    return out


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", sorted(OPERATOR_CASES))
def test_onnx_operator_test_graphs_import_and_give_their_outputs(operator_cases, name, impl):
    if name not in operator_cases:
        pytest.skip(f"this onnx has no case {name}")
    model, x, want, rtol, atol = operator_cases[name]
    refusal = OPERATOR_CASES[name]
    if refusal:
        _refused(model, refusal)
        return
    net = load_onnx(model)
    assert net.num_classes is None and net.onnx_info["classifier"] is False
    assert net.onnx_info["output_shape"] == want.shape[1:]
    with registry.use_impl(impl):
        got = net.forward(x)
    assert got.shape == want.shape
    assert (np.abs(got - want) <= atol + rtol * np.abs(want)).all(), np.abs(got - want).max()
    assert rel_err(got, run_ort(model, x)) < 1e-5


# -- AveragePool geometries against onnxruntime ------------------------------------------------
def single_node(op, shape, opset=19, **attrs):
    """A one-node graph reading x (N, *shape) with its output's shape left to inference."""
    node = helper.make_node(op, ["x"], ["y"], name="pool", **attrs)
    graph = helper.make_graph(
        [node], "single", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    ops = [helper.make_opsetid("", opset)]
    return helper.make_model(graph, opset_imports=ops,
                             ir_version=helper.find_min_ir_version_for(ops))


def _square_rows():
    """The case table's average-pooling rows with square windows, as ONNX attributes."""
    for shape, kh, kw, s, p, ceil, cip, _ in AVGPOOLS:
        if kh == kw:
            pads = [p] * 4 if isinstance(p, int) else [p[0], p[1], p[2], p[3]]
            yield pytest.param(shape, dict(kernel_shape=[kh, kw], strides=[s, s], pads=pads,
                                           ceil_mode=int(ceil), count_include_pad=int(cip)),
                               id=f"{'x'.join(map(str, shape))}-k{kh}-s{s}-p{p}-ceil{int(ceil)}"
                                  f"-cip{int(cip)}")


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape,attrs", list(_square_rows()) + [
    pytest.param((1, 2, 7, 7), dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER",
                                 count_include_pad=1), id="same_upper-cip1"),
    pytest.param((2, 2, 8, 8), dict(kernel_shape=[4, 4], strides=[3, 3], auto_pad="SAME_LOWER"),
                 id="same_lower"),
    pytest.param((1, 2, 9, 9), dict(kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1],
                                 ceil_mode=1, count_include_pad=1), id="ceil-k2-pad1-cip1"),
])
def test_averagepool_nodes_give_onnxruntimes_output(shape, attrs, impl):
    """Every square row of the kernels' case table (both divisors, ceil mode, asymmetric pads)
    and auto_pad, one AveragePool node each, against onnxruntime (the zfraw layer on impl)."""
    model = single_node("AveragePool", shape[1:], **attrs)
    net = load_onnx(model)
    assert isinstance(net.layers[0], AvgPool2d) and net.num_classes is None
    x = images(shape[1:], shape[0])
    want = run_ort(model, x)
    with registry.use_impl(impl):
        got = net.forward(x)
    assert got.shape == want.shape
    assert rel_err(got, want) < 1e-6


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("op,opset,attrs,axes_input", [
    ("GlobalAveragePool", 13, {}, None),
    ("ReduceMean", 13, {"axes": [2, 3], "keepdims": 1}, None),
    ("ReduceMean", 13, {"axes": [-1, -2], "keepdims": 0}, None),
    ("ReduceMean", 18, {"keepdims": 0}, [2, 3]),
    ("ReduceMean", 18, {}, [-2, -1]),
])
def test_global_average_forms_import_as_one_layer(op, opset, attrs, axes_input, impl):
    """GlobalAveragePool and ReduceMean over the two spatial axes (attribute or, from opset 18,
    input; keepdims 0 adds a Flatten) become GlobalAvgPool2d; non-square maps too."""
    g = G((3, 7, 5), seed=1)
    g.conv(3, 4, 3, 1, 1, name="conv1")
    consts = [g.const(np.array(axes_input, np.int64), "axes")] if axes_input else []
    g.op(op, consts, name="gap", **attrs)
    keep = attrs.get("keepdims", 1)
    model = g.model(None, opset, output_shape=["N", 4, 1, 1] if keep else ["N", 4])
    net = load_onnx(model)
    kinds = [type(layer) for layer in net.layers]
    assert kinds == [type(net.layers[0]), GlobalAvgPool2d] + ([] if keep else [Flatten])
    assert net.num_classes is None and net.onnx_info["output_shape"] == ((4, 1, 1) if keep
                                                                          else (4,))
    x = images(net.input_shape)
    with registry.use_impl(impl):
        assert rel_err(net.forward(x), ort_logits(model, x)) < 1e-5


def test_averagepool_and_reducemean_refusals_name_the_node():
    g = G((3, 8, 8))
    g.op("ReduceMean", name="chanmean", axes=[1], keepdims=1)
    _refused(g.model(None, 13, output_shape=["N", 1, 8, 8]), "'chanmean'", "axes=[1]",
             "two spatial axes")
    g = G((3, 8, 8))
    g.op("ReduceMean", name="allmean", keepdims=0)
    _refused(g.model(None, 13, output_shape=[]), "'allmean'", "no axes")
    g = G((3, 8, 8))
    g.op("AveragePool", name="wide", kernel_shape=[3, 2])
    _refused(g.model(None, 13, output_shape=["N", 3, 6, 7]), "'wide'", "only square")
    g = G((3, 8, 8))
    g.op("AveragePool", name="padded", kernel_shape=[2, 2], pads=[2, 2, 2, 2])
    _refused(g.model(None, 13, output_shape=["N", 3, 11, 11]), "'padded'", "smaller than")


# -- headless chains ------------------------------------------------------------------------------
def _trunk(g):
    g.conv(3, 6, 3, 2, 1, name="conv1"); g.relu("relu1"); g.pool(3, 2, 1, name="pool1")
    g.conv(6, 8, 3, 1, 1, name="conv2"); g.relu("relu2")


@pytest.mark.parametrize("ending,classifier", [
    ("maps", False), ("flatten", False), ("gap_flatten", False), ("fc_relu", False),
    ("fc", True), ("gap_flatten_softmax", True)])
def test_a_chain_is_a_classifier_only_when_it_ends_in_class_scores(ending, classifier):
    """Feature maps, a flattened trunk, a global average's features and a hidden fc's ReLU are
    features: the net imports headless (no classes). A fully connected layer at the end, or a
    Softmax over a vector, makes class scores."""
    g = G((3, 16, 16), seed=2)
    _trunk(g)
    if ending != "maps":
        if ending.startswith("gap"):
            g.op("GlobalAveragePool", name="gap")
        g.flatten()
        if ending.startswith("fc"):
            g.fc(8 * 4 * 4, 5, name="fc")
        if ending == "fc_relu":
            g.relu("fc_relu")
        if ending.endswith("softmax"):
            g.op("Softmax", name="prob", axis=1)
    model = g.model(None, 13, output_shape=None)
    model.graph.output[0].type.tensor_type.ClearField("shape")
    net = load_onnx(model)
    assert net.onnx_info["classifier"] is classifier
    out = net.onnx_info["output_shape"]
    assert net.num_classes == (out[0] if classifier else None)
    assert ("no classifier" in net.summary_text()) is not classifier
    x = images(net.input_shape)
    with registry.use_impl("numpy"):
        assert rel_err(net.forward(x), ort_logits(model, x)) < 1e-5
    assert net.forward(x).shape[1:] == out


def test_a_graph_that_computes_nothing_is_refused():
    g = G((3, 8, 8))
    g.op("Identity", name="id")
    _refused(g.model(None, 13, output_shape=["N", 3, 8, 8]), "no layer")


# -- PyTorch-exported files (tests/onnx_files/make_headless.py) ------------------------------------
TORCH_FILES = {  # file: (the ops PyTorch wrote, classes or None)
    "headless_trunk.onnx": (["Conv", "Relu", "MaxPool", "Conv", "Relu", "AveragePool", "Conv",
                             "Relu"], None),
    "adaptive_avg_head.onnx": (["Conv", "Relu", "AveragePool", "Conv", "Relu",
                                "GlobalAveragePool", "Flatten", "Gemm"], 5),
    "mean_head.onnx": (["Conv", "Relu", "AveragePool", "Conv", "Relu", "Constant", "ReduceMean",
                        "Gemm"], 5),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", sorted(TORCH_FILES))
def test_torch_exported_files_give_onnxruntimes_output(name, impl):
    path = FILES / name
    assert path.stat().st_size < 100_000
    model = onnx.load(str(path))
    ops, classes = TORCH_FILES[name]
    assert [n.op_type for n in model.graph.node] == ops
    net = load_onnx(path)
    assert net.num_classes == classes and net.input_shape == (3, 32, 32)
    pools = [layer for layer in net.layers if isinstance(layer, AvgPool2d)]
    assert len(pools) == 1
    if name == "headless_trunk.onnx":  # nn.AvgPool2d(3, 2, padding=1): the padding counted
        assert (pools[0].k, pools[0].stride, pools[0].pad, pools[0].count_include_pad,
                pools[0].ceil_mode) == (3, 2, 1, True, False)
        assert net.onnx_info["output_shape"] == (16, 4, 4)
    else:                              # nn.AvgPool2d(3, 2, ceil_mode=True, count_include_pad=0)
        assert (pools[0].ceil_mode, pools[0].count_include_pad) == (True, False)
        assert any(isinstance(layer, GlobalAvgPool2d) for layer in net.layers)
        assert isinstance(net.layers[-1], Linear)
    x = images(net.input_shape, 3) / 50
    want = run_ort(model, x)
    with registry.use_impl(impl):
        got = net.forward(x)
    assert got.shape == want.shape
    assert rel_err(got, want) < 1e-4


@pytest.mark.parametrize("name", sorted(TORCH_FILES))
def test_the_committed_files_are_what_the_script_writes(name):
    """With PyTorch present: the script's module gives the committed file's output, and its
    fresh export imports and gives PyTorch's own output."""
    pytest.importorskip("torch")
    import sys

    sys.path.insert(0, str(FILES))
    try:
        import make_headless
    finally:
        sys.path.remove(str(FILES))
    x = images((3, 32, 32), 2) / 50
    want = make_headless.torch_outputs(name, x)
    with registry.use_impl("numpy"):
        assert rel_err(load_onnx(FILES / name).forward(x), want) < 1e-4
        module, opset = make_headless.models()[name]
        fresh = load_onnx(onnx.load_from_string(make_headless.export(module, opset)))
        assert rel_err(fresh.forward(x), want) < 1e-4


# -- export ---------------------------------------------------------------------------------------
def test_save_onnx_writes_average_pooling_and_headless_nets_back(tmp_path):
    """An imported headless net with AveragePool (both divisors, ceil mode, asymmetric pads)
    and GlobalAveragePool written back: onnx.checker-clean, onnxruntime gives zfraw's output,
    and reading it again gives the same layers and the same output bit for bit."""
    g = G((3, 15, 15), seed=4)
    g.conv(3, 4, 3, 1, 1, name="conv1")
    g.op("AveragePool", name="avg1", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 0, 1],
         ceil_mode=1)
    g.op("AveragePool", name="avg2", kernel_shape=[2, 2], strides=[1, 1], pads=[1, 1, 1, 1],
         count_include_pad=1)
    g.op("GlobalAveragePool", name="gap")
    net = load_onnx(g.model(None, 13, output_shape=["N", 4, 1, 1]))
    path = tmp_path / "headless.onnx"
    model = save_onnx(net, path, opset=13)
    assert [n.op_type for n in model.graph.node] == ["Conv", "AveragePool", "AveragePool",
                                                     "GlobalAveragePool"]
    assert model.graph.output[0].name == "features"
    back = load_onnx(path)
    assert back.num_classes is None
    assert [(type(a), vars(a).get("pads"), vars(a).get("ceil_mode"),
             vars(a).get("count_include_pad")) for a in back.layers] == \
           [(type(a), vars(a).get("pads"), vars(a).get("ceil_mode"),
             vars(a).get("count_include_pad")) for a in net.layers]
    x = images(net.input_shape, 3)
    with registry.use_impl("numpy"):
        a, b = net.forward(x), back.forward(x)
    np.testing.assert_array_equal(a, b)
    assert rel_err(a, run_ort(model, x)) < 1e-5
    with pytest.raises(ValueError, match="avg1: ceil_mode needs opset 10"):
        save_onnx(net, tmp_path / "old.onnx", opset=9)


@pytest.mark.parametrize("name", sorted(TORCH_FILES))
def test_torch_files_survive_save_and_load(name, tmp_path):
    net = load_onnx(FILES / name)
    model = save_onnx(net, tmp_path / name, opset=13)
    back = load_onnx(tmp_path / name)
    assert back.num_classes == net.num_classes
    x = images(net.input_shape, 2) / 50
    with registry.use_impl("numpy"):
        np.testing.assert_array_equal(net.forward(x), back.forward(x))
        assert rel_err(back.forward(x), run_ort(model, x)) < 1e-5
