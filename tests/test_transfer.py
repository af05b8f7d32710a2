"""Transfer to Caltech (Tables 4, 5, 7, Fig. 9): frozen features, classifiers, fine-tuning."""
import json
import os

import numpy as np
import pytest
from conftest import write_image

from zfraw import training
from zfraw.experiments import __main__ as experiments_cli
from zfraw.experiments import caltech
from zfraw.experiments.classifiers import softmax_accuracy, train_softmax
from zfraw.experiments.features import grid_max_pool
from zfraw.nets import build
from zfraw.rundir import RunDir
from zfraw.training import TrainConfig, train


@pytest.fixture
def source_run(trained_run):
    return trained_run


@pytest.fixture(scope="module")
def caltech_tree(tmp_path_factory):
    """A Caltech-101 layout with 3 classes of 12 generated images and the background folder."""
    root = tmp_path_factory.mktemp("cal")
    cats = root / "101_ObjectCategories"
    for k, c in enumerate(("ant", "bee", "cat", "BACKGROUND_Google")):
        for i in range(12):
            write_image(str(cats / c / f"image_{i:04d}.jpg"), 30, 24, seed=100 * k + i)
    return root


def test_grid_max_pool_is_the_max_over_each_cell():
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 5)).astype(np.float32)
    got = grid_max_pool(x, 2).reshape(2, 3, 4)
    cells = [(slice(0, 3), slice(0, 2)), (slice(0, 3), slice(2, 5)),
             (slice(3, 7), slice(0, 2)), (slice(3, 7), slice(2, 5))]
    want = np.stack([x[:, :, r, c].max(axis=(2, 3)) for r, c in cells], axis=2)
    np.testing.assert_array_equal(got, want)


def test_the_softmax_separates_separable_features_and_is_reproducible():
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((4, 16)) * 5
    y = np.repeat(np.arange(4), 20)
    x = (centres[y] + rng.standard_normal((80, 16))).astype(np.float32)
    assert softmax_accuracy(x[::2], y[::2], x[1::2], y[1::2], 4, epochs=50) == 1.0
    a = train_softmax(x, y, 4, epochs=3, seed=5).params["W"]
    b = train_softmax(x, y, 4, epochs=3, seed=5).params["W"]
    np.testing.assert_array_equal(a, b)


def test_table4_pretrained_rows_leave_the_net_untouched_and_cache_features(
        tmp_path, source_run, caltech_tree, monkeypatch):
    before = (source_run / "last.npz").read_bytes()
    calls = []
    real = caltech.layer_features
    monkeypatch.setattr(caltech, "layer_features", lambda *a, **k: calls.append(1) or real(*a, **k))
    argv = ["table4", "--data", f"caltech101:{caltech_tree}", "--source", str(source_run),
            "--out", str(tmp_path / "t4"), "--splits", "3", "--train-sizes", "4", "8",
            "--no-scratch", "--impl", "numpy"]
    assert experiments_cli.main(argv) == 0
    result = json.loads((tmp_path / "t4" / "table4.json").read_text())
    assert [r["train_per_class"] for r in result["rows"]] == [4, 8]
    for r in result["rows"]:
        assert r["splits"] == 3 and 0 <= r["accuracy"] <= 100 and r["std"] >= 0
        assert "relu7" in r["row"]
    assert (source_run / "last.npz").read_bytes() == before       # frozen: never trained
    assert experiments_cli.main(argv) == 0
    assert len(calls) == 1                                         # second run: from the cache
    assert json.loads((tmp_path / "t4" / "table4.json").read_text())["rows"] == result["rows"]


def test_table4_scratch_rows_are_run_folders(tmp_path, source_run, caltech_tree):
    argv = ["table4", "--data", f"caltech101:{caltech_tree}", "--source", str(source_run),
            "--out", str(tmp_path / "t4"), "--splits", "2", "--train-sizes", "4",
            "--arch", "zf-32", "--width", "0.125", "--epochs", "1", "--batch-size", "4",
            "--init", "he", "--input-scale", "0.015625", "--impl", "numpy", "--no-progress"]
    assert experiments_cli.main(argv) == 0
    rows = json.loads((tmp_path / "t4" / "table4.json").read_text())["rows"]
    scratch = [r for r in rows if r["row"] == "trained from scratch"]
    assert len(scratch) == 1
    accs = [RunDir(tmp_path / "t4" / f"scratch-4-split-{s}").read_metrics()[-1]
            ["val_class_mean_top1"] for s in range(2)]
    assert scratch[0]["accuracy"] == pytest.approx(100 * np.mean(accs))
    cfgs = [RunDir(tmp_path / "t4" / f"scratch-4-split-{s}").read_config() for s in range(2)]
    assert [c["seed"] for c in cfgs] == [0, 1] and cfgs[0]["data"].startswith("caltech101-4:")


def test_table7_and_fig9_run_on_a_generated_tree(tmp_path, source_run, caltech_tree):
    pytest.importorskip("sklearn")
    base = ["--data", f"caltech101:{caltech_tree}", "--source", str(source_run), "--splits", "2",
            "--impl", "numpy"]
    assert experiments_cli.main(["table7", "--out", str(tmp_path / "t7"),
                                 "--train-sizes", "6"] + base) == 0
    rows = json.loads((tmp_path / "t7" / "table7.json").read_text())["rows"]
    assert [r["row"] for r in rows][:2] == ["svm on relu1", "softmax on relu1"]
    assert len(rows) == 14 and all(0 <= r["accuracy"] <= 100 for r in rows)
    assert rows[0]["features"] == 12 * 4                             # 12 relu1 maps x 2x2 cells
    assert experiments_cli.main(["fig9", "--out", str(tmp_path / "f9"),
                                 "--train-sizes", "2", "4", "6"] + base) == 0
    assert (tmp_path / "f9" / "fig9.png").stat().st_size > 0
    md = (tmp_path / "f9" / "fig9.md").read_text()
    assert not (tmp_path / "f9" / "table4.md").exists()
    assert md.count("| pretrained, new softmax on relu7") == 3


def test_init_from_copies_every_layer_but_the_classifier(tmp_path, source_run):
    src = RunDir(source_run).load()[0]["net"]
    net = build("zf-32", 3, width=0.125, seed=7, init="he")
    fresh = net.layer("fc8").params["W"].copy()
    line = training._init_from(net, str(source_run))
    assert "fresh: fc8.W, fc8.b" in line
    for name, p, _ in net.params_and_grads():
        if name.startswith("fc8."):
            continue
        np.testing.assert_array_equal(p, src[name], err_msg=name)
    np.testing.assert_array_equal(net.layer("fc8").params["W"], fresh)
    with pytest.raises(training.RunError, match="no parameter of this zf-32 matches"):
        training._init_from(build("zf-32", 3, width=0.25), str(source_run))


def test_fine_tuning_trains_from_the_source_weights(tmp_path, source_run, caltech_tree):
    out = tmp_path / "ft"
    logs = []
    train(TrainConfig(arch="zf-32", width=0.125, data=f"caltech101-4:{caltech_tree}", epochs=1,
                      batch_size=4, init="he", input_scale=1 / 64, impl="numpy", out=str(out),
                      progress=False, prefetch=False, init_from=str(source_run)), log=logs.append)
    assert any(line.startswith("initialised 14 parameters from") for line in logs)
    assert RunDir(out).read_config()["init_from"] == str(source_run)
    with pytest.raises(ValueError, match="--init-from .*no such checkpoint"):
        train(TrainConfig(out=str(tmp_path / "x"), init_from=str(tmp_path / "nope")))
    assert os.path.isdir(out)
