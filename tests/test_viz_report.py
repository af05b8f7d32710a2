"""The report end to end on a tiny trained run, and the HTML page writer."""
import re

import numpy as np

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
