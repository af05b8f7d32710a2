"""The run folder's files under a full disk and after one: a failed write names the file and
what was kept (exit 1, no temporary), a failed append leaves no torn line, a torn last line of
metrics.jsonl (a process killed mid-append) is dropped by the next resume, with a copy kept,
and ignored by the report; and train.py's one-line refusals (--resize beyond a bound)."""
import errno
import json
import os
import shutil

import numpy as np
import pytest

import train as train_cli
from definitions import one_line_error
from zfraw import checkpoint, report
from zfraw.rundir import RunDir

TORN = "metrics.jsonl.torn"   # the copy of the file as it was

TINY = ["--arch", "zf-32", "--width", "0.125", "--data", "synthetic:64", "--batch-size", "32",
        "--init", "he", "--input-scale", "0.015625", "--impl", "numpy", "--no-progress"]
QUICK = ["--limit", "12", "--maps", "2", "--batch-size", "32", "--skip", "filters", "rules",
         "top9", "evolution", "invariance", "occlusion", "correspondence"]


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name)


def errors(err):
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def full_disk_at_save(monkeypatch):
    """np.savez meets a full disk in the checkpoint writer after 1000 bytes."""
    def full_disk(f, *args, **kw):
        f.write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(checkpoint.np, "savez", full_disk)


def test_a_full_disk_at_the_first_checkpoint_names_it(tmp_path, capsys, full_disk_at_save):
    out = tmp_path / "run"
    rc = train_cli.main(TINY + ["--epochs", "1", "--out", str(out)])
    line = errors(capsys.readouterr().err)
    assert rc == 1
    assert line == (f"error: cannot write {out / 'last.npz'} (No space left on device); no "
                    "checkpoint had been written there yet and no temporary file is left")
    assert leftovers(out) == []


def test_a_full_disk_at_a_later_checkpoint_says_the_previous_one_is_kept(tmp_path, capsys,
                                                                          monkeypatch):
    out = tmp_path / "run"
    assert train_cli.main(TINY + ["--epochs", "1", "--out", str(out)]) == 0
    before = (out / "last.npz").read_bytes()
    capsys.readouterr()

    def full_disk(f, *args, **kw):
        f.write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(checkpoint.np, "savez", full_disk)
    rc = train_cli.main(["--resume", "--epochs", "2", "--out", str(out), "--no-progress"])
    line = errors(capsys.readouterr().err)
    assert rc == 1 and f"cannot write {out / 'last.npz'} (No space left on device)" in line
    assert "the previous checkpoint there is unchanged" in line
    assert (out / "last.npz").read_bytes() == before and leftovers(out) == []
    assert [r["epoch"] for r in RunDir(out).read_metrics()] == [1]


def test_a_failed_metrics_append_is_undone_and_named(tmp_path, monkeypatch):
    run = RunDir(tmp_path)
    run.append_metrics({"epoch": 1, "val_top1": 0.5})
    before = run.metrics_path.read_bytes()
    real_write = os.write

    def half_then_full(fd, data):                 # a disk that fills in the middle of the line
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(OSError, match="cannot write .*metrics.jsonl .No space left on device.; "
                       "metrics.jsonl is as it was, without epoch 2's record; the epoch's "
                       "checkpoint .last.npz. was saved before it, so --resume continues from it"):
        run.append_metrics({"epoch": 2, "val_top1": 0.6})
    monkeypatch.undo()
    assert run.metrics_path.read_bytes() == before        # no torn line
    assert [r["epoch"] for r in run.read_metrics()] == [1]


def torn_copy(trained_run, tmp_path):
    """A copy of a finished one-epoch run whose metrics.jsonl lost the end of its last line
    (as a full disk or a kill during the append leaves it)."""
    run = shutil.copytree(trained_run, tmp_path / "torn")
    text = (run / "metrics.jsonl").read_text()
    (run / "metrics.jsonl").write_text(text[: len(text) // 2])
    return run


def test_a_resume_drops_a_torn_last_metrics_line_and_keeps_a_copy(trained_run, tmp_path,
                                                                   capsys):
    run = torn_copy(trained_run, tmp_path)
    torn = (run / "metrics.jsonl").read_bytes()
    rc = train_cli.main(["--resume", "--epochs", "2", "--out", str(run), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 0, err
    said = [line for line in err.splitlines() if "torn" in line]
    assert said == [f"{run / 'metrics.jsonl'}: dropped its torn last line "
                    f"({len(torn.decode().splitlines()[-1])} characters that are not a whole "
                    "record: a write cut short, e.g. by a full disk); the checkpoint is the "
                    f"truth and the run goes on from it; the file as it was is kept in "
                    f"{run / TORN}"]
    assert (run / TORN).read_bytes() == torn
    assert [r["epoch"] for r in RunDir(run).read_metrics()] == [2]    # epoch 1's record: torn
    assert leftovers(run) == []


def test_the_report_reads_a_run_with_a_torn_metrics_line(trained_run, tmp_path, capsys):
    run = torn_copy(trained_run, tmp_path)
    torn = (run / "metrics.jsonl").read_bytes()
    rc = report.main(["--run", str(run), "--out", str(tmp_path / "r")] + QUICK)
    err = capsys.readouterr().err
    assert rc == 0, err
    said = [line for line in err.splitlines() if "torn" in line]
    assert len(said) == 1 and said[0].startswith(f"{run / 'metrics.jsonl'}: ignoring its torn "
                                                 "last line")
    assert (run / "metrics.jsonl").read_bytes() == torn        # a reader changes nothing
    assert not (run / TORN).exists()


def test_a_bad_line_before_the_last_is_still_refused(trained_run, tmp_path, capsys):
    run = shutil.copytree(trained_run, tmp_path / "bad")
    text = (run / "metrics.jsonl").read_text()
    (run / "metrics.jsonl").write_text("{not json\n" + text)
    rc = train_cli.main(["--resume", "--epochs", "2", "--out", str(run), "--no-progress"])
    one_line_error(capsys, rc, "metrics.jsonl, line 1: not JSON")


def test_an_absurd_resize_is_one_line_and_exit_2(tmp_path, capsys):
    rc = train_cli.main(TINY + ["--resize", "100000", "--out", str(tmp_path / "run")])
    one_line_error(capsys, rc, "--resize 100000 is more than 4 times the net's 32px input "
                   "(at most 128)", "30 GB")
    assert not (tmp_path / "run").exists()


def test_a_resize_within_the_bound_trains(tmp_path, capsys):
    assert train_cli.main(TINY + ["--resize", "128", "--epochs", "1", "--out",
                                  str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["resize"] == 128
    assert np.load(tmp_path / "run" / "mean.npy").shape == (128, 128, 3)
