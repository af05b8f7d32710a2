"""Every user error of train.py and of ``python -m zfraw.report`` ends in one line that names
the problem, exit status 2 and no traceback."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import train as train_cli
from definitions import one_line_error
from zfraw import backend, report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--arch", "zf-32", "--width", "0.125", "--data", "synthetic:64", "--batch-size", "32",
        "--init", "he", "--input-scale", "0.015625", "--impl", "numpy", "--no-progress"]


@pytest.fixture
def run(trained_run):
    return trained_run


def damaged_copy(run, tmp_path):
    bad = shutil.copytree(run, tmp_path / "bad")
    last = bad / "last.npz"
    data = last.read_bytes()
    os.remove(last)                    # it is a hard link to epoch-001.npz; keep that intact
    last.write_bytes(data[: len(data) // 2])
    return bad


def train_cases(run, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases = {
        "zero epochs": (TINY + ["--epochs", "0", "--out", str(tmp_path / "a")], ["--epochs", "0"]),
        "negative epochs": (TINY + ["--epochs", "-3", "--out", str(tmp_path / "a")], ["-3"]),
        "unknown data": (["--data", "nosuch:1", "--out", str(tmp_path / "b")], ["nosuch"]),
        "synthetic:0": (["--data", "synthetic:0", "--out", str(tmp_path / "b")], ["synthetic:N"]),
        "bad dropout": (TINY + ["--dropout", "1", "--out", str(tmp_path / "c")], ["--dropout"]),
        "bad lr": (TINY + ["--lr", "-1", "--out", str(tmp_path / "c")], ["--lr"]),
        "existing run": (TINY + ["--epochs", "2", "--out", str(run)], ["already holds a run",
                                                                      "--resume", "--overwrite"]),
        "resume other arch": (["--resume", "--arch", "zf-64", "--width", "0.5", "--out", str(run)],
                              ["--arch zf-64", "--width 0.5", "cannot resume"]),
        "resume other data": (["--resume", "--data", "synthetic:10", "--epochs", "3",
                               "--out", str(run)], ["--data synthetic:10"]),
        "resume fewer epochs": (["--resume", "--epochs", "0", "--out", str(run)], ["--epochs"]),
        "resume nothing": (["--resume", "--out", str(tmp_path / "none")], ["no such run folder"]),
        "resume damaged": (["--resume", "--epochs", "2", "--out", str(damaged_copy(run, tmp_path))],
                           ["is damaged", "epoch-001.npz", "--resume-from"]),
        "out is a file": (TINY + ["--out", str(a_file)], ["is a file"]),
        "out under a file": (TINY + ["--out", str(a_file / "run")], ["cannot write the run folder"]),
    }
    if not backend.cuda_available():
        cases["no gpu"] = (TINY + ["--device", "cuda", "--out", str(tmp_path / "d")], ["cuda"])
    return cases


def test_train_user_errors_are_one_line_and_exit_2(run, tmp_path, capsys):
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    for name, (argv, words) in train_cases(run, tmp_path).items():
        rc = train_cli.main(argv)
        one_line_error(capsys, rc, *words)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def folder_dataset(root, classes):
    """A folder: dataset with a few small images in each class."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in classes:
            os.makedirs(root / split / c)
            for i in range(2):
                Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
                    root / split / c / f"{i}.png")
    return root


def report_cases(run, tmp_path):
    no_ckpt = tmp_path / "no_ckpt"
    no_ckpt.mkdir()
    shutil.copy(run / "config.json", no_ckpt / "config.json")
    other = folder_dataset(tmp_path / "other", ["cat", "dog", "eel"])
    r = ["--run", str(run)]
    return {
        "no such run": (["--run", str(tmp_path / "nonexistent")], ["no such run folder"]),
        "not a run": (["--run", str(tmp_path)], ["not a training run folder"]),
        "no checkpoint": (["--run", str(no_ckpt)], ["no checkpoint"]),
        "damaged checkpoint": (["--run", str(damaged_copy(run, tmp_path))],
                               ["is damaged", "epoch-001.npz"]),
        "missing --checkpoint": (r + ["--checkpoint", str(tmp_path / "x.npz")], ["no checkpoint at"]),
        "limit 0": (r + ["--limit", "0"], ["--limit must be at least 1"]),
        "unknown top-9 layer": (r + ["--top9-layers", "conv9"], ["--top9-layers", "conv9"]),
        "unknown rules layer": (r + ["--rules-layer", "relu99"], ["--rules-layer", "relu99"]),
        "unknown occlusion layer": (r + ["--occlusion-layer", "fc99"], ["fc99"]),
        "other classes": (r + ["--data", f"folder:{other}"], ["3 classes", "trained on 10"]),
        "stride too big": (r + ["--occlusion-stride", "999"], ["--occlusion-stride"]),
    }


def test_report_user_errors_are_one_line_and_exit_2(run, tmp_path, capsys):
    for name, (argv, words) in report_cases(run, tmp_path).items():
        rc = report.main(argv + ["--out", str(tmp_path / "report")])
        one_line_error(capsys, rc, *words)
    assert not (run / "report").exists()


@pytest.mark.parametrize("command", [
    [sys.executable, "train.py", "--epochs", "0"],
    [sys.executable, "-m", "zfraw.report", "--run", "/nonexistent"],
])
def test_the_entry_points_print_no_traceback(command):
    p = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("error: ")
