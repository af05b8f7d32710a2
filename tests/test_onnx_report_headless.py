"""The report of an imported net without a classifier (a headless graph: the PyTorch-exported
trunk of tests/onnx_files): every analysis that needs class scores says in one line that the
model has none and leaves itself out, the rest runs; and the pieces that make that possible
(occlusion sweeps and invariance curves without probabilities, their figures)."""
import re
from html import unescape
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")

from definitions import one_line_error  # noqa: E402

TRUNK = Path(__file__).resolve().parent / "onnx_files" / "headless_trunk.onnx"
HEAD = Path(__file__).resolve().parent / "onnx_files" / "adaptive_avg_head.onnx"
SMALL = ["--limit", "12", "--maps", "2", "--occlusion-figures", "1", "--occlusion-stats", "3",
         "--random-draws", "2", "--occlusion-stride", "8", "--batch-size", "32",
         "--preprocess", "torch"]
NONE = "The model has no classifier (its graph ends in 16x4x4 features, not class scores)"


@pytest.fixture(scope="module")
def headless_report(tmp_path_factory):
    from zfraw.report import build_report, parse_args

    out = tmp_path_factory.mktemp("headless") / "report"
    return build_report(parse_args(["--model", str(TRUNK), "--data", "synthetic", "--out",
                                    str(out)] + SMALL))


def _section(html, heading, next_heading):
    return html[html.index(heading):html.index(next_heading)]


def test_headless_report_leaves_out_what_needs_class_scores_in_one_line_each(headless_report):
    html = unescape(headless_report.read_text())
    assert "no classifier (output (N, 16, 4, 4))" in html
    # one line each: the predictions (classes and labels), invariance, occlusion
    assert html.count(NONE) == 3
    labels = _section(html, "Classes and labels", "Layers")
    assert f"{NONE}: the net's predictions are left out." in labels
    invariance = _section(html, "Invariance to vertical", "Occlusion sensitivity")
    assert f"{NONE}: the probability curves" in invariance
    assert "the probability of" not in invariance
    occlusion = _section(html, "Occlusion sensitivity", "Correspondence")
    assert f"{NONE}: occlusion's class probabilities, the most probable class" in occlusion
    assert "(d) the probability" not in occlusion and "Share of the drop" not in occlusion
    assert "top-1 prediction" not in html and "Training</h2>" not in html


def test_headless_report_runs_everything_else(headless_report):
    html = unescape(headless_report.read_text())
    for heading in ("Architecture", "First-layer filters", "Filter diagnostics",
                    "Projection rules at 7_Relu", "Top-9", "Invariance", "Occlusion",
                    "Correspondence"):
        assert heading in html, heading
    pngs = re.findall(r'src="([^"]+\.png)"', html)
    assert [p for p in pngs if p.startswith("top9_")] == [
        "top9_1_Relu.png", "top9_4_Relu.png", "top9_7_Relu.png"]
    assert {"conv1.png", "rules.png", "invariance.png", "occlusion_0.png"} <= set(pngs)
    assert any(p.startswith("correspondence_") for p in pngs)
    for name in pngs:
        assert (headless_report.parent / name).stat().st_size > 0
    assert re.search(r"5_AveragePool +avgpool +16x4x4", html)  # the architecture's table


def test_headless_figures_have_no_probability_panels(headless_report, tmp_path):
    """The headless occlusion figure is (a)-(c) only and its invariance figure two distance
    columns: narrower than a classifier's, which the same options draw with (d), (e) and the
    probability column."""
    from PIL import Image

    from zfraw.report import build_report, parse_args

    out = tmp_path / "head"
    build_report(parse_args(["--model", str(HEAD), "--data", "synthetic", "--out", str(out),
                             "--skip", "filters", "rules", "top9", "correspondence"] + SMALL))
    for png in ("occlusion_0.png", "invariance.png"):
        headless = Image.open(headless_report.parent / png).size[0]
        classifier = Image.open(out / png).size[0]
        assert headless < classifier * 0.85, (png, headless, classifier)


def test_labels_for_a_headless_model_are_one_line_and_exit_2(tmp_path, capsys):
    from zfraw import report

    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    rc = report.main(["--model", str(TRUNK), "--data", "synthetic", "--preprocess", "torch",
                      "--labels", str(labels), "--out", str(tmp_path / "out")])
    one_line_error(capsys, rc, "--labels", "no classifier", "16x4x4")
    assert not (tmp_path / "out").exists()


# -- the pieces: sweeps, curves and figures without probabilities ------------------------------
def _maps_forward(probs):
    """forward(x) -> (probs or None, act): act is x's channel sums pooled 2x2, probs a softmax
    of two made-up scores."""
    def forward(x):
        act = x.reshape(len(x), x.shape[1], x.shape[2] // 2, 2, x.shape[3] // 2, 2).sum((3, 5))
        if not probs:
            return None, act
        s = np.stack([act.sum((1, 2, 3)), -act.sum((1, 2, 3))], axis=1)
        e = np.exp(s - s.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True), act
    return forward


def test_occlusion_sweep_without_probabilities_keeps_the_activation_map():
    from zfraw.viz.occlusion import occlusion_sweep

    image = np.random.default_rng(0).standard_normal((3, 8, 8)).astype(np.float32)
    with_p = occlusion_sweep(_maps_forward(True), image, 0, 3, 2)
    without = occlusion_sweep(_maps_forward(False), image, 0, 3, 2)
    np.testing.assert_array_equal(with_p.act, without.act)
    assert without.fmap == with_p.fmap and without.base_act == with_p.base_act
    assert without.prob_true is None and without.top_class is None
    assert np.isnan(without.base_prob) and without.base_class == -1


def test_invariance_curves_without_probabilities_keep_the_distances():
    from zfraw.viz.invariance import invariance_curves

    images = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)

    def features(probs):
        def f(x):
            p, act = _maps_forward(probs)(x)
            return p, {"act": act}
        return f

    a = invariance_curves(features(True), images, np.array([0, 1]), "rotate", [0, 90], ["act"])
    b = invariance_curves(features(False), images, np.array([0, 1]), "rotate", [0, 90], ["act"])
    np.testing.assert_array_equal(a["dist"]["act"], b["dist"]["act"])
    assert a["prob"].shape == (2, 2) and b["prob"] is None


@pytest.mark.parametrize("path,layer", [(TRUNK, "7_Relu"), (HEAD, "4_Relu"), (TRUNK, "1_Relu")])
def test_incremental_occlusion_runs_average_pooling_in_full_and_stays_exact(path, layer):
    """The report's occlusion sweep on the CPU: from an average-pooling layer on, the occluded
    copies run in full (it is neither a convolution nor a max pooling), and the activations
    equal a full forward of the occluded images."""
    from zfraw.nets.onnx import load_onnx
    from zfraw.viz.incremental import IncrementalOcclusion
    from zfraw.viz.occlusion import occlude

    net = load_onnx(path)
    image = (np.random.default_rng(2).standard_normal(net.input_shape)).astype(np.float32)
    boxes = [(0, 0, 8, 8), (12, 20, 20, 28), (28, 28, 36, 36)]
    probs, act = IncrementalOcclusion(net, image, layer)(boxes, 0.0)
    full, caps = net.forward(occlude(image, boxes), capture=[layer])
    np.testing.assert_allclose(act, caps[layer], rtol=1e-5, atol=1e-5)
    assert probs.shape[0] == len(boxes)
