"""The report as the gallery draws it: every image, projection and patch tile at least 48 px
wide (pixel figures, plotted figures measured in their PNG files, and the page that shows them
at their own size); Fig. 7's images and the occlusion statistic's images picked by stated rules
(checked against the nets' own predictions and the datasets' boxes); Table 1 pooled over every
class and image of a --parts file beside the paper's numbers; the numbers written to JSON."""
import json
import re

import numpy as np
import pytest
from PIL import Image

from conftest import train_folder_run
from zfraw.report import build_report, parse_args
from zfraw.report.records import record_text
from zfraw.report.sections import (PAPER_TABLE1, box_area_shares, first_per_class,
                                   invariance_strip, occlusion_picks, occlusion_projections,
                                   stats_images)
from zfraw.viz import plots
from zfraw.viz.evolution import evolution_figure
from zfraw.viz.images import MIN_TILE, tile_zoom
from zfraw.viz.occlusion import OcclusionMaps
from zfraw.viz.source import ImageSource
from zfraw.viz.top9 import Projected, layer_figure, map_blocks

IMAGE = (13, 200, 77)     # colours that no colour map or overlay of the figures produces
TILE = (201, 17, 180)


def longest_run(png, colour) -> int:
    """The longest horizontal run of pixels of exactly ``colour`` in a PNG file."""
    px = np.asarray(Image.open(png).convert("RGB"))
    hit = np.all(px == np.array(colour, np.uint8), axis=2)
    best = 0
    for row in hit:
        if row.any():
            edges = np.diff(np.concatenate([[0], row.astype(np.int8), [0]]))
            best = max(best, int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))
                                 .max()))
    return best


def solid(side, colour):
    return np.tile(np.array(colour, np.uint8), (side, side, 1))


def sweep_maps(n=4, classes=3):
    rng = np.random.default_rng(0)
    centres = np.arange(4, 8 * n, 8)
    return OcclusionMaps(act=rng.random((n, n)), prob_true=rng.random((n, n)),
                         top_class=rng.integers(0, classes, (n, n)), ys=centres, xs=centres,
                         fmap=3, base_act=1.0, base_prob=0.7, base_class=0, size=8)


# -- tiles at least 48 px wide ---------------------------------------------------------------
def projection_grid(side, frame=3):
    """Fig. 7 (c)'s picture as the report builds it: 3x3 framed tiles of ``side`` pixels, the
    first of them in the colour TILE."""
    cell = side + 2 * frame
    picture = np.full((3 * cell + 8, 3 * cell + 8, 3), 255, np.uint8)
    picture[2 + frame:2 + frame + side, 2 + frame:2 + frame + side] = TILE
    return picture


@pytest.mark.parametrize("crop", [32, 64])
def test_occlusion_figure_draws_the_image_and_every_projection_tile_at_least_48px(tmp_path,
                                                                                  crop):
    """Measured in the PNG: the image of panel (a) and the tiles of panel (c) at the report's
    tile size (the crop enlarged to 48 px or more) come out at least 48 px wide, and the
    figure fits the page's column."""
    from zfraw.viz.html import PAGE_WIDTH

    side = crop * tile_zoom(crop)
    path = plots.occlusion_figure(tmp_path / "o.png", solid(crop, IMAGE), sweep_maps(crop // 8),
                                  ["ant", "bee", "cat"], 0, (2, 2, 20, 20),
                                  projection_grid(side), side, "validation image 0")
    assert longest_run(path, IMAGE) >= MIN_TILE
    assert longest_run(path, TILE) >= MIN_TILE
    assert Image.open(path).size[0] <= PAGE_WIDTH


def test_plotted_figures_grow_until_a_small_tile_is_48px(tmp_path):
    """A picture whose tiles are a small part of it (here a 40 px tile in a 400 px picture,
    which the starting layout draws about 20 px wide) makes the figure grow until the tile is
    48 px wide in the PNG: Fig. 7's projections and Fig. 5's strips alike."""
    picture = np.full((400, 400, 3), 255, np.uint8)
    picture[:40, :40] = TILE
    path = plots.occlusion_figure(tmp_path / "o.png", solid(64, IMAGE), sweep_maps(8),
                                  ["ant", "bee", "cat"], 0, None, picture, 40)
    assert longest_run(path, TILE) >= MIN_TILE
    curves = {k: {"amounts": np.arange(5.0), "dist": {"relu1": np.ones((5, 2)),
                                                      "relu7": np.ones((5, 2))},
                  "prob": np.full((5, 2), 0.5)} for k in ("translate", "scale", "rotate")}
    path = plots.invariance_figure(tmp_path / "i.png", curves, ["relu1", "relu7"],
                                   strips={k: picture for k in curves}, names=["a", "b"],
                                   strip_tile=40)
    assert longest_run(path, TILE) >= MIN_TILE


def test_the_invariance_figure_of_a_64px_net_fits_the_page(tmp_path):
    """The report's strips for a 64 px crop (5 images of 5 amounts, 64 px each) keep the
    figure within the page's column."""
    from zfraw.viz.html import PAGE_WIDTH

    curves = {k: {"amounts": np.arange(13.0), "dist": {"relu1": np.ones((13, 5)),
                                                       "relu7": np.ones((13, 5))},
                  "prob": np.full((13, 5), 0.5)} for k in ("translate", "scale", "rotate")}
    strip = np.full((24 + 5 * 67, 8 + 5 * 67, 3), 255, np.uint8)
    strip[24:88, 8:72] = TILE
    path = plots.invariance_figure(tmp_path / "i.png", curves, ["relu1", "relu7"],
                                   strips={k: strip for k in curves}, names=list("abcde"),
                                   strip_tile=64)
    assert longest_run(path, TILE) >= MIN_TILE and Image.open(path).size[0] <= PAGE_WIDTH


def projected(side, value=1.0, image=0, seed=0):
    rng = np.random.default_rng(seed)
    return Projected(value, image, (0, 0, side, side), rng.standard_normal((3, side, side)),
                     rng.uniform(0, 255, (3, side, side)))


@pytest.mark.parametrize("side", [5, 15, 23, 39, 47, 55, 71])
def test_pixel_figures_enlarge_every_tile_to_at_least_48px(side):
    """Fig. 2's blocks, Fig. 4's strips: a receptive field of ``side`` pixels (zf-64's are
    5, 15, 39, 55, 71) is drawn by whole-pixel repetition at least 48 px wide."""
    z = tile_zoom(side)
    assert side * z >= MIN_TILE and (z == 1 or side * (z - 1) < MIN_TILE)
    proj, patch = map_blocks([projected(side, seed=k) for k in range(9)])
    assert proj.shape[1] == 3 * side * z + 4 and patch.shape == proj.shape   # 3 tiles, 4 gaps
    evo = evolution_figure([(1, {0: projected(side).proj}), (2, {0: None})], [0])
    assert evo.shape[1] >= 2 * MIN_TILE


@pytest.mark.parametrize("crop", [32, 64])
def test_invariance_strip_and_occlusion_projection_tiles_are_at_least_48px(crop, monkeypatch):
    import zfraw.report.sections as sections

    rng = np.random.default_rng(0)
    src = ImageSource(rng.integers(0, 256, (3, crop, crop, 3), dtype=np.uint8), None, crop,
                      np.arange(3))
    zoom = tile_zoom(crop)
    strip = invariance_strip(src, src.inputs([0, 1]), "rotate", np.arange(0, 90, 10), zoom)
    assert crop * zoom >= MIN_TILE and strip.shape[0] >= 2 * crop * zoom

    # Fig. 7 (c): the other images' projections (receptive-field crops of any size)
    monkeypatch.setattr(sections, "project_strongest",
                        lambda net, x, layer, fmap: (rng.standard_normal((1, 3, crop, crop)),
                                                     None, None))
    monkeypatch.setattr(sections, "project_topk", lambda *a, **k: {
        5: [projected(23, image=i + 1, seed=i) for i in range(9)]})
    picture, side = occlusion_projections(None, src, "relu5", 0, 5, None, 8)
    assert side >= MIN_TILE and picture.shape[0] >= 3 * side


def test_top9_layer_figure_fits_the_page_without_shrinking_tiles():
    from zfraw.viz.html import PAGE_WIDTH

    blocks = [map_blocks([projected(39, seed=k) for k in range(9)]) for _ in range(9)]
    square = layer_figure(blocks)                         # 3 maps a row: wider than the page
    fitted = layer_figure(blocks, max_width=PAGE_WIDTH)
    assert square.shape[1] > PAGE_WIDTH >= fitted.shape[1]
    assert fitted.shape[0] > square.shape[0]              # more rows, the same tiles


def test_the_page_shows_figures_at_their_own_size(tmp_path):
    from zfraw.viz.html import HtmlPage

    text = HtmlPage("t").write(tmp_path / "index.html").read_text()
    style = re.search(r"<style>(.*)</style>", text).group(1)
    assert "img{max-width:none" in style and "max-width:100%" not in style
    assert "figure{margin:1em 0;overflow-x:auto}" in style


# -- Fig. 7's images and the statistic's, by rule ---------------------------------------------
def test_occlusion_picks_take_the_first_correct_confident_small_box_images():
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    top1 = np.array([0, 1, 0, 0, 1, 2, 0, 1])
    p = np.array([0.9, 0.4, 0.95, 0.6, 0.8, 0.7, 0.99, 0.55])
    share = np.array([0.3, 0.2, 0.1, 0.7, 0.5, np.nan, 0.2, 0.1])
    # 0: yes; 1: p < 0.5; 2: wrong class; 3: box too large; 4: yes (0.5 is in); 5: no box;
    # 6: yes; 7: yes
    picked, fallback = occlusion_picks(labels, share, 3, 0.5, 0.5, p, top1)
    assert list(picked) == [0, 4, 6] and len(fallback) == 0
    picked, fallback = occlusion_picks(labels, share, 6, 0.5, 0.5, p, top1)
    assert list(picked) == [0, 4, 6, 7]
    # the rest: those with a box within the bound first (2, 1), by decreasing p
    assert list(fallback) == [2, 1]
    # no classifier: the box condition alone
    picked, _ = occlusion_picks(labels, share, 3, 0.5, 0.5)
    assert list(picked) == [0, 1, 2]
    # a dataset without boxes: no box condition
    picked, _ = occlusion_picks(labels, np.full(8, np.nan), 3, 0.5, 0.5, p, top1)
    assert list(picked) == [0, 3, 4]


def test_box_area_share_is_the_box_in_the_view_over_the_view():
    images = np.zeros((3, 40, 40, 3), np.uint8)
    # stored (x0, y0, x1, y1); the 32 px centre crop starts at 4
    boxes = np.array([[4, 4, 20, 36], [0, 0, 40, 40], [-1, -1, -1, -1]])
    src = ImageSource(images, None, 32, np.zeros(3, int), boxes)
    share = box_area_shares(src)
    assert share[0] == pytest.approx(16 * 32 / 32 ** 2) and share[1] == 1.0
    assert np.isnan(share[2])
    assert np.isnan(box_area_shares(ImageSource(images, None, 32, np.zeros(3, int)))).all()


def boxed_source(shares):
    """Images whose boxes cover ``shares`` of a 20 px view (square boxes at the corner)."""
    n = len(shares)
    sides = [int(round(20 * np.sqrt(s))) for s in shares]
    boxes = np.array([[0, 0, s, s] for s in sides])
    return ImageSource(np.zeros((n, 20, 20, 3), np.uint8), None, 20, np.zeros(n, int), boxes)


def test_the_statistic_searches_the_validation_set_in_order_beyond_the_report_images():
    rng = np.random.default_rng(0)
    every = rng.choice([0.25, 0.81], 100)                  # half small, half large boxes
    asked = []

    def validation(n):
        asked.append(n)
        return boxed_source(every[:n])

    first = boxed_source(every[:8])
    src, idx, searched = stats_images(first, validation, 10, 0.5)
    small = np.flatnonzero(every <= 0.5)
    assert list(idx) == list(small[:10]) and searched == small[9] + 1
    assert asked == [16] or asked == [16, 32]             # grown only as far as needed
    assert len(src) >= searched
    # fewer such images than asked: all of them, the whole set searched
    src, idx, searched = stats_images(first, validation, 90, 0.5)
    assert list(idx) == list(small) and searched == 100
    # enough among the report's own images: no loading
    asked.clear()
    src, idx, _ = stats_images(first, validation, 2, 0.5)
    assert src is first and asked == []


def test_report_json_is_strict_json_one_row_a_line():
    text = record_text({"a": 1, "b": float("nan"), "rows": [[1, np.float32(0.5)], [2, None]],
                        "c": {"x": np.int64(3)}})
    assert json.loads(text) == {"a": 1, "b": None, "rows": [[1, 0.5], [2, None]],
                                "c": {"x": 3}}
    assert "NaN" not in text and text.splitlines()[4] == "    [1, 0.5],"


# -- the report end to end -------------------------------------------------------------------
def source_of(run, limit):
    """The report's validation images of a run, read independently of the report."""
    from zfraw.rundir import RunDir
    from zfraw.viz.datasets import load_source

    rd = RunDir(run)
    config = rd.read_config()
    net, ckpt, _ = rd.load_net(None, "cpu", config)
    return net, load_source(config, ckpt["mean"], net.input_shape[1], None, limit,
                            classes=ckpt["meta"].get("classes"))


def test_report_picks_occlusion_images_and_statistic_images_by_rule(trained_run, tmp_path):
    from zfraw.backend import to_host
    from zfraw.ops.loss import softmax

    out = tmp_path / "r"
    path = build_report(parse_args([
        "--run", str(trained_run), "--limit", "30", "--batch-size", "32",
        "--occlusion-figures", "6", "--occlusion-min-prob", "0", "--occlusion-max-box", "0.4",
        "--occlusion-stats", "6", "--occlusion-stride", "8", "--out", str(out),
        "--skip", "filters", "rules", "top9", "evolution", "invariance", "correspondence"]))
    html = path.read_text()
    net, src = source_of(trained_run, 30)
    probs = softmax(to_host(net.eval().forward(src.inputs(np.arange(len(src))))).astype(
        np.float64))
    correct = probs.argmax(axis=1) == src.labels
    small = np.nan_to_num(box_area_shares(src), nan=np.inf) <= 0.4
    rule = np.flatnonzero(correct & small)
    m = re.search(r"the first 6 validation images, in the dataset&#x27;s order, that the net "
                  r"classifies correctly .*? covers at most 0.4 of the net&#x27;s 32x32 view, "
                  r"among the report&#x27;s first 30 validation images .*?: images ([\d, ]*|none)",
                  html)
    assert m, "Fig. 7's rule is stated on the page"
    listed = [] if m.group(1) == "none" else [int(v) for v in m.group(1).split(", ")]
    assert listed == list(rule[:6])
    assert len(re.findall(r'src="occlusion_\d+\.png"', html)) == 6
    # where fewer meet the rule, the others are said not to (caption and alt text)
    assert html.count(": does not meet the rule") == 2 * (6 - len(listed))

    record = json.loads((out / "occlusion_stats.json").read_text())
    first = np.flatnonzero(small)[:6]
    assert record["requested"] == 6 and record["max_box_share"] == 0.4
    assert [r[0] for r in record["rows"]] == list(first)
    assert record["searched"] == first[-1] + 1 and record["images"] == 6
    share = np.array([np.nan if r[5] is None else r[5] for r in record["rows"]])
    centre = np.array([r[6] for r in record["rows"]])
    ok = np.isfinite(share)
    assert record["images_with_a_drop"] == ok.sum()
    assert record["mean_share"] == pytest.approx(share[ok].mean())
    assert record["median_share"] == pytest.approx(np.median(share[ok]))
    assert record["mean_centre_share"] == pytest.approx(centre[ok].mean())
    assert f"mean {record['mean_share']:.3f}, median {record['median_share']:.3f}" in html
    assert "covers at most 0.4 of the net&#x27;s 32x32 view" in html
    assert record["report"].startswith("zfraw report: ")


def walk_first_per_class(labels, among):
    """The Fig. 5 rule written out independently: images where ``among`` holds, one per class in
    order, then the others for classes not yet taken."""
    picks, taken = [], set()
    for want in (True, False):
        for i, c in enumerate(labels):
            if bool(among[i]) == want and int(c) not in taken and len(picks) < 4:
                taken.add(int(c))
                picks.append(i)
    return sorted(picks)


def test_first_per_class_prefers_images_that_meet_the_condition():
    src = ImageSource(np.zeros((8, 4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.float32), 4,
                      np.array([0, 0, 1, 2, 1, 3, 2, 0]))
    among = np.array([False, True, False, False, True, False, False, False])
    assert list(first_per_class(src, 3)) == [0, 2, 3]
    # class 0 from image 1 and class 1 from image 4 (they meet it), then class 2's first
    assert list(first_per_class(src, 3, among=among)) == [1, 3, 4]
    assert list(first_per_class(src, 3, among=among)) == walk_first_per_class(src.labels,
                                                                              among)[:3]


def test_invariance_images_are_picked_by_the_stated_rule(trained_run, tmp_path):
    from zfraw.backend import to_host
    from zfraw.ops.loss import softmax

    path = build_report(parse_args([
        "--run", str(trained_run), "--limit", "30", "--batch-size", "32",
        "--invariance-images", "4", "--invariance-min-prob", "0.1", "--out", str(tmp_path / "r"),
        "--skip", "filters", "rules", "top9", "evolution", "occlusion", "correspondence"]))
    html = path.read_text()
    net, src = source_of(trained_run, 30)
    probs = softmax(to_host(net.eval().forward(src.inputs(np.arange(len(src))))).astype(
        np.float64))
    meets = (probs.argmax(axis=1) == src.labels) & (probs[np.arange(len(src)), src.labels] >= 0.1)
    expected = walk_first_per_class(src.labels, meets)
    m = re.search(r"The example images, by a rule: .*?classifies correctly with p\(true class\) "
                  r"&gt;= 0.1 .*?validation images ([\d, ]+)", html)
    assert m and [int(v) for v in m.group(1).rstrip(", ").split(", ")] == expected
    shortfall = 4 - int(meets[expected].sum())
    assert ("meet the first condition" in html) == (shortfall > 0)


def test_final_state_adds_the_last_epoch_that_no_epoch_file_keeps(trained_run, tmp_path):
    import shutil

    from zfraw.rundir import RunDir

    run = RunDir(trained_run)
    assert [e for e, _ in run.epoch_checkpoints()] == [1] and run.final_state() is None
    assert [e for e, _ in run.snapshots(final=True)] == [1]
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    (copy / "epoch-001.npz").unlink()
    moved = RunDir(copy)
    assert moved.final_state() == (1, moved.last_path)
    assert [e for e, _ in moved.snapshots()] == []
    assert [e for e, _ in moved.snapshots(final=True)] == [1]


@pytest.fixture(scope="module")
def parts_run(tmp_path_factory):
    """A one-epoch run on a folder dataset of 3 classes (5 validation images each), and a parts
    file naming eyes and a nose on 4, 3 and 2 images of the classes."""
    base = tmp_path_factory.mktemp("parts_run")
    out, _ = train_folder_run(base, per_class=5, w=40, h=40)
    face = {"left eye": [22, 10, 28, 16], "right eye": [10, 10, 16, 16],
            "nose": [15, 20, 24, 28]}
    parts = {f"val/{c}/{i}.png": face for c, n in (("ant", 4), ("bee", 3), ("cat", 2))
             for i in range(n)}
    (base / "parts.json").write_text(json.dumps(parts))
    return out, base / "parts.json"


def test_table1_pools_every_class_and_image_of_a_parts_file(parts_run, tmp_path):
    run, parts = parts_run
    out = tmp_path / "r"
    path = build_report(parse_args([
        "--run", str(run), "--parts", str(parts), "--random-draws", "2", "--batch-size", "32",
        "--limit", "15", "--out", str(out), "--skip", "filters", "rules", "top9", "evolution",
        "invariance", "occlusion"]))
    html = path.read_text()
    record = json.loads((out / "correspondence.json").read_text())
    assert record["layers"] == ["relu5", "relu7"]            # the paper's layers 5 and 7
    assert record["images"] == record["annotated_images"] == 9    # every annotated image
    assert sorted(c["class"] for c in record["classes"]) == ["ant", "bee", "cat"]
    assert [len(c["images"]) for c in record["classes"]] == [4, 3, 2]
    assert record["classes"][0]["images"] == [f"val/ant/{i}.png" for i in range(4)]
    pairs = [n * (n - 1) // 2 for n in (4, 3, 2)]
    for part in ("left eye", "right eye", "nose"):
        for ly in ("relu5", "relu7"):
            got = record["table"][part][ly]
            per = [c["parts"][part][ly] for c in record["classes"]]
            assert [p["pairs"] for p in per] == pairs and got["pairs"] == sum(pairs)
            # the pooled mean is the pair-weighted mean of the classes' means
            assert got["mean"] == pytest.approx(sum(p["mean"] * p["pairs"] for p in per)
                                                / sum(pairs))
            assert 0 <= got["mean"] <= 1 and got["std"] >= 0
            assert f"{got['mean']:.3f} ± {got['std']:.3f} ({got['pairs']})" in html
    rnd = record["table"]["random (inside the object)"]["relu5"]
    assert rnd["pairs"] == 3 * 2 * sum(pairs)                # 3 parts x 2 draws per class
    assert record["paper"]["right eye"]["layer 5"] == {"mean": 0.067, "std": 0.007}
    for part, ((m5, s5), (m7, s7)) in PAPER_TABLE1.items():
        assert f"{m5:.3f} ± {s5:.3f}" in html and f"{m7:.3f} ± {s7:.3f}" in html
    assert "Table 1: 3 classes together" in html and "Used: 9 of the 9 images" in html

    # the options still cap the images and classes
    path = build_report(parse_args([
        "--run", str(run), "--parts", str(parts), "--random-draws", "0", "--batch-size", "32",
        "--limit", "15", "--out", str(tmp_path / "capped"), "--correspondence-classes", "2",
        "--correspondence-images", "3", "--skip", "filters", "rules", "top9", "evolution",
        "invariance", "occlusion"]))
    record = json.loads((tmp_path / "capped" / "correspondence.json").read_text())
    assert [len(c["images"]) for c in record["classes"]] == [3, 3] and record["images"] == 6


def test_the_correspondence_defaults_are_the_papers_layers_and_every_annotated_image():
    from zfraw.nets import build
    from zfraw.report.subject import run_layers

    args = parse_args(["--run", "x"])
    assert args.correspondence_images is None and args.correspondence_classes is None
    net = build("zf-64", num_classes=10, width=0.0625)
    assert run_layers(net, args)["correspondence"] == ["relu5", "relu7"]
    assert args.occlusion_figures == 2 and args.occlusion_max_box == 0.5
    assert args.occlusion_min_prob == 0.5


@pytest.mark.parametrize("option, value", [("--occlusion-min-prob", "1.5"),
                                           ("--occlusion-max-box", "-0.1"),
                                           ("--occlusion-max-box", "nan"),
                                           ("--correspondence-images", "1")])
def test_bad_rule_options_are_refused_before_any_work(trained_run, tmp_path, option, value):
    with pytest.raises(ValueError, match=option):
        build_report(parse_args(["--run", str(trained_run), "--out", str(tmp_path / "r"),
                                 option, value]))
    assert not (tmp_path / "r" / "index.html").exists()



def test_an_imported_nets_statistic_reads_past_the_limit_with_its_predictions(tmp_path):
    """A model whose classes are not the data's: the statistic's images beyond --limit are
    labelled with the net's own top-1, as the report's first images are."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from zfraw.nets import build
    from zfraw.nets.onnx import save_onnx

    save_onnx(build("zf-32", 10, seed=0, init="he", width=0.125), tmp_path / "m.onnx")
    out = tmp_path / "r"
    path = build_report(parse_args([
        "--model", str(tmp_path / "m.onnx"), "--data", "synthetic", "--preprocess", "caffe",
        "--limit", "4", "--occlusion-figures", "0", "--occlusion-stats", "10",
        "--occlusion-max-box", "1", "--occlusion-stride", "8", "--batch-size", "32",
        "--out", str(out), "--skip", "filters", "rules", "top9", "invariance",
        "correspondence"]))
    record = json.loads((out / "occlusion_stats.json").read_text())
    assert [r[0] for r in record["rows"]] == list(range(10))     # past the 4 of --limit
    assert all(r[2] == r[4] for r in record["rows"])     # class = the net's top-1
    assert "p(the class the net predicts" in record["what"]
    assert "10 images, validation images 0-9 searched" in path.read_text()
