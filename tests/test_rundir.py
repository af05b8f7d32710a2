"""The run folder never loses work: refusals instead of overwrites, one writer at a time,
resume checks, damaged checkpoints named, no temporary files left, honest NaN messages."""
import hashlib
import os
import signal
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest

from zfraw import training
from zfraw.checkpoint import load_checkpoint
from zfraw.data import BatchLoader
from zfraw.rundir import RunDir, RunError
from zfraw.training import HardStop, TrainConfig, TrainingDiverged, train

QUIET = dict(log=lambda *a: None)


def tiny(out, **kw):
    """zf-32 at 1/8 width on 96 synthetic images, batch 32: 3 steps per epoch."""
    base = dict(arch="zf-32", width=0.125, data="synthetic:96", epochs=1, batch_size=32,
                init="he", input_scale=1 / 64, seed=5, out=str(out), progress=False,
                impl="numpy", prefetch=False)
    base.update(kw)
    return TrainConfig(**base)


def hashes(folder):
    """{file name: sha1} of every file in the folder (the report folder included)."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = hashlib.sha1(f.read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def done_run(tmp_path_factory):
    """A finished 2-epoch run; tests copy it before changing anything."""
    out = tmp_path_factory.mktemp("done") / "run"
    train(tiny(out, epochs=2), **QUIET)
    return out


def copy_run(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return dst


def test_a_new_run_into_an_existing_run_is_refused_and_changes_nothing(tmp_path, done_run):
    run = copy_run(done_run, tmp_path / "run")
    before = hashes(run)
    with pytest.raises(RunError, match="already holds a run .2 epoch.*--resume.*--overwrite"):
        train(tiny(run, epochs=3), **QUIET)
    assert hashes(run) == before


def test_overwrite_removes_the_old_run_first(tmp_path, done_run):
    run = copy_run(done_run, tmp_path / "run")
    (run / "report").mkdir()
    (run / "report" / "index.html").write_text("old report")
    train(tiny(run, epochs=1, seed=9), overwrite=True, **QUIET)
    # the old run's epoch-002.npz and report are gone: nothing of two runs mixed
    assert sorted(p.name for p in run.iterdir() if p.suffix == ".npz") == \
        ["epoch-001.npz", "last.npz"]
    assert not (run / "report").exists()
    assert load_checkpoint(str(run / "last.npz"))["meta"]["config"]["seed"] == 9
    assert len(RunDir(run).read_metrics()) == 1


def test_a_folder_of_other_files_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(RunError, match="not empty and is not a run folder .*notes.txt"):
            train(tiny(tmp_path), overwrite=overwrite, **QUIET)
    assert sorted(os.listdir(tmp_path)) == [".lock", "notes.txt"]


def test_a_run_that_never_reached_a_checkpoint_is_started_over(tmp_path):
    """A first epoch that was killed leaves a config and no checkpoint: nothing to lose, so a
    new training starts there; --resume says there is nothing to resume."""
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="power cut"):
        train(tiny(out), step_hook=_raise_at(0, 2, RuntimeError("power cut")), **QUIET)
    assert (out / "config.json").exists() and not RunDir(out).has_checkpoint()
    with pytest.raises(RunError, match="no checkpoint to resume .*without --resume"):
        train(tiny(out), resume=True, **QUIET)
    assert train(tiny(out), **QUIET)["status"] == "done"


def _raise_at(epoch_stop, step_stop, exc):
    def hook(epoch, step, net):
        if (epoch, step) == (epoch_stop, step_stop):
            raise exc
    return hook


def test_two_trainings_cannot_write_one_folder(tmp_path):
    """While one training runs (held at step 1 by its hook), a second one into the same folder,
    new or resumed, is refused and leaves every byte as it was."""
    out = tmp_path / "run"
    train(tiny(out), **QUIET)                       # a finished first epoch to resume from
    started, release = threading.Event(), threading.Event()
    errors = []

    def hold(epoch, step, net):
        if step == 1:
            started.set()
            release.wait(60)

    def first():
        try:
            train(tiny(out, epochs=2), resume=True, step_hook=hold, **QUIET)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t = threading.Thread(target=first)
    t.start()
    try:
        assert started.wait(60)
        before = hashes(out)
        with pytest.raises(RunError, match="in use: a training .pid %d. is writing" % os.getpid()):
            train(tiny(out, epochs=3), resume=True, **QUIET)
        with pytest.raises(RunError, match="in use"):
            train(tiny(out), overwrite=True, **QUIET)
        assert hashes(out) == before
    finally:
        release.set()
        t.join(60)
    assert not errors
    assert [r["epoch"] for r in RunDir(out).read_metrics()] == [1, 2]


def test_a_killed_writer_leaves_no_stale_lock(tmp_path):
    code = ("import sys, time; from zfraw.rundir import RunDir; r = RunDir(sys.argv[1]).lock(); "
            "print('locked', flush=True); time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout.readline().strip() == "locked"
        with pytest.raises(RunError, match=f"in use: a training .pid {p.pid}."):
            RunDir(tmp_path).lock()
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(30)
    with RunDir(tmp_path).lock():                  # the OS released it with the process
        pass


def test_resume_refuses_settings_that_define_the_run(tmp_path, done_run):
    run = copy_run(done_run, tmp_path / "run")
    before = hashes(run)
    for asked, named in (({"arch": "zf-64", "width": 0.5}, "--arch zf-64 .*--width 0.5"),
                         ({"data": "synthetic:10"}, "--data synthetic:10 .the run has synthetic:96"),
                         ({"batch_size": 16}, "--batch-size 16")):
        with pytest.raises(RunError, match=f"cannot resume with {named}"):
            train(tiny(run, epochs=3), resume=True, asked=dict(asked, epochs=3), **QUIET)
    with pytest.raises(RunError, match="at epoch 2; --epochs 1 would undo work"):
        train(tiny(run), resume=True, asked={"epochs": 1}, **QUIET)
    assert hashes(run) == before
    logs = []
    r = train(tiny(run, epochs=2), resume=True, asked={"epochs": 2}, log=logs.append)
    assert r["status"] == "done" and any("nothing to do" in line for line in logs)
    assert hashes(run) == before


def test_resume_applies_and_says_the_settings_that_may_change(tmp_path, done_run):
    run = copy_run(done_run, tmp_path / "run")
    logs = []
    train(tiny(run), resume=True, asked={"epochs": 3, "lr": 0.002, "ten_crop": True},
          log=logs.append)
    assert "lr: 0.01 -> 0.002 (changed on resume)" in logs
    assert "epochs: 2 -> 3 (changed on resume)" in logs
    assert "ten_crop: False -> True (changed on resume)" in logs
    records = RunDir(run).read_metrics()
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[2]["lr"] == pytest.approx(0.002) and records[2]["ten_crop"] is True
    assert RunDir(run).read_config()["lr"] == 0.002   # the run now records the new rate


@pytest.mark.parametrize("epochs", [0, -3])
def test_a_run_needs_at_least_one_epoch(tmp_path, epochs):
    with pytest.raises(ValueError, match=f"--epochs must be a positive number of epochs, got {epochs}"):
        train(tiny(tmp_path / "run", epochs=epochs), **QUIET)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("damage", ["truncated", "empty", "flipped"])
def test_a_damaged_checkpoint_is_named_and_an_intact_one_offered(tmp_path, done_run, damage):
    run = copy_run(done_run, tmp_path / "run")
    last = run / "last.npz"
    os.remove(last)            # a hard link to epoch-002.npz: damage a copy, not both
    data = (run / "epoch-002.npz").read_bytes()
    if damage == "truncated":
        data = data[:len(data) // 2]
    elif damage == "empty":
        data = b""
    else:                      # one byte inside the weights: a CRC error
        data = bytearray(data)
        data[len(data) // 3] ^= 0xFF
        data = bytes(data)
    last.write_bytes(data)
    offer = f"newest intact checkpoint is {run / 'epoch-002.npz'} .use it with --resume-from"
    with pytest.raises(RunError, match=f"{last} is damaged .*; the {offer}"):
        train(tiny(run, epochs=3), resume=True, **QUIET)
    r = train(tiny(run, epochs=3), resume_from=run / "epoch-002.npz", **QUIET)
    assert r["status"] == "done" and r["epoch"] == 3
    assert load_checkpoint(str(last))["meta"]["epoch"] == 3


def test_a_failed_checkpoint_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    def full_disk(f, **arrays):
        f.write(b"x" * 1000)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(OSError, match="No space left"):
        train(tiny(tmp_path / "run"), **QUIET)
    assert [n for n in os.listdir(tmp_path / "run") if ".tmp" in n] == []


def test_a_nan_in_the_first_epoch_says_there_is_no_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(training, "SYNC_EVERY", 1)

    def poison(epoch, step, net):
        if step == 1:
            net.layer("fc8").params["W"][...] = np.inf

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(TrainingDiverged) as e:
            train(tiny(tmp_path / "run", epochs=2), step_hook=poison, **QUIET)
    message = str(e.value)
    assert "loss became nan" in message and "of epoch 1" in message
    assert "No checkpoint had been written yet" in message and "last.npz" not in message
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []


def test_a_second_ctrl_c_while_the_batches_close_stops_without_saving(tmp_path, monkeypatch):
    """The first Ctrl-C (a real SIGINT) asks to stop at the next step boundary; the second one
    arrives while the prefetching batch generator is being closed. It must stop the run at
    once, without the interrupt's checkpoint, instead of being swallowed there."""
    out = tmp_path / "run"
    train(tiny(out), **QUIET)
    epoch_end = hashes(out)["last.npz"]
    real = BatchLoader.train_batches

    def batches_that_get_a_ctrl_c_on_close(self, epoch, start_step=0):
        inner = real(self, epoch, start_step)

        def gen():
            try:
                yield from inner
            finally:
                inner.close()
                os.kill(os.getpid(), signal.SIGINT)   # the second Ctrl-C
        return gen()

    monkeypatch.setattr(BatchLoader, "train_batches", batches_that_get_a_ctrl_c_on_close)

    def first_ctrl_c(epoch, step, net):
        if step == 1:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(HardStop):
        train(tiny(out, epochs=2, prefetch=True), resume=True, step_hook=first_ctrl_c, **QUIET)
    assert hashes(out)["last.npz"] == epoch_end
    assert load_checkpoint(str(out / "last.npz"))["meta"]["step"] == 0
