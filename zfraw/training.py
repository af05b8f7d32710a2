"""The training loop behind ``train.py``: SGD with momentum, the paper's filter renormalization
after every step, validation top-1/top-5 each epoch, metrics and checkpoints in a run folder.

Run folder (``config.out``):
    config.json          the configuration
    metrics.jsonl        one JSON line per finished epoch
    mean.npy             the training set's per-pixel mean image, float32 (S, S, 3)
    last.npz             the latest checkpoint (epoch end, or mid-epoch after Ctrl-C)
    epoch-NNN.npz        kept for the epochs of the paper's Fig. 4 (1, 2, 5, 10, 20, 30, 40, 64)
                         and the final epoch of the run

Exact resume: an epoch's batches (order, crops, flips) are a function of (seed, epoch) alone
(:class:`zfraw.data.BatchLoader`) and the dropout masks of the layers' call counters, which the
checkpoint holds. A run stopped by Ctrl-C saves at the last finished step and resumes from that
step; a run killed outright resumes from the last epoch end and replays the epoch. Both end with
the weights an uninterrupted run gets (on the same machine and impl).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass

import numpy as np

from . import backend, host, ops
from .checkpoint import load_checkpoint, save_checkpoint
from .data import BatchLoader, load_spec, mean_image, mean_per_class_accuracy
from .layers import Dropout
from .nets import build, get_spec
from .ops import registry
from .optim import SGD, ReduceLROnPlateau, StepLR, renormalize_filters
from .progress import Progress

FIG4_EPOCHS = (1, 2, 5, 10, 20, 30, 40, 64)
SCHEDULES = ("step", "plateau", "none")
# Steps between host reads of the running loss when no progress bar asks for one sooner. A read
# waits for all the work queued on the GPU, so reading every step would stall the host behind the
# device; every 50 steps costs next to nothing, yet a NaN still stops the run within 50 steps.
SYNC_EVERY = 50


@dataclass
class TrainConfig:
    """Everything that defines a run. ``resize`` is the stored image side S (None: 256 for a
    224 net, else crop + crop // 8, e.g. 72 for 64); ``lr_step`` the StepLR period in epochs
    (None: a third of the run); ``input_scale`` multiplies the mean-subtracted pixels (1: the
    paper's raw 0..255 range; 1/64 gives inputs of about unit scale, which 'he' init wants); ``dropout`` overrides the
    architecture's dropout probability (None keeps the paper's 0.5; 0 trains small demo nets
    several times faster)."""

    arch: str = "zf-32"
    data: str = "synthetic"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "plateau"
    lr_step: int | None = None
    seed: int = 0
    device: str = "cpu"
    impl: str | None = None
    out: str = "runs/run"
    init: str = "paper"
    width: float = 1.0
    ten_crop: bool = False
    resize: int | None = None
    renorm_radius: float = 0.1
    input_scale: float = 1.0
    dropout: float | None = None
    cache_dir: str | None = None
    on_error: str = "warn"
    prefetch: bool = True
    progress: bool = True


def _print(msg: str) -> None:
    print(msg, flush=True)   # flushed: a log file shows each epoch as it ends


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


def _diverged(loss: float, epoch: int, first: int, last: int, lr: float,
              last_path: str) -> TrainingDiverged:
    """The error for a non-finite running loss read after step ``last`` of (1-based) ``epoch``;
    the steps since the previous read, ``first``..``last``, are where it happened."""
    where = f"at step {last}" if first == last else f"between step {first} and step {last}"
    return TrainingDiverged(
        f"loss became {loss} {where} of epoch {epoch} (lr {lr:g}); stopped. The last good "
        f"checkpoint, {last_path}, is unchanged; try a lower --lr or --init he")


def _read_sums(acc) -> tuple[float, int]:
    """Host values of the device running sums ``[loss, correct]``: inside an epoch the loop's
    only read from the device (one copy of two scalars), so tests can count the reads."""
    loss, correct = backend.to_host(acc).tolist()
    return loss, int(correct)


class _RunningSums:
    """An epoch's running train sums (the checkpoint's ``sums``: loss, correct, seen, time).
    Loss and correct count accumulate on the device, in float64 and step after step in the same
    order wherever the reads fall (so the metrics, and a resumed run's, are the same bit for bit);
    the host sees them only at sync points (:meth:`sync`). ``host`` holds the last read."""

    def __init__(self, sums: dict, device: str, step: int):
        xp = backend.xp_for(device)
        self.host = dict(sums)
        self.acc = xp.asarray([sums["loss"], sums["correct"]], dtype=xp.float64)
        self.seen = sums["seen"]
        self.synced_step = step
        self.t0 = time.perf_counter()

    def add(self, loss, probs, labels) -> None:
        """Add one step's batch mean ``loss``, softmax ``probs`` and ``labels`` (all on the
        device); nothing is read back."""
        xp = backend.get_array_module(probs)
        n = len(labels)
        hits = (probs.argmax(1) == labels).sum(dtype=xp.float64)
        self.acc += xp.stack([loss.astype(xp.float64) * n, hits])
        self.seen += n

    def sync(self, step: int) -> dict:
        """Read the sums on the host after ``step`` steps; returns ``host``. The time since the
        previous read goes to ``time``: the read waits for the device, so the time includes all
        the work queued since. (A GPU step returns once launched; timing each step on the host
        would miss most of its work, so images/s is measured between reads.)"""
        loss, correct = _read_sums(self.acc)
        now = time.perf_counter()
        self.host.update(loss=loss, correct=correct, seen=self.seen,
                         time=self.host["time"] + now - self.t0)
        self.t0, self.synced_step = now, step
        return self.host


def stored_size(crop: int) -> int:
    """Default stored side S for net input ``crop``: 256 for 224 (the paper), else crop*9/8."""
    return 256 if crop == 224 else crop + crop // 8


def _make_schedule(cfg: TrainConfig, opt):
    if cfg.schedule == "step":
        return StepLR(opt, cfg.lr_step or max(1, cfg.epochs // 3), 0.1)
    if cfg.schedule == "plateau":
        return ReduceLROnPlateau(opt, factor=0.1, patience=2)
    if cfg.schedule == "none":
        return None
    raise ValueError(f"unknown schedule {cfg.schedule!r}; choose one of {', '.join(SCHEDULES)}")


def evaluate(net, loader: BatchLoader, ten: bool, device: str, should_stop=lambda: False):
    """Top-1/top-5 and mean loss of ``net`` on ``loader``'s set (centre crop or 10-crop with the
    softmax averaged over views). Returns a dict, or None when ``should_stop()`` cut it short."""
    net.eval()
    xp = backend.xp_for(device)
    probs_all, labels_all = [], []   # probabilities stay on the device: one copy at the end
    for x, y in loader.eval_batches(ten=ten):
        if should_stop():
            return None
        views = x if ten else x[None]
        probs = 0.0
        for v in views:
            _, p = ops.softmax_xent(net.forward(backend.to_device(v, device)),
                                    backend.to_device(y, device))
            probs = probs + p
        probs_all.append(probs / len(views))
        labels_all.append(y)
    probs, labels = backend.to_host(xp.concatenate(probs_all)), np.concatenate(labels_all)
    top5 = np.argsort(-probs, axis=1)[:, :5]
    pred = top5[:, 0]
    n = len(labels)
    return {"val_loss": float(-np.log(np.maximum(probs[np.arange(n), labels], 1e-12)).mean()),
            "val_top1": float((pred == labels).mean()),
            "val_top5": float((top5 == labels[:, None]).any(1).mean()),
            "val_class_mean_top1": mean_per_class_accuracy(pred, labels, net.num_classes)}


class HardStop(KeyboardInterrupt):
    """A second Ctrl-C: stop at once, without saving. It can land in the middle of a weight
    update, so the weights in memory may be half-updated; last.npz keeps the last saved state."""


class _StopFlag:
    """Ctrl-C asks to stop at the next step boundary (a weight update is never cut in half);
    a second Ctrl-C raises :class:`HardStop` at once, which the loop does not save on."""

    def __init__(self):
        self.requested = False
        self.saved = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.saved = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise HardStop
        self.requested = True

    def __exit__(self, *exc):
        if self.saved is not None:
            signal.signal(signal.SIGINT, self.saved)


def _keep_fig4(path_last: str, out: str, epoch: int, last_epoch: int) -> None:
    """Keep a copy of the epoch-end checkpoint for the paper's Fig. 4 epochs and the final one."""
    if epoch in FIG4_EPOCHS or epoch == last_epoch:
        dst = os.path.join(out, f"epoch-{epoch:03d}.npz")
        tmp = dst + ".tmp"
        if os.path.exists(tmp):
            os.remove(tmp)
        os.link(path_last, tmp)          # a hard link: no copy; os.replace of last keeps it
        os.replace(tmp, dst)


def _trim_metrics(path: str, epochs_done: int) -> None:
    """Drop metric lines of epochs after the checkpoint (a kill between the two writes)."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = [ln for ln in f if ln.strip() and json.loads(ln)["epoch"] <= epochs_done]
    with open(path, "w") as f:
        f.writelines(lines)


def train(cfg: TrainConfig, resume: bool = False, step_hook=None, log=_print) -> dict:
    """Train per ``cfg``; with ``resume``, continue from ``cfg.out/last.npz`` (its config wins,
    except epochs, device, impl, prefetch, progress). ``step_hook(epoch, step, net)`` is called
    after every finished step (tests use it to interrupt a run). Returns {'status': 'done' |
    'interrupted', 'epoch', 'step', 'metrics': last epoch's metrics or None}.
    Raises :class:`TrainingDiverged` on a NaN/inf loss."""
    last_path = os.path.join(cfg.out, "last.npz")
    ckpt = None
    if resume:
        ckpt = load_checkpoint(last_path)
        keep = {k: getattr(cfg, k) for k in ("epochs", "device", "impl", "prefetch", "progress", "out")}
        cfg = TrainConfig(**dict(ckpt["meta"]["config"], **keep))
    backend.check_device(cfg.device)
    host.keep_freed_memory()  # each step's large arrays reuse the last step's pages
    with registry.use_impl(cfg.impl or registry.default_impl(cfg.device)):
        return _run(cfg, ckpt, last_path, step_hook, log)


def _run(cfg: TrainConfig, ckpt, last_path: str, step_hook, log) -> dict:
    """The body of :func:`train`, with the impl selected and the checkpoint (or None) read."""
    os.makedirs(cfg.out, exist_ok=True)

    crop = get_spec(cfg.arch)["input"][1]
    size = cfg.resize or stored_size(crop)
    train_set, val_set = load_spec(cfg.data, size, cfg.seed, cfg.cache_dir, cfg.on_error)
    net = build(cfg.arch, train_set.num_classes, seed=cfg.seed, init=cfg.init, width=cfg.width)
    if cfg.dropout is not None:
        if not 0.0 <= cfg.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {cfg.dropout}")
        for layer in net.layers:
            if isinstance(layer, Dropout):
                layer.p = cfg.dropout
    net.to(cfg.device)  # before the optimizer state is loaded: velocities go where the weights are
    opt = SGD(net, cfg.lr, cfg.momentum, cfg.weight_decay)
    sched = _make_schedule(cfg, opt)
    if ckpt is None:
        mean = mean_image(train_set.images)
        epoch, step, sums = 0, 0, {"loss": 0.0, "correct": 0, "seen": 0, "time": 0.0}
        with open(os.path.join(cfg.out, "config.json"), "w") as f:
            json.dump(dataclasses.asdict(cfg), f, indent=1)
        open(os.path.join(cfg.out, "metrics.jsonl"), "w").close()
    else:
        net.load_state_dict(ckpt["net"])
        opt.load_state_dict(ckpt["opt"])
        if sched is not None:
            sched.load_state_dict(ckpt["meta"]["schedule"])
        mean = ckpt["mean"]
        m = ckpt["meta"]
        epoch, step, sums = m["epoch"], m["step"], m["sums"]
        _trim_metrics(os.path.join(cfg.out, "metrics.jsonl"), epoch)
    np.save(os.path.join(cfg.out, "mean.npy"), mean)

    train_loader = BatchLoader(train_set, mean, crop, cfg.batch_size, cfg.seed, cfg.prefetch,
                               cfg.input_scale)
    val_loader = BatchLoader(val_set, mean, crop, cfg.batch_size, cfg.seed, cfg.prefetch,
                             cfg.input_scale)
    steps = train_loader.steps_per_epoch()
    log(f"{cfg.arch} (width {cfg.width}, {net.num_params():,} params) on {cfg.data}: "
        f"{len(train_set)} train / {len(val_set)} val, {train_set.num_classes} classes, "
        f"stored {size}px, crop {crop}px, impl {registry.get_impl()}, device {cfg.device}"
        + (f"; resuming at epoch {epoch + 1} step {step}" if ckpt else ""))

    def save(ep, st, sums):
        meta = {"config": dataclasses.asdict(cfg), "epoch": ep, "step": st, "sums": sums,
                "schedule": sched.state_dict() if sched is not None else None,
                "classes": train_set.classes}
        save_checkpoint(last_path, net, opt, mean, meta)

    def sync(step):
        """A sync point: read the running sums, stop on a non-finite loss, show them on the bar.
        A NaN in any step makes the summed loss NaN, so checking the sum covers every step."""
        if run.synced_step == step:
            return                        # nothing new since the last read
        first = run.synced_step + 1
        s = run.sync(step)
        if not math.isfinite(s["loss"]):
            raise _diverged(s["loss"], epoch + 1, first, step, opt.lr, last_path)
        if bar:
            bar.update(step, loss=s["loss"] / s["seen"], acc=s["correct"] / s["seen"],
                       ips=s["seen"] / max(1e-9, s["time"]))

    metrics = None
    with _StopFlag() as stop:
        while epoch < cfg.epochs:
            net.train()
            bar = Progress(steps, f"epoch {epoch + 1}/{cfg.epochs}") if cfg.progress else None
            run = _RunningSums(sums, cfg.device, step)
            try:
                try:
                    # A step only queues device work: nothing is read back on the host (on a GPU
                    # a read would wait for the step) except at the sync points below. The hook
                    # gets no sums, so it needs none.
                    for x, y in train_loader.train_batches(epoch, start_step=step):
                        if stop.requested:
                            break
                        yd = backend.to_device(y, cfg.device)
                        loss, probs = ops.softmax_xent(
                            net.forward(backend.to_device(x, cfg.device)), yd)
                        net.backward(ops.softmax_xent_bwd(probs, yd), input_grad=False)
                        opt.step()
                        renormalize_filters(net, cfg.renorm_radius)
                        step += 1
                        run.add(loss, probs, yd)
                        if step - run.synced_step >= SYNC_EVERY or (bar and bar.due(step)):
                            sync(step)
                        if step_hook is not None:
                            step_hook(epoch, step, net)
                except HardStop:
                    raise
                except KeyboardInterrupt:
                    stop.requested = True  # raised at a step boundary (e.g. by a hook): save below
                # Epoch end or interrupt: the metrics, the checkpoint and the bar's last line need
                # the sums, and a NaN must stop the run before a checkpoint is written.
                sync(step)
            finally:
                if bar:
                    bar.close()
            res = None if stop.requested else evaluate(net, val_loader, cfg.ten_crop, cfg.device,
                                                       lambda: stop.requested)
            if res is None:
                save(epoch, step, run.host)
                log(f"interrupted: saved {last_path} at epoch {epoch + 1} step {step}; "
                    f"continue with --resume --out {cfg.out}")
                return {"status": "interrupted", "epoch": epoch, "step": step, "metrics": metrics}
            sums = run.host
            metrics = {"epoch": epoch + 1, "lr": opt.lr,
                       "train_loss": sums["loss"] / max(1, sums["seen"]),
                       "train_top1": sums["correct"] / max(1, sums["seen"]),
                       "images_per_s": sums["seen"] / max(1e-9, sums["time"]),
                       "train_time_s": sums["time"], "ten_crop": cfg.ten_crop, **res}
            if sched is not None:
                sched.step(1.0 - res["val_top1"])
            epoch, step = epoch + 1, 0
            sums = {"loss": 0.0, "correct": 0, "seen": 0, "time": 0.0}
            save(epoch, 0, sums)
            _keep_fig4(last_path, cfg.out, epoch, cfg.epochs)
            with open(os.path.join(cfg.out, "metrics.jsonl"), "a") as f:
                f.write(json.dumps(metrics) + "\n")
            log(f"epoch {epoch}: train loss {metrics['train_loss']:.4f} top-1 "
                f"{metrics['train_top1']:.4f} | val loss {res['val_loss']:.4f} top-1 "
                f"{res['val_top1']:.4f} top-5 {res['val_top5']:.4f} | "
                f"{metrics['images_per_s']:.0f} img/s, lr {opt.lr:g}")
    return {"status": "done", "epoch": epoch, "step": 0, "metrics": metrics}
