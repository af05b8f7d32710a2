"""What the paper's figures compute, as the report draws them: distinct images in the top-9
cells (Fig. 2), training images and fixed maps in the evolution (Fig. 4), the synthetic set's
part boxes and a --parts file (Fig. 8), the correspondence measure's per-part mean and
standard deviation and its random occlusions inside the object (Table 1)."""
import json
import re

import numpy as np
import pytest
from PIL import Image

from conftest import write_image
from zfraw.data import make_synthetic, synthetic_splits
from zfraw.data.synthetic import CLASSES, PARTS, make_parts, validation_parts
from zfraw.viz import correspondence as corr
from zfraw.viz.evolution import evolution_by_layer
from zfraw.viz.filters import filter_grid
from zfraw.viz.source import ImageSource
from zfraw.viz.top9 import collect_topk
from test_viz_top9 import make_net


def test_top9_cells_are_distinct_images_by_default():
    """distinct=True: each image's strongest position, then the k strongest images."""
    rng = np.random.default_rng(3)
    src = ImageSource(rng.integers(0, 256, (17, 18, 18, 3), dtype=np.uint8), None, 16,
                      np.zeros(17, int))
    net = make_net()
    got = collect_topk(net, src, ["relu2", "fc3"], k=5, batch_size=4, desc="", distinct=True)
    _, acts = net.eval().forward(src.inputs(np.arange(17)), capture=["relu2", "fc3"])
    for name, act in acts.items():
        a = act.reshape(17, act.shape[1], -1)
        w = act.shape[3] if act.ndim == 4 else 1
        for m in range(a.shape[1]):
            per_image = a[:, m].max(axis=1)
            order = np.argsort(-per_image, kind="stable")[:5]
            np.testing.assert_array_equal(got[name].image[m], order)     # 5 distinct images
            np.testing.assert_allclose(got[name].values[m], per_image[order], rtol=1e-6)
            pos = got[name].y[m] * w + got[name].x[m]
            np.testing.assert_array_equal(pos, a[order, m].argmax(axis=1))
    # The pairs selection may repeat an image; the default of the report never does.
    pairs = collect_topk(net, src, ["relu2"], k=9, batch_size=4, desc="")["relu2"]
    assert any(len(set(row)) < 9 for row in pairs.image)


def test_evolution_follows_the_same_maps_at_every_epoch():
    rng = np.random.default_rng(1)
    src = ImageSource(rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8), None, 16,
                      np.zeros(6, int))
    snaps = [(e, make_net(seed=e)) for e in (1, 2, 5)]
    evo = evolution_by_layer(snaps, src, {"relu1": [0, 2], "relu2": [1, 3]}, batch_size=4)
    assert [e for e, _ in evo] == [1, 2, 5]
    for _, tiles in evo:
        assert list(tiles["relu1"]) == [0, 2] and list(tiles["relu2"]) == [1, 3]


def test_report_evolution_reads_training_images(trained_run, tmp_path, monkeypatch):
    """The report's Fig. 4 searches the run's training images (not validation ones), with one
    set of maps for every epoch."""
    import zfraw.report as report
    from zfraw.report import sections

    seen = {}
    real = sections.evolution_by_layer

    def spy(snapshots, source, maps, **kw):
        seen["images"], seen["maps"] = np.asarray(source.images), maps
        out = real(snapshots, source, maps, **kw)
        seen["out"] = out
        return out

    monkeypatch.setattr(sections, "evolution_by_layer", spy)
    path = report.build_report(report.parse_args([
        "--run", str(trained_run), "--limit", "8", "--evolution-images", "10",
        "--evolution-maps", "2", "--out", str(tmp_path / "r"), "--skip", "filters", "rules",
        "top9", "invariance", "occlusion", "correspondence"]))
    (train, _, _), (val, _, _) = synthetic_splits(96, 19, seed=0, size=36)
    np.testing.assert_array_equal(seen["images"], train[:10])
    assert not any(np.array_equal(seen["images"][0], v) for v in val)
    for _, tiles in seen["out"]:
        assert {ly: list(t) for ly, t in tiles.items()} == seen["maps"]
    assert "10 training images" in path.read_text()


def test_synthetic_parts_sit_on_their_shapes():
    images, labels, boxes, masks = make_synthetic(300, seed=4, size=64, return_masks=True)
    parts = make_parts(300, seed=4, size=64)
    assert parts[:40] == make_parts(40, seed=4, size=64)                   # prefix-stable
    for m, lab, (bx0, by0, bx1, by1), named in zip(masks, labels, boxes, parts):
        assert list(named) == list(PARTS[CLASSES[lab]])
        for name, (x0, y0, x1, y1) in named.items():
            assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
            cy, cx = min((y0 + y1) // 2, 63), min((x0 + x1) // 2, 63)
            if name == "hole":                                   # the ring's hole: background
                assert not m[cy, cx]
            elif name not in ("notch", "inner corner", "centre"):  # on the shape itself
                assert m[y0:y1, x0:x1].mean() > 0.3
            # every part lies within the object's box (up to the part box's half side)
            assert bx0 - 8 <= cx <= bx1 + 8 and by0 - 8 <= cy <= by1 + 8
    assert validation_parts(5, seed=4, size=64) == make_parts(5, 4 + 1_000_003, 64)


def test_pair_distances_mean_and_std_hand_case():
    eps = np.array([[1, -1, 0, 2], [1, 1, 0, -3], [-1, -1, 0, 2]], np.float32)
    # sign rows a=[+,-,0,+], b=[+,+,0,-], c=[-,-,0,+]: H(a,b)=2/4, H(a,c)=1/4, H(b,c)=3/4
    d = corr.pair_distances(eps)
    np.testing.assert_allclose(d, [0.5, 0.25, 0.75])

    def features(x):                      # identity features: eps_i = x_i - occluded x_i
        return None, {"id": x.reshape(len(x), -1)}

    images = eps.reshape(3, 1, 1, 4)      # occluding the whole 1x4 image gives eps itself
    res = corr.correspondence(features, images, [(0, 0, 1, 4)] * 3, ["id"], n_random=0)["id"]
    assert res["part_mean"] == pytest.approx(0.5)
    assert res["part_std"] == pytest.approx(np.std([0.5, 0.25, 0.75]))
    assert res["part"] == pytest.approx(2 * 1.5) and res["pairs"] == 6
    assert np.isnan(res["random_mean"])


def test_random_occlusions_stay_inside_the_object_region():
    rng = np.random.default_rng(0)
    regions = [(5, 10, 20, 30), (0, 0, 8, 8), (30, 2, 40, 14)]
    like = [(0, 0, 4, 6), (10, 10, 13, 14), (1, 1, 6, 4)]
    for _ in range(200):
        for (y0, x0, y1, x1), (ry0, rx0, ry1, rx1), (ly0, lx0, ly1, lx1) in zip(
                corr.random_boxes(rng, 48, 48, like, regions), regions, like):
            assert (y1 - y0, x1 - x0) == (ly1 - ly0, lx1 - lx0)
            assert ry0 <= y0 and y1 <= ry1 and rx0 <= x0 and x1 <= rx1
    # a box larger than its region is centred on it
    (y0, x0, y1, x1), = corr.random_boxes(rng, 48, 48, [(0, 0, 10, 4)], [(20, 20, 26, 30)])
    assert (y0, y1) == (18, 28) and 20 <= x0 and x1 <= 30
    # and correspondence() draws its random squares inside the regions it is given
    images = np.random.default_rng(1).standard_normal((3, 1, 40, 40)).astype(np.float32)
    res = corr.correspondence(lambda x: (None, {"id": x.reshape(len(x), -1)}), images,
                              [(0, 0, 3, 3)] * 3, ["id"], n_random=3,
                              regions=regions)["id"]
    for (y0, x0, y1, x1), (ry0, rx0, ry1, rx1) in zip(res["random"], regions):
        assert ry0 <= y0 and y1 <= ry1 and rx0 <= x0 and x1 <= rx1
    assert len(res["random_distances"]) == 3 * 3


def test_parts_file_maps_boxes_like_the_dataset(tmp_path, monkeypatch):
    from zfraw.viz.datasets import load_part_source, read_parts_file

    monkeypatch.setenv("ZFRAW_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "ds"
    for split in ("train", "val"):
        for c in ("a", "b"):
            for k in range(2):
                write_image(str(root / split / c / f"{k}.png"), w=40, h=30, seed=k)
    parts = {"val/a/0.png": {"object": [0, 0, 40, 30], "left eye": [20, 10, 25, 15]},
             "val/a/1.png": {"left eye": [22, 12, 26, 16]}}
    (tmp_path / "parts.json").write_text(json.dumps(parts))
    src = load_part_source(tmp_path / "parts.json", f"folder:{root}", crop=24, size=24,
                           mean=None)
    assert len(src) == 2 and list(src.labels) == [0, 0]
    # 40x30 -> shorter side 24 (scale 0.8), centre crop 24: x offset (32 - 24) // 2 = 4
    assert src.parts[0]["left eye"] == (8, 12, 12, 16)        # (y0, x0, y1, x1) in the crop
    assert "object" not in src.parts[0] and tuple(src.boxes[0]) == (0, 0, 24, 24)
    for bad in ({"x.png": {"eye": [1, 2, 0, 4]}}, {"x.png": {}}, [1]):
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match="--parts"):
            read_parts_file(tmp_path / "bad.json")
    (tmp_path / "missing.json").write_text(json.dumps({"val/a/9.png": {"eye": [0, 0, 2, 2]}}))
    with pytest.raises(ValueError, match="no image"):
        load_part_source(tmp_path / "missing.json", f"folder:{root}", 24, 24, mean=None)


def test_conv1_filters_are_drawn_large():
    w = np.random.default_rng(0).standard_normal((24, 3, 3, 3))
    g = filter_grid(w)
    assert g.shape[1] >= 12 * 24 and g.shape[0] >= 2 * 24


def test_report_sections_say_what_they_show(trained_run, tmp_path):
    from zfraw.report import build_report, parse_args

    path = build_report(parse_args([
        "--run", str(trained_run), "--limit", "30", "--maps", "2", "--evolution-images", "8",
        "--occlusion-figures", "1", "--occlusion-stats", "0", "--random-draws", "2",
        "--occlusion-stride", "8", "--batch-size", "32", "--out", str(tmp_path / "r"),
        "--skip", "filters", "evolution", "invariance"]))
    html = path.read_text()
    assert "9 distinct images" in html and "drawn at random" in html
    assert "zfraw&#x27;s addition" in html or "zfraw's addition" in html
    assert re.search(r"\d\.\d{3} ± \d\.\d{3}", html)            # Table 1: mean ± std
    assert "random (inside the object)" in html
    assert re.search(r'src="correspondence_\d+\.png"', html)
