"""The training loop on a tiny net: exact resume, NaN stop, checkpoints, evaluation, CLI."""
import hashlib
import json
import os

import numpy as np
import pytest

import train as train_cli
from zfraw import ops, training
from zfraw.checkpoint import load_checkpoint
from zfraw.data import BatchLoader, Dataset, make_synthetic, mean_image, ten_crop
from zfraw.nets import build
from zfraw.training import HardStop, TrainConfig, TrainingDiverged, evaluate, train


def tiny_config(out, **kw):
    """zf-32 at 1/8 width on 192 synthetic images, batch 32: 6 steps per epoch, dropout on."""
    base = dict(arch="zf-32", width=0.125, data="synthetic:192", epochs=2, batch_size=32,
                lr=0.01, init="he", input_scale=1 / 64, seed=3, out=str(out), progress=False,
                impl="numpy")
    base.update(kw)
    return TrainConfig(**base)


def weights(run_dir):
    return load_checkpoint(os.path.join(run_dir, "last.npz"))


def assert_same_state(a, b):
    assert a["net"].keys() == b["net"].keys()
    for k in a["net"]:
        np.testing.assert_array_equal(a["net"][k], b["net"][k], err_msg=k)
    for k in a["opt"]["velocity"]:
        np.testing.assert_array_equal(a["opt"]["velocity"][k], b["opt"]["velocity"][k], err_msg=k)
    assert a["meta"]["schedule"] == b["meta"]["schedule"]


def metric_lines(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return [{k: v for k, v in r.items() if "time" not in k and "per_s" not in k} for r in rows]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    result = train(tiny_config(out), log=lambda *a: None)
    assert result["status"] == "done"
    return str(out)


def _interrupt_at(epoch_stop, step_stop, exc):
    def hook(epoch, step, net):
        if (epoch, step) == (epoch_stop, step_stop):
            raise exc
    return hook


def test_ctrl_c_mid_epoch_then_resume_is_exact(tmp_path, reference_run):
    cfg = tiny_config(tmp_path)
    r = train(cfg, step_hook=_interrupt_at(1, 3, KeyboardInterrupt()), log=lambda *a: None)
    assert (r["status"], r["epoch"], r["step"]) == ("interrupted", 1, 3)
    assert weights(tmp_path)["meta"]["step"] == 3
    r = train(cfg, resume=True, log=lambda *a: None)
    assert r["status"] == "done" and r["epoch"] == 2
    assert_same_state(weights(tmp_path), weights(reference_run))
    assert metric_lines(tmp_path) == metric_lines(reference_run)


def test_crash_mid_epoch_replays_the_epoch_exactly(tmp_path, reference_run):
    cfg = tiny_config(tmp_path)
    with pytest.raises(RuntimeError, match="power cut"):
        train(cfg, step_hook=_interrupt_at(1, 4, RuntimeError("power cut")), log=lambda *a: None)
    assert weights(tmp_path)["meta"]["epoch"] == 1          # the epoch-end checkpoint
    train(cfg, resume=True, log=lambda *a: None)
    assert_same_state(weights(tmp_path), weights(reference_run))
    assert metric_lines(tmp_path) == metric_lines(reference_run)


def test_second_ctrl_c_stops_without_saving_then_resume_is_exact(tmp_path, reference_run):
    """A second Ctrl-C (HardStop) may land mid-update, so nothing is saved: last.npz stays the
    epoch-end checkpoint and resuming from it replays the epoch exactly."""
    cfg = tiny_config(tmp_path)
    with pytest.raises(HardStop):
        train(cfg, step_hook=_interrupt_at(1, 4, HardStop()), log=lambda *a: None)
    saved = weights(tmp_path)["meta"]
    assert (saved["epoch"], saved["step"]) == (1, 0)
    train(cfg, resume=True, log=lambda *a: None)
    assert_same_state(weights(tmp_path), weights(reference_run))


def test_uninterrupted_runs_are_reproducible_and_learn(tmp_path, reference_run):
    train(tiny_config(tmp_path), log=lambda *a: None)
    assert_same_state(weights(tmp_path), weights(reference_run))
    ref = load_checkpoint(os.path.join(reference_run, "epoch-001.npz"))
    assert ref["meta"]["epoch"] == 1
    assert not np.array_equal(ref["net"]["conv1.W"], weights(reference_run)["net"]["conv1.W"])
    assert sorted(f for f in os.listdir(reference_run) if f.endswith(".npz")) == \
        ["epoch-001.npz", "epoch-002.npz", "last.npz"]
    mean = np.load(os.path.join(reference_run, "mean.npy"))
    np.testing.assert_array_equal(mean, weights(reference_run)["mean"])
    # the paper's renormalization held after every step
    for name, w in weights(reference_run)["net"].items():
        if name.startswith("conv") and name.endswith(".W"):
            rms = np.sqrt((w.reshape(len(w), -1) ** 2).mean(1))
            assert rms.max() <= 0.1 * (1 + 1e-5)


def _sha1(path):
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's 'invalid value' as NaN spreads
@pytest.mark.parametrize("then_interrupt", [False, True])
def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch, then_interrupt):
    """A NaN at step 3 of epoch 2 is caught at the next sync point (step 4 when reading every
    2 steps), or before the interrupt's checkpoint when Ctrl-C comes first."""
    monkeypatch.setattr(training, "SYNC_EVERY", 50 if then_interrupt else 2)
    cfg = tiny_config(tmp_path, epochs=3)
    epoch1 = {}

    def poison(epoch, step, net):
        if (epoch, step) == (1, 2):
            epoch1["sha1"] = _sha1(os.path.join(tmp_path, "last.npz"))
            net.layer("fc8").params["W"][...] = np.nan
        if then_interrupt and (epoch, step) == (1, 3):
            raise KeyboardInterrupt

    steps = "between step 1 and step 3" if then_interrupt else "between step 3 and step 4"
    with pytest.raises(TrainingDiverged, match=f"loss became nan {steps} of epoch 2 .*"
                       "last good checkpoint.* is unchanged; try a lower --lr"):
        train(cfg, step_hook=poison, log=lambda *a: None)
    assert _sha1(os.path.join(tmp_path, "last.npz")) == epoch1["sha1"]
    state = weights(tmp_path)
    assert (state["meta"]["epoch"], state["meta"]["step"]) == (1, 0)
    assert all(np.isfinite(v).all() for v in state["net"].values())


def test_running_sums_are_read_at_sync_points_only(tmp_path, monkeypatch):
    """12 steps per epoch, a read every 5: the loop reads the device sums at steps 5, 10 and the
    epoch end, not per step, and the metrics equal the per-step losses and hits summed by hand."""
    monkeypatch.setattr(training, "SYNC_EVERY", 5)
    reads = []
    real_read = training._read_sums
    monkeypatch.setattr(training, "_read_sums", lambda acc: reads.append(1) or real_read(acc))
    # each training step's loss, probs and labels, kept by the step hook (evaluate's calls to
    # softmax_xent come with no hook after them, so they are dropped)
    last_call, per_epoch = {}, [[], []]
    real_xent = ops.softmax_xent

    def xent(logits, labels):
        loss, probs = real_xent(logits, labels)
        last_call.update(loss=float(loss), probs=probs.copy(), labels=labels)
        return loss, probs

    monkeypatch.setattr(ops, "softmax_xent", xent)

    def hook(epoch, step, net):
        per_epoch[epoch].append(dict(last_call))

    train(tiny_config(tmp_path, batch_size=16), step_hook=hook, log=lambda *a: None)
    assert [len(e) for e in per_epoch] == [12, 12]
    assert len(reads) == 2 * 3                      # epochs x (12 // 5 + the epoch end)
    for row, calls in zip(metric_lines(tmp_path), per_epoch):
        loss = sum(c["loss"] * len(c["labels"]) for c in calls)
        hits = sum(int((c["probs"].argmax(1) == c["labels"]).sum()) for c in calls)
        assert row["train_loss"] == pytest.approx(loss / 192, rel=1e-12)
        assert row["train_top1"] == hits / 192


def test_ten_crop_evaluate_matches_hand_computation():
    net = build("zf-32", 10, seed=1, init="he", width=0.125)
    images, labels, _ = make_synthetic(20, seed=0, size=36)
    data = Dataset(images, labels, None, list("abcdefghij"), list("abcdefghij"))
    mean = mean_image(images)
    res = evaluate(net, BatchLoader(data, mean, 32, 8, prefetch=False, scale=1 / 64), True, "cpu")
    net.eval()
    views = ten_crop(images, mean, 32) / 64
    probs = np.mean([ops.softmax_xent(net.forward(v), labels)[1] for v in views], 0)
    order = np.argsort(-probs, 1)
    assert res["val_top1"] == pytest.approx((order[:, 0] == labels).mean())
    assert res["val_top5"] == pytest.approx((order[:, :5] == labels[:, None]).any(1).mean())
    assert res["val_loss"] == pytest.approx(-np.log(probs[np.arange(20), labels]).mean(), rel=1e-5)


def test_cli_runs_and_reports_bad_input(tmp_path, capsys):
    out = str(tmp_path / "cli")
    rc = train_cli.main(["--arch", "zf-32", "--width", "0.125", "--data", "synthetic:64",
                         "--epochs", "1", "--batch-size", "32", "--init", "he", "--input-scale",
                         "0.015625", "--impl", "numpy", "--out", out, "--no-progress"])
    assert rc == 0
    (row,) = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert row["epoch"] == 1 and 0 <= row["val_top1"] <= row["val_top5"] <= 1
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["width"] == 0.125
    before = hashlib.sha1(open(os.path.join(out, "last.npz"), "rb").read()).hexdigest()
    assert train_cli.main(["--out", out, "--resume", "--epochs", "1", "--no-progress"]) == 0
    assert hashlib.sha1(open(os.path.join(out, "last.npz"), "rb").read()).hexdigest() == before
    capsys.readouterr()
    assert train_cli.main(["--data", "nosuch:1", "--out", str(tmp_path / "new")]) == 2
    assert "unknown dataset kind" in capsys.readouterr().err


def test_dropout_override(tmp_path, reference_run):
    assert int(weights(reference_run)["net"]["drop6.calls"]) == 12   # 2 epochs x 6 steps
    train(tiny_config(tmp_path, epochs=1, dropout=0.0), log=lambda *a: None)
    state = weights(tmp_path)
    assert int(state["net"]["drop6.calls"]) == 0          # p = 0: no mask was ever drawn
    ref = weights(tmp_path)["meta"]["config"]
    assert ref["dropout"] == 0.0
    with pytest.raises(ValueError, match="dropout"):
        train(tiny_config(tmp_path / "bad", dropout=1.0), log=lambda *a: None)


def test_progress_bar_prints_one_line_when_not_a_terminal():
    import io

    from zfraw.progress import Progress
    buf = io.StringIO()
    bar = Progress(4, "epoch 1/2", stream=buf)
    for step in range(1, 5):
        bar.update(step, loss=2.5 / step, ips=100.0)
    assert buf.getvalue() == ""
    bar.close()
    line = buf.getvalue()
    assert line.count("\n") == 1 and "4/4" in line and "loss 0.625" in line and "100 img/s" in line


@pytest.mark.parametrize("now", [0.0, 5.0, 1.7e9])
def test_progress_bar_due_says_when_update_would_redraw(monkeypatch, now):
    """Whatever the clock reads when the bar starts (a machine booted seconds ago, or a wall
    clock), ``due`` is false until ``every`` seconds have passed since the last draw, true at
    the last step, and says exactly whether ``update`` redraws."""
    import io

    import tqdm.std

    from zfraw.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    clock = [now]
    monkeypatch.setattr(tqdm.std, "time", lambda: clock[0])
    bar = Progress(4, "epoch 1/2", stream=Terminal(), every=10)
    assert "0/4" in bar.stream.getvalue()            # tqdm draws the empty bar at once
    assert not bar.due(1)
    bar.update(1, loss=1.0)
    assert "1/4" not in bar.stream.getvalue()        # not due: not drawn
    clock[0] += 10
    assert bar.due(2)
    bar.update(2, loss=0.5)
    assert "2/4" in bar.stream.getvalue() and "loss 0.5" in bar.stream.getvalue()
    clock[0] += 1
    assert not bar.due(3)
    assert bar.due(4)                                # the last step is always shown
    bar.update(4, loss=0.25)
    assert "4/4" in bar.stream.getvalue() and "loss 0.25" in bar.stream.getvalue()
    bar.close()
    assert not Progress(4, "log", stream=io.StringIO()).due(4)   # a log file: only close() prints


def test_holdout_is_evaluated_and_decides_the_schedule(tmp_path, monkeypatch):
    from zfraw.viz.filters import spectral_concentration

    seen = []

    class Recording(training.ReduceLROnPlateau):
        def step(self, error):
            seen.append(error)
            return super().step(error)

    monkeypatch.setattr(training, "ReduceLROnPlateau", Recording)
    lines = []
    train(tiny_config(tmp_path, holdout=4, schedule="plateau"), log=lines.append)
    assert "152 train / 40 held-out / 38 val" in lines[0]    # 192 = 152 + 10 classes x 4
    rows = [json.loads(x) for x in open(tmp_path / "metrics.jsonl")]
    assert len(rows) == len(seen) == 2
    for row, error in zip(rows, seen):
        assert {"holdout_top1", "holdout_top5", "holdout_loss", "val_top1"} <= row.keys()
        assert error == pytest.approx(1 - row["holdout_top1"])
    conv1 = weights(tmp_path)["net"]["conv1.W"]
    assert rows[-1]["conv1_structure"] == pytest.approx(spectral_concentration(conv1).mean())
    with pytest.raises(ValueError, match="--holdout"):
        train(tiny_config(tmp_path / "bad", holdout=-1), log=lambda *a: None)


def test_lr_mult_and_init_scale_apply_to_their_layer_only(tmp_path):
    """One step from the same start: with conv1's rate x10 its velocity (-lr*mult*(g + wd*w))
    is 10x a plain run's and every other is equal; with its start x0.5, the weights before the
    step (w - v, renormalization off) are the plain initialisation halved there only."""
    def one_step(out, **kw):
        result = train(tiny_config(out, epochs=1, renorm_radius=0.0, **kw),
                       step_hook=_interrupt_at(0, 1, KeyboardInterrupt), log=lambda *a: None)
        assert result["status"] == "interrupted" and result["step"] == 1
        return weights(out)

    plain = one_step(tmp_path / "plain")
    fast = one_step(tmp_path / "fast", lr_mult={"conv1": 10.0})
    assert fast["meta"]["config"]["lr_mult"] == {"conv1": 10.0}
    for name, v in plain["opt"]["velocity"].items():
        factor = 10.0 if name.startswith("conv1.") else 1.0
        np.testing.assert_allclose(fast["opt"]["velocity"][name], factor * v, rtol=1e-5,
                                   atol=1e-12, err_msg=name)
    small = one_step(tmp_path / "small", init_scale={"conv1": 0.5})
    start = {n: w - plain["opt"]["velocity"].get(n, 0) for n, w in plain["net"].items()}
    for name in ("conv1.W", "conv2.W", "fc8.W"):
        begun = small["net"][name] - small["opt"]["velocity"][name]
        factor = 0.5 if name == "conv1.W" else 1.0
        np.testing.assert_allclose(begun, factor * start[name], rtol=1e-5, atol=1e-7,
                                   err_msg=name)
    with pytest.raises(ValueError, match="--init-scale conv7"):
        train(tiny_config(tmp_path / "bad", init_scale={"conv7": 2.0}), log=lambda *a: None)


def test_init_bias_starts_its_layers_biases_at_the_value(tmp_path):
    """One step from a start with conv2's biases at 1: before the step (b - v) they are 1
    there, and every other bias starts at the plain initialisation's value (0)."""
    result = train(tiny_config(tmp_path / "b", epochs=1, renorm_radius=0.0,
                               init_bias={"conv2": 1.0}),
                   step_hook=_interrupt_at(0, 1, KeyboardInterrupt), log=lambda *a: None)
    assert result["status"] == "interrupted"
    w = weights(tmp_path / "b")
    assert w["meta"]["config"]["init_bias"] == {"conv2": 1.0}
    for name in ("conv1.b", "conv2.b", "fc8.b"):
        begun = w["net"][name] - w["opt"]["velocity"][name]
        np.testing.assert_allclose(begun, 1.0 if name == "conv2.b" else 0.0, atol=1e-6,
                                   err_msg=name)
    with pytest.raises(ValueError, match="--init-bias conv7"):
        train(tiny_config(tmp_path / "bad", init_bias={"conv7": 1.0}), log=lambda *a: None)
    with pytest.raises(ValueError, match="finite"):
        train(tiny_config(tmp_path / "bad2", init_bias={"conv2": float("nan")}),
              log=lambda *a: None)


def test_per_image_predictions_are_kept_and_agree_with_the_metrics(tmp_path):
    lines = []
    train(tiny_config(tmp_path, holdout=3, val_from_train=2), log=lines.append)
    assert "142 train / 30 held-out / 58 val" in lines[0]     # 192 - 10 x 3 - 10 x 2; 38 + 20
    rows = [json.loads(x) for x in open(tmp_path / "metrics.jsonl")]
    run = training.RunDir(tmp_path)
    for row in rows:
        p = run.read_predictions(row["epoch"])
        assert len(p["top1"]) == 58
        assert np.mean(p["top1"] == p["labels"]) == pytest.approx(row["val_top1"])
        np.testing.assert_array_equal(p["true_rank"] == 0, p["top1"] == p["labels"])
        assert np.mean(p["true_rank"] < 5) == pytest.approx(row["val_top5"])
        assert 0 <= row["train_eval_top1"] <= 1 and "train_eval_loss" in row
    assert run.read_predictions()["epoch"] == 2
    with pytest.raises(training.RunError, match="no per-image predictions for epoch 7"):
        run.read_predictions(7)
    # a new run over the old one never mixes in the old run's predictions
    train(tiny_config(tmp_path, epochs=1), overwrite=True, log=lambda *a: None)
    assert sorted(os.listdir(tmp_path / "predictions")) == ["val-epoch-001.npz"]
