"""Input conventions (InputSpec) and the report of an imported ONNX net (``--model``)."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from definitions import one_line_error
from zfraw.data import stored_size
from zfraw.nets.inputs import InputSpec
from zfraw.viz.source import ImageSource

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stored(n=3, s=36, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, s, s, 3), dtype=np.uint8)


# -- InputSpec ----------------------------------------------------------------------------------
def test_presets_against_hand_computation():
    images = stored()
    crop = images[:, 2:34, 2:34].astype(np.float64)            # centre 32 of 36, RGB
    r, g, b = crop[..., 0], crop[..., 1], crop[..., 2]

    caffe = InputSpec.preset("caffe", 32)
    assert (caffe.size, caffe.crop, caffe.order) == (36, 32, "BGR")
    x = caffe.apply(images)
    assert x.dtype == np.float32 and x.shape == (3, 3, 32, 32)
    for k, (chan, mean) in enumerate([(b, 104), (g, 117), (r, 123)]):   # BGR order
        np.testing.assert_array_equal(x[:, k], chan - mean)

    x = InputSpec.preset("torch", 32).apply(images)
    for k, (m, s) in enumerate(zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))):
        np.testing.assert_allclose(x[:, k], (crop[..., k] / 255 - m) / s, rtol=1e-5, atol=1e-5)

    np.testing.assert_array_equal(InputSpec.preset("none", 32).apply(images),
                                  crop.transpose(0, 3, 1, 2))

    # a custom spec: mean pixel, std, scale and BGR, in the documented order
    spec = InputSpec(36, 32, "BGR", mean=(10, 20, 30), std=(2, 4, 8), scale=0.5)
    want = ((crop - [10, 20, 30]) / [2, 4, 8] * 0.5)[..., ::-1].transpose(0, 3, 1, 2)
    np.testing.assert_allclose(spec.apply(images), want, rtol=1e-6)

    # zfraw: the run's mean image and input scale
    mean = np.random.default_rng(1).random((36, 36, 3)).astype(np.float32) * 200
    x = InputSpec.zfraw(mean, 32, 1 / 64).apply(images)
    np.testing.assert_allclose(x, ((crop - mean[2:34, 2:34]) / 64).transpose(0, 3, 1, 2),
                               rtol=1e-5, atol=1e-5)
    assert stored_size(224, convention="zoo") == 256 and InputSpec.preset("caffe", 227).size == 256
    assert stored_size(64, convention="zoo") == 72


@pytest.mark.parametrize("name", ["caffe", "torch", "none", "zfraw", "custom"])
def test_to_pixels_inverts_inputs(name):
    images = stored(4)
    if name == "custom":
        spec = InputSpec(36, 30, "BGR", mean=(1, 2, 3), std=(50, 60, 70), scale=3.0)
    else:
        mean = np.random.default_rng(2).random((36, 36, 3)) * 255
        spec = InputSpec.preset(name, 30 if name == "zfraw" else 32, size=36, mean=mean,
                                scale=0.25)
    src = ImageSource(images, None, spec.crop, np.zeros(4, int), spec=spec)
    idx = [3, 1]
    np.testing.assert_allclose(src.to_pixels(src.inputs(idx)), src.pixels(idx), atol=2e-3)


def test_the_zfraw_spec_is_the_run_path_bit_for_bit():
    images = stored(5)
    mean = np.random.default_rng(3).random((36, 36, 3)).astype(np.float32) * 255
    plain = ImageSource(images, mean, 32, np.arange(5), scale=0.015625)
    spec = InputSpec.from_json(InputSpec.zfraw(mean, 32, 0.015625).to_json())  # via JSON
    other = ImageSource(images, None, 32, np.arange(5), spec=spec)
    assert np.array_equal(plain.inputs(range(5)), other.inputs(range(5)))
    assert plain.spec == spec and plain.spec.name == "zfraw"


def test_bad_specs_are_refused():
    with pytest.raises(ValueError, match="--preprocess 'tf'"):
        InputSpec.preset("tf", 32)
    with pytest.raises(ValueError, match="RGB or BGR"):
        InputSpec(36, 32, "GBR")
    with pytest.raises(ValueError, match="std"):
        InputSpec(36, 32, std=(1, 0, 1))
    with pytest.raises(ValueError, match="mean"):
        InputSpec(36, 32, mean=(1, 2))
    with pytest.raises(ValueError, match="either"):
        ImageSource(stored(2), np.zeros((36, 36, 3)), 32, [0, 0],
                    spec=InputSpec.preset("none", 32))
    with pytest.raises(ValueError, match="stores at"):
        ImageSource(stored(2), None, 32, [0, 0], spec=InputSpec.preset("none", 32, size=40))


# -- the model report ---------------------------------------------------------------------------
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def tiny_net():
    from zfraw.nets import build

    return build("zf-32", 10, seed=0, init="he", width=0.125)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny zf-32 exported twice: 'plain.onnx' with its nodes renamed (not zfraw's names, no
    recorded convention) and 'recorded.onnx' with a zfraw InputSpec in its metadata."""
    from zfraw.nets.onnx import save_onnx

    d = tmp_path_factory.mktemp("onnx_report")
    net = tiny_net()
    save_onnx(net, d / "plain.onnx")
    m = onnx.load(str(d / "plain.onnx"))
    for i, node in enumerate(m.graph.node):
        node.name = f"block{i}/{node.op_type}"
    onnx.save(m, str(d / "plain.onnx"))
    mean = np.full((36, 36, 3), 120, np.float32)
    save_onnx(net, d / "recorded.onnx", input_spec=InputSpec.zfraw(mean, 32, 1 / 64))
    return d


SMALL = ["--limit", "12", "--maps", "2", "--occlusion-figures", "1", "--occlusion-stats", "3",
         "--random-draws", "2", "--occlusion-stride", "8", "--batch-size", "32"]


def test_save_and_load_carry_the_input_spec(models):
    from zfraw.nets.onnx import load_onnx

    net = load_onnx(models / "recorded.onnx")
    assert net.input_spec == InputSpec.zfraw(np.full((36, 36, 3), 120, np.float32), 32, 1 / 64)
    assert load_onnx(models / "plain.onnx").input_spec is None


def test_model_report_end_to_end(models):
    from zfraw.report import build_report, parse_args

    path = build_report(parse_args(["--model", str(models / "plain.onnx"), "--data",
                                    "synthetic", "--preprocess", "caffe"] + SMALL))
    assert path == models / "report-plain" / "index.html"
    html = path.read_text()
    for heading in ("Input convention", "Architecture", "First-layer filters",
                    "Projection rules", "Top-9", "Invariance", "Occlusion", "Correspondence"):
        assert heading in html, heading
    assert "Training</h2>" not in html and "Feature evolution" not in html
    assert "BGR" in html and "123.000" in html          # the spec is on the page
    assert "top-1 prediction" in html                   # synthetic's classes are not 'class k'
    pngs = re.findall(r'src="([^"]+\.png)"', html)
    for name in pngs:
        assert (path.parent / name).stat().st_size > 0
    # layers chosen by type: the renamed nodes' ReLUs after each conv, the last for rules
    relus = ["block1_Relu", "block5_Relu", "block9_Relu", "block11_Relu", "block13_Relu"]
    assert [f"top9_{r}.png" for r in relus] == [p for p in pngs if p.startswith("top9_")]
    assert "Projection rules at block13_Relu" in html
    assert {"conv1.png", "rules.png", "invariance.png", "occlusion_0.png"} <= set(pngs)


def test_model_report_with_recorded_spec_and_matching_labels(models, tmp_path):
    from zfraw.data.synthetic import CLASSES
    from zfraw.report import main

    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(CLASSES) + "\n")
    out = tmp_path / "rep"
    rc = main(["--model", str(models / "recorded.onnx"), "--data", "synthetic", "--labels",
               str(labels), "--out", str(out), "--skip", "top9", "correspondence", "filters"]
              + SMALL)
    assert rc == 0
    html = (out / "index.html").read_text()
    assert "Recorded in the model file" in html and "0.015625" in html
    assert "classes are all among the model" in html and any(c in html for c in CLASSES)
    assert "Top-9" not in html and "Occlusion" in html


def refused_graph(path):
    """A one-node graph with an op the importer refuses (Sigmoid)."""
    from onnx import TensorProto, helper

    node = helper.make_node("Sigmoid", ["x"], ["y"], name="sig")
    graph = helper.make_graph([node], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                             [1, 3, 8, 8])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_model_user_errors_are_one_line_and_exit_2(models, tmp_path, capsys):
    from zfraw import report

    not_onnx = tmp_path / "notes.onnx"
    not_onnx.write_text("these are not the weights you are looking for\n" * 3)
    three = tmp_path / "three.txt"
    three.write_text("a\nb\nc\n")
    plain = ["--model", str(models / "plain.onnx"), "--data", "synthetic"]
    cases = {
        "missing file": (["--model", str(tmp_path / "none.onnx"), "--data", "synthetic"],
                         ["none.onnx", "no such file"]),
        "not onnx": (["--model", str(not_onnx), "--data", "synthetic", "--preprocess", "none"],
                     ["notes.onnx"]),
        "refused graph": (["--model", str(refused_graph(tmp_path / "sig.onnx")), "--data",
                           "synthetic", "--preprocess", "none"], ["Sigmoid", "sig"]),
        "bad preset": (plain + ["--preprocess", "tf"], ["--preprocess 'tf'", "caffe"]),
        "no preset": (plain, ["does not record", "--preprocess"]),
        "labels count": (plain + ["--preprocess", "none", "--labels", str(three)],
                         ["3 names", "10 outputs"]),
        "labels missing": (plain + ["--preprocess", "none", "--labels", str(tmp_path / "x")],
                           ["--labels", "cannot read"]),
        "run and model": (plain + ["--run", str(tmp_path)], ["--run", "--model"]),
        "neither": (["--data", "synthetic"], ["--run", "--model"]),
        "model without data": (["--model", str(models / "plain.onnx")], ["--data"]),
        "preset with a run": (["--run", str(tmp_path), "--preprocess", "caffe"],
                              ["--preprocess", "--model"]),
        "checkpoint with a model": (plain + ["--checkpoint", "x.npz"], ["--checkpoint"]),
        "bad data": (plain + ["--preprocess", "none", "--data", "nosuch:1"], ["nosuch"]),
        "unknown layer": (plain + ["--preprocess", "none", "--rules-layer", "relu5"],
                          ["--rules-layer", "relu5", "block1_Relu"]),
    }
    for name, (argv, words) in cases.items():
        rc = report.main(argv + ["--out", str(tmp_path / "out")])
        one_line_error(capsys, rc, *words)
    assert not (tmp_path / "out").exists()


def test_the_model_entry_point_prints_no_traceback(tmp_path):
    p = subprocess.run([sys.executable, "-m", "zfraw.report", "--model",
                        str(tmp_path / "nonexistent.onnx"), "--data", "synthetic"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("error: ")


def test_a_run_and_its_exported_net_make_the_same_subject(trained_run, tmp_path):
    """One subject for both sources: a run, and its net exported to ONNX with the run's input
    convention and class names, read the same net inputs and labels, measure the same truth and
    pick the same layers (an imported graph's, chosen by type, are a zfraw net's defaults, named);
    only the run brings training (metrics, checkpoints) and its renormalization."""
    from zfraw.data.synthetic import CLASSES
    from zfraw.nets.onnx import save_onnx
    from zfraw.report import parse_args
    from zfraw.report.subject import subject_of
    from zfraw.rundir import RunDir

    run = subject_of(parse_args(["--run", str(trained_run), "--limit", "12"]))
    net = RunDir(trained_run).load_net(None, "cpu")[0]
    save_onnx(net, tmp_path / "net.onnx", input_spec=run.source.spec)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(CLASSES) + "\n")
    model = subject_of(parse_args(["--model", str(tmp_path / "net.onnx"), "--data", "synthetic",
                                   "--labels", str(labels), "--limit", "12"]))

    assert len(run.source) == len(model.source) == 12
    np.testing.assert_array_equal(model.source.inputs(range(12)), run.source.inputs(range(12)))
    np.testing.assert_array_equal(model.source.labels, run.source.labels)
    assert model.source.names == run.source.names == list(CLASSES)
    assert model.truth == run.truth == "the true class"
    assert model.layers == {k: v for k, v in run.layers.items() if k != "evolution"}
    assert run.layers["top9"] == ["relu1", "relu2", "relu3", "relu4", "relu5"]
    x = run.source.inputs(range(4))
    np.testing.assert_allclose(model.net.forward(x), run.net.forward(x), rtol=1e-4, atol=1e-4)

    assert model.training is None and model.renorm == "imported net"
    assert [e for e, _ in run.training.epochs] == [1] and len(run.training.metrics) == 1
    assert run.renorm == "filter renormalization to RMS 0.1" and run.label == "this run"
    assert run.out == trained_run / "report" and model.out == tmp_path / "report-net"
    assert [h for h, _ in model.notes] == ["Classes and labels", "Layers"] and not run.notes
