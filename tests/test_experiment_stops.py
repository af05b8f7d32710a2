"""How ``python -m zfraw.experiments`` stops: Ctrl-C ends every experiment (the row in training
saved, no further row started, the table written, exit 130); a full disk is one line naming the
file (exit 1) and leaves no temporary; a damaged frozen-feature cache is recomputed."""
import errno
import json

import numpy as np
import pytest
from conftest import write_image

from zfraw import checkpoint
from zfraw.experiments import __main__ as experiments_cli
from zfraw.experiments import tables
from zfraw.rundir import RunDir

# The from-scratch rows at toy scale: 3 classes x 4 images = 3 steps an epoch.
SCRATCH = ["--arch", "zf-32", "--width", "0.125", "--epochs", "1", "--batch-size", "4",
           "--init", "he", "--input-scale", "0.015625", "--impl", "numpy", "--no-progress"]


@pytest.fixture(scope="module")
def caltech_trees(tmp_path_factory):
    """A Caltech-101 and a Caltech-256 layout, 3 classes of 12 generated images each, with
    the folder that is not a class."""
    trees = {}
    for kind, folder, names in (
            ("caltech101", "101_ObjectCategories", ("ant", "bee", "cat", "BACKGROUND_Google")),
            ("caltech256", "256_ObjectCategories", ("001.ant", "002.bee", "003.cat",
                                                    "257.clutter"))):
        root = tmp_path_factory.mktemp(kind)
        for k, c in enumerate(names):
            for i in range(12):
                write_image(str(root / folder / c / f"image_{i:04d}.jpg"), 30, 24,
                            seed=100 * k + i)
        trees[kind] = root
    return trees


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZFRAW_CACHE", str(tmp_path / "cache"))


def temporaries(folder):
    return sorted(str(p) for p in folder.rglob("*") if ".tmp" in p.name)


def ctrl_c_in_training(monkeypatch, at_call: int = 1):
    """Make the ``at_call``-th training of the experiment see a Ctrl-C after its first step
    (as the loop sees a real one: a KeyboardInterrupt at a step boundary). Returns the list of
    the run folders trained, in order."""
    real, started = tables.train, []

    def train(cfg, **kw):
        started.append(cfg.out)
        if len(started) == at_call:
            def hook(epoch, step, net):
                if step == 1:
                    raise KeyboardInterrupt
            kw["step_hook"] = hook
        return real(cfg, **kw)

    monkeypatch.setattr(tables, "train", train)
    return started


def one_line(err, *words):
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert sum(line.startswith("error") for line in lines) <= 1, err
    for w in words:
        assert any(w in line for line in lines), (w, err)


@pytest.mark.parametrize("experiment", ["table4", "table5", "fig9"])
def test_ctrl_c_stops_a_caltech_experiment_and_the_same_command_continues(
        tmp_path, monkeypatch, capsys, trained_run, caltech_trees, own_cache, experiment):
    kind = "caltech256" if experiment == "table5" else "caltech101"
    out = tmp_path / "exp"
    argv = [experiment, "--data", f"{kind}:{caltech_trees[kind]}", "--source", str(trained_run),
            "--out", str(out), "--splits", "2", "--train-sizes", "4", "8"] + SCRATCH
    argv += ["--scratch"] if experiment == "fig9" else []
    real_train = tables.train
    started = ctrl_c_in_training(monkeypatch)
    rc = experiments_cli.main(argv)
    err = capsys.readouterr().err
    assert rc == 130
    one_line(err, "stopped by Ctrl-C; run the same command to continue")
    # Stopped: no training after the interrupted one (neither split 1 nor the size 8 rows).
    assert started == [str(out / "scratch-4-split-0")]
    ckpt, _ = RunDir(out / "scratch-4-split-0").load()
    assert (ckpt["meta"]["epoch"], ckpt["meta"]["step"]) == (0, 1)    # saved where it stopped
    result = json.loads((out / f"{experiment}.json").read_text())
    assert result["interrupted"] is True
    assert [(r["train_per_class"], r.get("status")) for r in result["rows"]] == \
        [(4, None), (4, "interrupted")]
    assert "| trained from scratch | `zf-32` | 4 | — | " in (out / f"{experiment}.md").read_text()
    if experiment == "fig9":
        assert (out / "fig9.png").stat().st_size > 0
    assert temporaries(out) == []

    monkeypatch.setattr(tables, "train", real_train)
    assert experiments_cli.main(argv) == 0
    result = json.loads((out / f"{experiment}.json").read_text())
    assert "interrupted" not in result
    assert [(r["train_per_class"], r.get("accuracy") is not None) for r in result["rows"]] == \
        [(4, True), (4, True), (8, True), (8, True)]
    resumed = RunDir(out / "scratch-4-split-0").read_metrics()
    assert [r["epoch"] for r in resumed] == [1]
    assert temporaries(out) == []


def test_ctrl_c_stops_table3_after_saving_the_row_in_training(tmp_path, monkeypatch, capsys):
    """run_rows (Tables 2 and 3) returns at the interrupted row, as the Caltech loop now does."""
    out = tmp_path / "exp"
    started = ctrl_c_in_training(monkeypatch, at_call=2)
    argv = ["table3", "--out", str(out), "--data", "synthetic:64", "--arch", "zf-32", "--width",
            "0.125", "--epochs", "1", "--batch-size", "32", "--init", "he", "--input-scale",
            "0.015625", "--impl", "numpy", "--no-progress"]
    assert experiments_cli.main(argv) == 130
    one_line(capsys.readouterr().err, "stopped by Ctrl-C")
    assert started == [str(out / "zf-32" / "seed-0"), str(out / "zf-32+no-conv34" / "seed-0")]
    assert RunDir(out / "zf-32+no-conv34" / "seed-0").load()[0]["meta"]["step"] == 1
    result = json.loads((out / "table3.json").read_text())        # rewritten after the row
    assert [r["status"] for r in result["rows"][:3]] == ["done", "not trained", "not trained"]
    assert result["interrupted"] is True
    assert temporaries(out) == []


def test_a_full_disk_in_a_caltech_training_is_one_line_and_loses_nothing(
        tmp_path, monkeypatch, capsys, trained_run, caltech_trees, own_cache):
    out = tmp_path / "exp"
    argv = ["table4", "--data", f"caltech101:{caltech_trees['caltech101']}", "--source",
            str(trained_run), "--out", str(out), "--splits", "2", "--train-sizes", "4"] + SCRATCH
    real_savez = np.savez

    def full_disk(f, *args, **kw):         # the second split's checkpoint meets a full disk
        if "scratch-4-split-1" in getattr(f, "name", ""):
            f.write(b"x" * 1000)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_savez(f, *args, **kw)

    monkeypatch.setattr(checkpoint.np, "savez", full_disk)
    rc = experiments_cli.main(argv)
    err = capsys.readouterr().err
    assert rc == 1
    last = out / "scratch-4-split-1" / "last.npz"
    one_line(err, f"error: cannot write {last} (No space left on device)",
             "no checkpoint had been written there yet")
    assert not last.exists() and temporaries(out) == []
    assert RunDir(out / "scratch-4-split-0").load()[0]["meta"]["epoch"] == 1    # kept

    monkeypatch.setattr(checkpoint.np, "savez", real_savez)
    assert experiments_cli.main(argv) == 0
    assert RunDir(out / "scratch-4-split-1").load()[0]["meta"]["epoch"] == 1


def test_a_damaged_feature_cache_is_recomputed_and_said_in_one_line(
        tmp_path, capsys, trained_run, caltech_trees, own_cache):
    out = tmp_path / "t4"
    argv = ["table4", "--data", f"caltech101:{caltech_trees['caltech101']}", "--source",
            str(trained_run), "--out", str(out), "--splits", "2", "--train-sizes", "4",
            "--no-scratch", "--impl", "numpy"]
    assert experiments_cli.main(argv) == 0
    [cached] = (out / "features").iterdir()
    with np.load(cached) as z:
        good = {k: z[k] for k in z.files}
    rows = json.loads((out / "table4.json").read_text())["rows"]
    data = cached.read_bytes()
    capsys.readouterr()
    for damaged in (data[: len(data) // 2], b"", data[:100] + b"\0" * (len(data) - 100)):
        cached.write_bytes(damaged)
        assert experiments_cli.main(argv) == 0
        captured = capsys.readouterr()
        said = [line for line in captured.out.splitlines() if str(cached) in line]
        assert len(said) == 1 and "is damaged" in said[0] and "computing the features again" \
            in said[0], captured.out
        assert "Traceback" not in captured.err
        with np.load(cached) as again:
            assert sorted(again.files) == sorted(good)
            for k in good:
                np.testing.assert_array_equal(again[k], good[k])
        assert json.loads((out / "table4.json").read_text())["rows"] == rows
        assert temporaries(out) == []


def test_an_experiment_out_under_a_file_is_one_line_and_exit_2(tmp_path, capsys, trained_run,
                                                               caltech_trees, own_cache):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    rc = experiments_cli.main(["table4", "--data", f"caltech101:{caltech_trees['caltech101']}",
                               "--source", str(trained_run), "--out", str(a_file / "t4"),
                               "--no-scratch"])
    assert rc == 2
    one_line(capsys.readouterr().err, f"error: --out {a_file / 't4'} is under {a_file}, "
             "which is a file")
