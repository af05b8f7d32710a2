"""The report end to end on a tiny trained run, and the HTML page writer."""
import re

import numpy as np
import pytest

from zfraw.viz.html import HtmlPage


def test_html_page_links_and_escapes(tmp_path):
    page = HtmlPage("a <b> & c")
    page.heading("Section")
    page.table(["x", "y"], [[1, 0.123456789], ["<i>", "z"]])
    page.image(tmp_path / "figs" / "f.png", "cap & tion")
    page.pre("a < b")
    text = page.write(tmp_path / "report" / "index.html").read_text()
    assert 'src="../figs/f.png"' in text
    assert "a &lt;b&gt; &amp; c" in text and "&lt;i&gt;" in text and "0.1235" in text
    assert "<pre>a &lt; b</pre>" in text


def test_report_on_a_tiny_run(tmp_path):
    from zfraw import training
    from zfraw.report import build_report, parse_args
    from zfraw.rundir import RunDir

    run = tmp_path / "run"
    cfg = training.TrainConfig(arch="zf-32", width=0.1, data="synthetic:60", epochs=2,
                               batch_size=20, out=str(run), init="he", input_scale=1 / 64,
                               progress=False, prefetch=False)
    training.train(cfg, log=lambda *a: None)
    assert [e for e, _ in RunDir(run).epoch_checkpoints()] == [1, 2]
    assert [r["epoch"] for r in RunDir(run).read_metrics()] == [1, 2]
    path = build_report(parse_args([
        "--run", str(run), "--limit", "12", "--maps", "2", "--evolution-images", "8",
        "--occlusion-figures", "1", "--occlusion-stats", "3", "--random-draws", "2",
        "--occlusion-stride", "8", "--batch-size", "32"]))
    html = path.read_text()
    for heading in ("Training", "First-layer filters", "Projection rules", "Top-9",
                    "Feature evolution", "Invariance", "Occlusion", "Correspondence"):
        assert heading in html
    pngs = re.findall(r'src="([^"]+\.png)"', html)
    assert len(pngs) >= 10
    for name in pngs:
        assert (path.parent / name).stat().st_size > 0
    assert "top9_relu5.png" in pngs and "evolution_relu5.png" in pngs
    assert np.isfinite([float(v) for v in re.findall(r"<td>(0\.\d+)</td>", html)]).all()


def test_report_compares_two_runs(trained_run, tmp_path):
    """--compare RUN: both runs' first-layer filters side by side, named with how each kept
    them in bounds, both nets' layer-2 projections, both in the diagnostics table; a run whose
    net reads other inputs is refused before anything is written."""
    import json
    import shutil

    from zfraw.report import build_report, parse_args

    other = shutil.copytree(trained_run, tmp_path / "other")
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps(dict(config, renorm_radius=0)))
    argv = ["--run", str(trained_run), "--compare", str(other), "--limit", "12", "--maps", "2",
            "--batch-size", "32", "--skip", "rules", "top9", "evolution", "invariance",
            "occlusion", "correspondence"]
    path = build_report(parse_args(argv + ["--out", str(tmp_path / "r")]))
    html = path.read_text()
    assert "conv1 filters of the two runs side by side" in html
    assert "this run: zf-32, filter renormalization to RMS 0.1" in html
    assert "other: zf-32, no filter renormalization" in html
    assert "<tr><td>this run</td>" in html and "<tr><td>other</td>" in html
    pngs = re.findall(r'src="([^"]+\.png)"', html)
    assert {"conv1.png", "layer2_compare.png", "filter_diagnostics.png"} <= set(pngs)
    for name in pngs:
        assert (path.parent / name).stat().st_size > 0

    (other / "config.json").write_text(json.dumps(dict(config, input_scale=1.0)))
    with pytest.raises(ValueError, match="--compare: .* same input size and scale"):
        build_report(parse_args(argv + ["--out", str(tmp_path / "refused")]))
    assert not (tmp_path / "refused").exists()
