"""What PyTorch's ONNX exporters write, imported by zfraw: nn.LocalResponseNorm (written as
Mul/Reshape/Pad/AveragePool/.../Div, read back as one LRN) before and after max pooling, grouped
convs, ceil-mode pooling, BatchNorm folded into the Conv or Gemm before it.

The files in tests/onnx_files were written by tests/onnx_files/make.py with torch.onnx.export
(TorchScript exporter at opsets 7, 9, 13 and its default, the dynamo exporter) together with
onnxruntime's outputs, so these tests run without PyTorch; where PyTorch is installed, the same
nets are exported afresh and compared with PyTorch itself."""
import importlib.util
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from zfraw.layers import Conv2d, Linear, LocalResponseNorm  # noqa: E402
from zfraw.nets.onnx import OnnxImportError, load_onnx  # noqa: E402
from zfraw.ops import registry  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FILES = os.path.join(HERE, "onnx_files")
IMPLS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(
    not registry.available("numba"), reason="numba impl not importable"))]


def _make():
    spec = importlib.util.spec_from_file_location("onnx_files_make", os.path.join(FILES,
                                                                                  "make.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make = _make()
EXPECTED = dict(np.load(os.path.join(FILES, "expected.npz")))
STEMS = sorted(EXPECTED)
# (size, alpha, beta, k) of the two LocalResponseNorms in make.lrn_net
LRN_PARAMS = [(5, 0.1, 0.75, 2.0), (3, 0.05, 0.6, 1.0)]


def rel_err(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def ort_run(model_or_path, x):
    src = model_or_path if isinstance(model_or_path, str) else model_or_path.SerializeToString()
    sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    if sess.get_inputs()[0].shape[0] == 1:
        return np.concatenate([sess.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])
    return sess.run(None, {name: x})[0]


def forward(net, x, impl):
    with registry.use_impl(impl):
        return net.forward(x)


def test_the_committed_files_are_small_and_complete():
    """make.py's files (the folder also holds make_headless.py's): each has its expected output
    (but the refused one) and stays small."""
    stems = {f[:-5] for f in os.listdir(FILES)
             if f.endswith(".onnx") and f.startswith(("lrn_", "bn_"))}
    assert {"lrn_opset7", "lrn_opset9", "lrn_opset13", "lrn_default", "lrn_batch1_opset13",
            "bn_opset13", "lrn_even"} <= stems
    assert set(EXPECTED) == stems - {"lrn_even"}
    for stem in stems:
        assert os.path.getsize(os.path.join(FILES, f"{stem}.onnx")) < 100_000, stem


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("stem", STEMS)
def test_torch_exported_file_matches_onnxruntime(stem, impl):
    """Each file imports and gives onnxruntime's outputs (stored, and computed now) within
    1e-4 relative."""
    path = os.path.join(FILES, f"{stem}.onnx")
    net = load_onnx(path)
    x = make.inputs(net.input_shape)
    got = forward(net, x, impl)
    assert got.shape == EXPECTED[stem].shape == (3, make.CLASSES)
    assert rel_err(got, EXPECTED[stem]) < 1e-4, rel_err(got, EXPECTED[stem])
    assert rel_err(got, ort_run(path, x)) < 1e-4


@pytest.mark.parametrize("stem", [s for s in STEMS if s.startswith("lrn")])
def test_torch_lrn_subgraphs_become_two_lrn_layers(stem):
    net = load_onnx(os.path.join(FILES, f"{stem}.onnx"))
    kinds = [layer.kind for layer in net.layers]
    # LRN before the first pooling (AlexNet's order), after the second (ZFNet's)
    assert kinds[:7] == ["conv", "relu", "lrn", "pool", "conv", "relu", "pool"]
    assert kinds[7] == "lrn" and kinds.count("lrn") == 2
    lrns = [layer for layer in net.layers if isinstance(layer, LocalResponseNorm)]
    for layer, (size, alpha, beta, k) in zip(lrns, LRN_PARAMS):
        assert layer.size == size
        np.testing.assert_allclose([layer.alpha, layer.beta, layer.bias], [alpha, beta, k],
                                   rtol=1e-6)
    assert net.layer(net.layers[4].name).groups == 2
    if stem not in ("lrn_opset7", "lrn_opset9"):  # before opset 10: extra end pads instead
        assert [p.ceil_mode for p in net.layers if p.kind == "pool"] == [True, False, True]
    patterns = net.onnx_info["torch_lrn"]
    assert list(patterns) == [lrns[0].name, lrns[1].name]
    for nodes in patterns.values():       # the whole subgraph, from Mul(x, x) to the Div
        assert len(nodes) >= 9 and "div" in nodes[-1].lower()
        assert any("mul" in n.lower() for n in nodes) and any("pool" in n.lower() for n in nodes)
    if not stem.endswith("dynamo"):
        assert [layer.name for layer in lrns] == ["norm1_LRN", "norm2_LRN"]


@pytest.mark.parametrize("impl", IMPLS)
def test_batchnorm_is_folded_into_conv_and_gemm(impl):
    path = os.path.join(FILES, "bn_opset13.onnx")
    ops = [n.op_type for n in onnx.load(path).graph.node]
    assert ops.count("BatchNormalization") == 3
    net = load_onnx(path)
    assert "batchnorm" not in [layer.kind for layer in net.layers]
    folded = net.onnx_info["folded_batchnorm"]
    assert list(folded) == ["/bn1/BatchNormalization", "/bn2/BatchNormalization",
                            "/bn3/BatchNormalization"]
    assert [type(net.layer(name)) for name in folded.values()] == [Conv2d, Conv2d, Linear]
    assert not np.all(net.layer(folded["/bn1/BatchNormalization"]).params["b"] == 0)  # no bias
    x = make.inputs(net.input_shape)
    assert rel_err(forward(net, x, impl), ort_run(path, x)) < 1e-4


def test_even_lrn_is_refused_with_the_reason():
    with pytest.raises(OnnxImportError) as e:
        load_onnx(os.path.join(FILES, "lrn_even.onnx"))
    msg = str(e.value)
    assert "\n" not in msg
    for needle in ("/norm1/AveragePool", "even size 4", "c-2..c+1", "c-1..c+2"):
        assert needle in msg, msg


# -- PyTorch itself, where it is installed ------------------------------------------------------
@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("opset", [7, 8, 10, 11, 12, 14, 17, None])
def test_fresh_torchscript_exports_match_pytorch(torch, opset, impl):
    """The same nets exported now, at more opsets than the committed files, equal PyTorch's own
    outputs and onnxruntime's within 1e-4 relative."""
    for module in (make.lrn_net(torch), make.bn_net(torch)):
        kw = {"do_constant_folding": False} if isinstance(module[1], torch.nn.BatchNorm2d) else {}
        model = make.torchscript(torch, module, opset, **kw)
        net = load_onnx(model)
        x = make.inputs(net.input_shape, seed=4)
        with torch.no_grad():
            want = module(torch.from_numpy(x)).numpy()
        got = forward(net, x, impl)
        assert rel_err(got, want) < 1e-4
        assert rel_err(got, ort_run(model, x)) < 1e-4


def test_fresh_dynamo_export_matches_pytorch(torch):
    pytest.importorskip("onnxscript", reason="the dynamo exporter needs onnxscript")
    module = make.lrn_net(torch)
    net = load_onnx(make.dynamo(torch, module))
    x = make.inputs(net.input_shape, seed=5)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    assert rel_err(forward(net, x, "numpy"), want) < 1e-4
    assert [layer.kind for layer in net.layers].count("lrn") == 2
