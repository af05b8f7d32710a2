"""The training loop behind ``train.py``: SGD with momentum, the paper's filter renormalization
after every step, validation top-1/top-5 each epoch, metrics and checkpoints in a run folder
(:mod:`zfraw.rundir` owns its layout, its lock and the refusals that keep a run from being lost).

The step itself, :func:`train_step`, is the one the step benchmark times.

Exact resume: an epoch's batches (order, crops, flips) are a function of (seed, epoch) alone
(:class:`zfraw.data.BatchLoader`) and the dropout masks of the layers' call counters, which the
checkpoint holds. A run stopped by Ctrl-C saves at the last finished step and resumes from that
step; a run killed outright resumes from the last epoch end and replays the epoch. Both end with
the weights an uninterrupted run gets (on the same machine and impl).
"""
from __future__ import annotations

import dataclasses
import math
import os
import signal
import threading
import time
from dataclasses import dataclass

import numpy as np

from . import backend, distributed, host, ops
from .data import (BatchLoader, hold_out, load_spec, mean_image, mean_per_class_accuracy,
                   stored_size)
from .layers import Dropout
from .nets import build, get_spec
from .ops import registry
from .ops.elementwise import check_dropout_p
from .optim import SCHEMES, SGD, ReduceLROnPlateau, StepLR, renormalize_filters
from .progress import Progress
from .rundir import FIG4_EPOCHS, RunDir, RunError

__all__ = ["FIG4_EPOCHS", "HardStop", "RunError", "TrainConfig", "TrainingDiverged",
           "check_config", "evaluate", "resume_config", "train", "train_step"]

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
    paper's raw 0..255 range; 1/64 gives inputs of about unit scale, which 'he' init wants);
    ``dropout`` overrides the architecture's dropout probability (None keeps the paper's 0.5;
    0 trains small demo nets several times faster); ``renorm_radius`` is the paper's filter
    RMS limit (0: no renormalization, as in the paper's Fig. 6(a)); ``init_from`` a checkpoint
    or run folder whose weights start every layer but the classifier (transfer: the paper's
    Table 4 rows that train the whole net); ``holdout`` the images per class taken out of the
    training set and evaluated every epoch (``holdout_*`` metrics): when given, the plateau
    schedule decides on them, so that no decision of the run looks at the validation set
    that its results report; ``lr_mult`` ({layer: factor}) scales one layer's learning rate
    (Caffe's per-layer lr_mult, :class:`zfraw.optim.SGD`); ``init_scale`` ({layer: factor})
    multiplies one layer's initial weights (conv1=1/16 puts He's conv1 of zf-64 at about the
    paper's N(0, 0.01^2), so that what it learns soon outweighs its random start)."""

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
    init_from: str | None = None
    holdout: int = 0
    lr_mult: dict | None = None
    init_scale: dict | None = None


# What a resume may do with each setting. FIXED ones define the run (the net, the data, the
# batches, the function being learned): a resume that asks for another value is refused.
# CHANGEABLE ones may move between sessions: the new value is applied and said. SESSION ones
# only concern this process (where output goes, how data is read) and are taken silently.
FIXED = ("arch", "width", "data", "resize", "seed", "init", "batch_size", "input_scale",
         "dropout", "momentum", "weight_decay", "renorm_radius", "init_from", "holdout",
         "lr_mult", "init_scale")
CHANGEABLE = ("epochs", "lr", "schedule", "lr_step", "impl", "device", "ten_crop")
SESSION = ("out", "cache_dir", "on_error", "prefetch", "progress")
assert set(FIXED + CHANGEABLE + SESSION) == {f.name for f in dataclasses.fields(TrainConfig)}


def check_config(cfg: TrainConfig) -> None:
    """Raise ValueError, with a one-line message naming the setting, for a value no run can use."""
    def need(ok, message):
        if not ok:
            raise ValueError(message)

    try:
        get_spec(cfg.arch)
    except ValueError as e:
        raise ValueError(f"--arch: {e}") from None
    need(isinstance(cfg.epochs, int) and cfg.epochs >= 1,
         f"--epochs must be a positive number of epochs, got {cfg.epochs}")
    need(cfg.batch_size >= 1, f"--batch-size must be >= 1, got {cfg.batch_size}")
    need(math.isfinite(cfg.lr) and cfg.lr > 0, f"--lr must be a positive number, got {cfg.lr}")
    need(0 <= cfg.momentum < 1, f"--momentum must be in [0, 1), got {cfg.momentum}")
    need(cfg.weight_decay >= 0, f"--weight-decay must be >= 0, got {cfg.weight_decay}")
    need(cfg.schedule in SCHEDULES, f"unknown schedule {cfg.schedule!r}; choose one of "
         f"{', '.join(SCHEDULES)}")
    need(cfg.lr_step is None or cfg.lr_step >= 1, f"--lr-step must be >= 1, got {cfg.lr_step}")
    need(cfg.init in SCHEMES, f"unknown --init {cfg.init!r}; choose one of {', '.join(SCHEMES)}")
    need(math.isfinite(cfg.width) and cfg.width > 0, f"--width must be positive, got {cfg.width}")
    need(math.isfinite(cfg.input_scale) and cfg.input_scale > 0,
         f"--input-scale must be positive, got {cfg.input_scale}")
    need(cfg.renorm_radius >= 0, f"--renorm-radius must be >= 0, got {cfg.renorm_radius}")
    need(isinstance(cfg.holdout, int) and cfg.holdout >= 0,
         f"--holdout must be a number of images per class >= 0, got {cfg.holdout}")
    need(cfg.on_error in ("warn", "raise"), f"--on-error must be warn or raise, got {cfg.on_error!r}")
    need(cfg.impl is None or cfg.impl in registry.IMPLS,
         f"unknown --impl {cfg.impl!r}; choose one of {', '.join(registry.IMPLS)}")
    if cfg.dropout is not None:
        try:
            check_dropout_p(cfg.dropout)
        except ValueError:
            raise ValueError(f"--dropout must be in [0, 1), got {cfg.dropout}") from None
    need(cfg.init_from is None or os.path.exists(cfg.init_from),
         f"--init-from {cfg.init_from}: no such checkpoint or run folder")
    need(cfg.device in backend.DEVICES,
         f"unknown --device {cfg.device!r}; choose one of {', '.join(backend.DEVICES)}")
    try:
        backend.check_device(cfg.device)
    except RuntimeError as e:            # no usable GPU: a setting this machine cannot honour
        raise ValueError(str(e)) from None
    spec = get_spec(cfg.arch)
    trained = [name for name, kind, _ in spec["layers"] if kind in ("conv", "fc")]
    for flag, factors in (("--lr-mult", cfg.lr_mult), ("--init-scale", cfg.init_scale)):
        for name, factor in (factors or {}).items():
            need(name in trained, f"{flag} {name}={factor}: {cfg.arch} has no layer {name!r} "
                 f"with weights (it has {', '.join(trained)})")
            need(math.isfinite(factor) and factor > 0,
                 f"{flag} {name}={factor}: the factor must be a positive number")
    crop = spec["input"][1]
    need(cfg.resize is None or cfg.resize >= crop,
         f"--resize {cfg.resize} is smaller than {cfg.arch}'s {crop}px input")


def resume_config(saved: dict, asked: dict) -> tuple[TrainConfig, list]:
    """The configuration a resumed run continues with: the run's ``saved`` config, with the
    settings the user ``asked`` for (field -> value) applied where a resume may change them.
    Returns (config, one line per changed setting). Raises :class:`RunError` listing every
    fixed setting asked with another value than the run's. An asked value of None means "not
    given" (None is the default of every setting that has one)."""
    asked = {k: v for k, v in asked.items() if v is not None}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    base = TrainConfig(**{k: v for k, v in saved.items() if k in known})
    clashes = [f"--{k.replace('_', '-')} {asked[k]} (the run has {getattr(base, k)})"
               for k in FIXED if k in asked and asked[k] != getattr(base, k)]
    if clashes:
        raise RunError(f"{base.out}: cannot resume with {'; '.join(clashes)}: these define the "
                       "run; drop them to continue it, or train into a new --out")
    changes = {k: asked[k] for k in CHANGEABLE + SESSION if k in asked}
    notes = [f"{k}: {getattr(base, k)} -> {v} (changed on resume)" for k, v in changes.items()
             if k in CHANGEABLE and v != getattr(base, k)]
    return dataclasses.replace(base, **changes), notes


def _print(msg: str) -> None:
    print(msg, flush=True)   # flushed: a log file shows each epoch as it ends


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


def _diverged(loss: float, epoch: int, first: int, last: int, lr: float,
              run: RunDir) -> TrainingDiverged:
    """The error for a non-finite running loss read after step ``last`` of (1-based) ``epoch``;
    the steps since the previous read, ``first``..``last``, are where it happened."""
    where = f"at step {last}" if first == last else f"between step {first} and step {last}"
    if run.last_path.is_file():
        kept = (f"The last good checkpoint, {run.last_path}, is unchanged; try a lower --lr or "
                "--init he, with --resume to continue from it")
    else:
        kept = ("No checkpoint had been written yet (the first epoch did not finish), so there "
                "is nothing to resume; start again with a lower --lr or --init he")
    return TrainingDiverged(f"loss became {loss} {where} of epoch {epoch} (lr {lr:g}); "
                            f"stopped. {kept}")


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

    def __init__(self, sums: dict, device: str, step: int, team=None):
        xp = backend.xp_for(device)
        self.host = dict(sums)
        self.team = team   # data-parallel: each rank sums its shares; the reads sum the ranks'
        if team is not None and not team.root:
            sums = {"loss": 0.0, "correct": 0, "seen": 0}   # the run's sums so far: on rank 0
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
        seen = self.seen
        if self.team is not None:
            loss, correct, seen = self.team.sum([loss, correct, seen])
            correct, seen = int(correct), int(seen)
        now = time.perf_counter()
        self.host.update(loss=loss, correct=correct, seen=seen,
                         time=self.host["time"] + now - self.t0)
        self.t0, self.synced_step = now, step
        return self.host


def train_step(net, opt, x, labels, renorm_radius: float = 0.1, reduce_grads=None):
    """One SGD step: forward, softmax cross-entropy, backward, update, the paper's filter
    renormalization (skipped when ``renorm_radius`` is 0). x: (N, C, H, W) and labels (N,) on
    the net's device. Returns (loss: 0-d, probs: (N, classes)), still on the device: nothing is
    read back to the host, so a GPU step only queues work. ``reduce_grads()``, when given, runs
    between the backward and the update (data-parallel: :class:`zfraw.distributed.GradBuckets`
    averages the gradients over the ranks)."""
    loss, probs = ops.softmax_xent(net.forward(x), labels)
    # Training never uses the image's gradient (neither does PyTorch's), so the walk stops at
    # the lowest layer with parameters.
    net.backward(ops.softmax_xent_bwd(probs, labels), input_grad=False)
    if reduce_grads is not None:
        reduce_grads()
    opt.step()
    if renorm_radius > 0:
        renormalize_filters(net, renorm_radius)
    return loss, probs


def _make_schedule(cfg: TrainConfig, opt):
    if cfg.schedule == "step":
        return StepLR(opt, cfg.lr_step or max(1, cfg.epochs // 3), 0.1)   # (None: older runs)
    if cfg.schedule == "plateau":
        return ReduceLROnPlateau(opt, factor=0.1, patience=2)
    return None


def evaluate(net, loader: BatchLoader, ten: bool, device: str, should_stop=lambda: False,
             team=None):
    """Top-1/top-5 and mean loss of ``net`` on ``loader``'s set (centre crop or 10-crop with the
    softmax averaged over views). Returns a dict, or None when ``should_stop()`` cut it short.
    With a ``team`` (data-parallel), ``loader`` holds this rank's shard of the set: the ranks'
    per-image statistics are gathered in rank order, so every rank gets the metrics of the whole
    set (None on every rank when any rank was stopped)."""
    stats = _eval_stats(net, loader, ten, device, should_stop)
    if team is not None:
        parts = team.allgather(stats)
        if any(p is None for p in parts):
            return None
        stats = tuple(np.concatenate(field) for field in zip(*parts))
    if stats is None:
        return None
    nll, top5, labels = stats
    pred = top5[:, 0]
    return {"val_loss": float(nll.mean()),
            "val_top1": float((pred == labels).mean()),
            "val_top5": float((top5 == labels[:, None]).any(1).mean()),
            "val_class_mean_top1": mean_per_class_accuracy(pred, labels, net.num_classes)}


def _eval_stats(net, loader: BatchLoader, ten: bool, device: str, should_stop):
    """Per image of ``loader``'s set: (negative log-likelihood (N,), top-5 classes (N, 5),
    labels (N,)), host arrays; None when ``should_stop()`` cut the pass short."""
    net.eval()
    xp = backend.xp_for(device)
    probs_all, labels_all = [], []   # probabilities stay on the device: one copy at the end
    batches = loader.eval_batches(ten=ten)
    try:
        for x, y in batches:
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
    finally:
        batches.close()  # here, not at garbage collection, where a Ctrl-C would be swallowed
    if not probs_all:   # an empty shard (more ranks than validation images)
        k = min(5, net.num_classes)
        return np.zeros(0, np.float32), np.zeros((0, k), np.int64), np.zeros(0, np.int64)
    probs, labels = backend.to_host(xp.concatenate(probs_all)), np.concatenate(labels_all)
    top5 = np.argsort(-probs, axis=1)[:, :5]
    n = len(labels)
    return -np.log(np.maximum(probs[np.arange(n), labels], 1e-12)), top5, labels


class HardStop(KeyboardInterrupt):
    """A second Ctrl-C: stop at once, without saving. It can land in the middle of a weight
    update, so the weights in memory may be half-updated; last.npz keeps the last saved state."""


class _StopFlag:
    """Ctrl-C asks to stop at the next step boundary (a weight update is never cut in half);
    a second Ctrl-C raises :class:`HardStop` at once, which the loop does not save on.

    ``hard`` stays set after the second Ctrl-C: the exception can be raised where Python cannot
    pass it on (inside a generator being closed, a finalizer), and the loop checks the flag
    before it saves, so such a Ctrl-C still stops the run without saving."""

    def __init__(self):
        self.requested = False
        self.hard = False
        self.saved = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.saved = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            self.hard = True
            raise HardStop
        self.requested = True

    def check_hard(self) -> None:
        """Raise :class:`HardStop` if a second Ctrl-C came, wherever it was raised."""
        if self.hard:
            raise HardStop

    def __exit__(self, *exc):
        if self.saved is not None:
            signal.signal(signal.SIGINT, self.saved)


def train(cfg: TrainConfig, resume: bool = False, *, asked: dict | None = None,
          overwrite: bool = False, resume_from=None, step_hook=None, log=_print) -> dict:
    """Train per ``cfg`` into the run folder ``cfg.out``.

    A new run (``resume`` false) is refused when ``cfg.out`` already holds one, unless
    ``overwrite`` (the old run's files are removed first). With ``resume``, the run continues
    from its newest checkpoint (or ``resume_from``) with the run's own config; ``asked`` holds
    the settings the user gave (field -> value; default: every field of ``cfg``), checked by
    :func:`resume_config`. Only one training writes a folder at a time.

    ``step_hook(epoch, step, net)`` is called after every finished step (tests use it to
    interrupt a run). Returns {'status': 'done' | 'interrupted', 'epoch', 'step', 'metrics':
    the last epoch's metrics or None}. Raises :class:`TrainingDiverged` on a NaN/inf loss,
    :class:`RunError` for a refused run folder, ValueError for a bad setting.

    Started by ``mpiexec`` with several ranks, the run is data-parallel
    (:mod:`zfraw.distributed`): rank 0 checks, locks and writes the folder, every rank trains on
    its share of each batch."""
    team = distributed.world()
    if team is not None:
        return _train_team(team, cfg, resume, asked, overwrite, resume_from, step_hook, log)
    check_config(cfg)
    run = RunDir(cfg.out)
    if (resume or resume_from is not None) and not run.path.is_dir():
        raise RunError(f"{run.path}: no such run folder to resume")
    with run.lock():
        cfg, ckpt, _, early = _prepare(cfg, run, resume, asked, overwrite, resume_from, log)
        if early is not None:
            return early
        host.keep_freed_memory()  # each step's large arrays reuse the last step's pages
        try:
            with registry.use_impl(cfg.impl or registry.default_impl(cfg.device)):
                return _run(cfg, run, ckpt, step_hook, log)
        finally:
            run.remove_temporaries()


def _prepare(cfg, run, resume, asked, overwrite, resume_from, log):
    """With ``run`` locked: the checks of a resume (or the start of a new run). Returns (the
    config to train with, the checkpoint or None, its path or None, the result to return at
    once or None)."""
    ckpt = path = None
    if resume or resume_from is not None:
        if resume_from is None and not run.has_checkpoint():
            raise RunError(f"{run.path} has no checkpoint to resume"
                           + (" (its first epoch never finished); start it over without "
                              "--resume" if run.is_run() else ""))
        ckpt, path = run.load(resume_from)
        asked = dataclasses.asdict(cfg) if asked is None else dict(asked, out=cfg.out)
        cfg, notes = resume_config(ckpt["meta"]["config"], asked)
        check_config(cfg)
        done = ckpt["meta"]["epoch"]
        if cfg.epochs < done:
            raise RunError(f"{path} is at epoch {done}; --epochs {cfg.epochs} would undo "
                           f"work: give --epochs {done + 1} or more to continue it")
        for note in notes:
            log(note)
        if cfg.epochs == done and ckpt["meta"]["step"] == 0:
            log(f"{run.path} already finished its {done} epochs; nothing to do "
                "(raise --epochs to train on)")
            return cfg, None, None, {"status": "done", "epoch": done, "step": 0,
                                     "metrics": None}
    else:
        if cfg.schedule == "step" and cfg.lr_step is None:
            # fixed now, so that extending the run with --epochs keeps the decay's period
            cfg = dataclasses.replace(cfg, lr_step=max(1, cfg.epochs // 3))
        removed = run.start_new(overwrite)
        if removed:
            log(f"{run.path}: removed {len(removed)} file(s) of the previous run")
    return cfg, ckpt, path, None


def _train_team(team, cfg, resume, asked, overwrite, resume_from, step_hook, log) -> dict:
    """:func:`train` on one rank of a data-parallel MPI job. Rank 0 checks the settings, takes
    the folder's lock and makes the checks of a resume, then tells the others what to train
    (or the error, which every rank raises: marked agreed, so that they exit normally). The
    others read the same checkpoint; only rank 0 writes the folder and logs."""
    run = RunDir(cfg.out)
    ckpt = path = early = None
    if team.root:
        try:
            check_config(cfg)
            if (resume or resume_from is not None) and not run.path.is_dir():
                raise RunError(f"{run.path}: no such run folder to resume")
            run.lock()
            cfg, ckpt, path, early = _prepare(cfg, run, resume, asked, overwrite, resume_from,
                                              log)
            team.check_batch(cfg.batch_size)
        except Exception as e:
            run.unlock()
            team.bcast(("error", distributed._portable(e)))
            raise distributed.agreed(e)
        team.bcast(("ok", cfg, None if path is None else str(path), early))
    else:
        log = lambda *a: None   # noqa: E731 - rank 0 speaks for the job
        what = team.bcast(None)
        if what[0] == "error":
            raise distributed.agreed(what[1])
        _, cfg, path, early = what
        cfg = dataclasses.replace(cfg, progress=False)
        if early is None and path is not None:
            ckpt, _ = run.load(path)
    try:
        if early is not None:
            return early
        if cfg.device == "cuda":
            team.use_gpu()
        host.keep_freed_memory()
        with registry.use_impl(cfg.impl or registry.default_impl(cfg.device)):
            try:
                return _run(cfg, run, ckpt, step_hook, log, team)
            except TrainingDiverged as e:   # read from the summed losses: on every rank
                raise distributed.agreed(e)
    finally:
        if team.root:
            run.remove_temporaries()
            run.unlock()


def _run(cfg: TrainConfig, run: RunDir, ckpt, step_hook, log, team=None) -> dict:
    """The body of :func:`train`, with the folder locked, the impl selected and the checkpoint
    (or None) read. With a ``team`` (data-parallel, :mod:`zfraw.distributed`) only rank 0
    writes the folder; each rank trains on its share of every batch and evaluates its share of
    the validation set."""
    crop = get_spec(cfg.arch)["input"][1]
    size = cfg.resize or stored_size(crop)
    load = lambda: load_spec(cfg.data, size, cfg.seed, cfg.cache_dir, cfg.on_error)  # noqa: E731
    train_set, val_set = load() if team is None else team.root_first(load)
    hold_set = None
    if cfg.holdout:
        train_set, hold_set = hold_out(train_set, cfg.holdout)
    writer = team is None or team.root
    if ckpt is not None and ckpt["meta"].get("classes", train_set.classes) != train_set.classes:
        raise RunError(f"{cfg.data} now has classes other than the run's "
                       f"({train_set.num_classes} vs {len(ckpt['meta']['classes'])}); the data "
                       "changed on disk: train into a new --out")
    net = build(cfg.arch, train_set.num_classes, seed=cfg.seed, init=cfg.init, width=cfg.width)
    for name, factor in (cfg.init_scale or {}).items():
        net.layer(name).params["W"] *= factor     # before any checkpoint is loaded over it
    if cfg.dropout is not None:
        for layer in net.layers:
            if isinstance(layer, Dropout):
                layer.p = cfg.dropout       # checked by check_config (check_dropout_p)
    net.to(cfg.device)  # before the optimizer state is loaded: velocities go where the weights are
    opt = SGD(net, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.lr_mult)
    sched = _make_schedule(cfg, opt)
    if ckpt is None and cfg.init_from:
        log(_init_from(net, cfg.init_from))
    if ckpt is None:
        mean = mean_image(train_set.images)
        epoch, step, sums = 0, 0, {"loss": 0.0, "correct": 0, "seen": 0, "time": 0.0}
        run.clear_metrics()
    else:
        m = ckpt["meta"]
        net.load_state_dict(ckpt["net"])
        opt.load_state_dict(ckpt["opt"])
        _restore_schedule(cfg, m["config"], opt, sched, m.get("schedule"))
        mean = ckpt["mean"]
        epoch, step, sums = m["epoch"], m["step"], m["sums"]
        if writer:
            run.trim_metrics(epoch)
    if writer:
        run.write_config(dataclasses.asdict(cfg))
        run.save_mean(mean)

    train_loader = (BatchLoader if team is None else team.train_loader)(
        train_set, mean, crop, cfg.batch_size, cfg.seed, cfg.prefetch, cfg.input_scale)
    eval_loader = lambda ds: BatchLoader(ds if team is None else team.shard(ds), mean, crop,  # noqa: E731
                                         cfg.batch_size, cfg.seed, cfg.prefetch, cfg.input_scale)
    val_loader = eval_loader(val_set)
    hold_loader = None if hold_set is None else eval_loader(hold_set)
    steps = train_loader.steps_per_epoch()
    reduce_grads, sync_every = None, SYNC_EVERY
    if team is not None:
        team.share_net(net)
        reduce_grads = distributed.GradBuckets(net, team)
        sync_every = team.sync_every(cfg.device, SYNC_EVERY)
    log(f"{cfg.arch} (width {cfg.width}, {net.num_params():,} params) on {cfg.data}: "
        f"{len(train_set)} train / "
        + (f"{len(hold_set)} held-out / " if hold_set is not None else "")
        + f"{len(val_set)} val, {train_set.num_classes} classes, "
        f"stored {size}px, crop {crop}px, impl {registry.get_impl()}, device {cfg.device}"
        + (f"; resuming at epoch {epoch + 1} step {step}" if ckpt else "")
        + (f"; data-parallel over {team.size} MPI ranks x {cfg.batch_size // team.size} images"
           f" ({len(reduce_grads)} gradient buckets)" if team else ""))

    def save(ep, st, sums):
        if not writer:
            return
        meta = {"config": dataclasses.asdict(cfg), "epoch": ep, "step": st, "sums": sums,
                "schedule": sched.state_dict() if sched is not None else None,
                "classes": train_set.classes}
        run.save(net, opt, mean, meta)

    def sync(step):
        """A sync point: read the running sums, stop on a non-finite loss, show them on the bar.
        A NaN in any step makes the summed loss NaN, so checking the sum covers every step."""
        if sums_now.synced_step == step:
            return                        # nothing new since the last read
        first = sums_now.synced_step + 1
        s = sums_now.sync(step)
        if not math.isfinite(s["loss"]):
            raise _diverged(s["loss"], epoch + 1, first, step, opt.lr, run)
        if bar:
            bar.update(step, loss=s["loss"] / s["seen"], acc=s["correct"] / s["seen"],
                       ips=s["seen"] / max(1e-9, s["time"]))

    metrics = None
    # A diverging step overflows and spreads NaN through every later op; NumPy would warn at
    # each of them. The loss check at the next sync point reports it once, with where it
    # happened, so the warnings add nothing.
    with _StopFlag() as stop, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        while epoch < cfg.epochs:
            net.train()
            bar = Progress(steps, f"epoch {epoch + 1}/{cfg.epochs}") if cfg.progress else None
            sums_now = _RunningSums(sums, cfg.device, step, team)
            batches = train_loader.train_batches(epoch, start_step=step)
            try:
                try:
                    # A step only queues device work: nothing is read back on the host (on a GPU
                    # a read would wait for the step) except at the sync points below. The hook
                    # gets no sums, so it needs none.
                    for x, y in batches:
                        if team is not None:   # every rank stops at the same step
                            stop.requested = team.any(stop.requested)
                        if stop.requested:
                            break
                        yd = backend.to_device(y, cfg.device)
                        loss, probs = train_step(net, opt, backend.to_device(x, cfg.device), yd,
                                                 cfg.renorm_radius, reduce_grads)
                        step += 1
                        sums_now.add(loss, probs, yd)
                        # (ranks read at the same steps: rank 0's bar alone must not decide)
                        if step - sums_now.synced_step >= sync_every or (
                                bar and team is None and bar.due(step)):
                            sync(step)
                        if step_hook is not None:
                            try:
                                step_hook(epoch, step, net)
                            except KeyboardInterrupt as e:
                                if team is None or isinstance(e, HardStop):
                                    raise
                                stop.requested = True   # agreed at the next step
                    batches.close()   # here, where a second Ctrl-C reaches us (see _StopFlag)
                except HardStop:
                    raise
                except KeyboardInterrupt:
                    stop.requested = True  # raised at a step boundary (e.g. by a hook): save below
                stop.check_hard()
                if team is not None:
                    stop.requested = team.any(stop.requested)
                # Epoch end or interrupt: the metrics, the checkpoint and the bar's last line need
                # the sums, and a NaN must stop the run before a checkpoint is written.
                sync(step)
            finally:
                batches.close()
                if bar:
                    bar.close()
            res = None if stop.requested else evaluate(net, val_loader, cfg.ten_crop, cfg.device,
                                                       lambda: stop.requested, team)
            if res is not None and hold_loader is not None:
                held = evaluate(net, hold_loader, cfg.ten_crop, cfg.device,
                                lambda: stop.requested, team)
                res = None if held is None else dict(
                    res, **{"holdout" + k[3:]: v for k, v in held.items()})
            stop.check_hard()
            if res is None:
                save(epoch, step, sums_now.host)
                log(f"interrupted: saved {run.last_path} at epoch {epoch + 1} step {step}; "
                    f"continue with --resume --out {cfg.out}")
                return {"status": "interrupted", "epoch": epoch, "step": step, "metrics": metrics}
            sums = sums_now.host
            metrics = {"epoch": epoch + 1, "lr": opt.lr,
                       "train_loss": sums["loss"] / max(1, sums["seen"]),
                       "train_top1": sums["correct"] / max(1, sums["seen"]),
                       "images_per_s": sums["seen"] / max(1e-9, sums["time"]),
                       "train_time_s": sums["time"], "ten_crop": cfg.ten_crop, **res,
                       **_conv1_structure(net)}
            if sched is not None:   # the held-out images decide when there are any
                sched.step(1.0 - res["holdout_top1" if hold_loader else "val_top1"])
            epoch, step = epoch + 1, 0
            sums = {"loss": 0.0, "correct": 0, "seen": 0, "time": 0.0}
            if team is not None:
                team.check_in_step(net)
            save(epoch, 0, sums)
            if writer:
                run.keep_epoch(epoch, cfg.epochs)
                run.append_metrics(metrics)
            log(f"epoch {epoch}: train loss {metrics['train_loss']:.4f} top-1 "
                f"{metrics['train_top1']:.4f} | val loss {res['val_loss']:.4f} top-1 "
                f"{res['val_top1']:.4f} top-5 {res['val_top5']:.4f} | "
                + (f"held-out top-1 {res['holdout_top1']:.4f} | " if hold_loader else "")
                + (f"conv1 structure {metrics['conv1_structure']:.3f} | "
                   if "conv1_structure" in metrics else "")
                + f"{metrics['images_per_s']:.0f} img/s, lr {opt.lr:g}")
    return {"status": "done", "epoch": epoch, "step": 0, "metrics": metrics}


def _conv1_structure(net) -> dict:
    """{'conv1_structure': mean spectral concentration of the first layer's filters} when it
    is a colour convolution (:func:`zfraw.viz.filters.spectral_concentration`), else {}: the
    number that says, epoch by epoch, whether the first layer is learning patterns."""
    from .viz.filters import spectral_concentration

    first = next((layer for layer in net.layers if "W" in layer.params), None)
    W = None if first is None else first.params["W"]
    if W is None or W.ndim != 4 or W.shape[1] != 3:
        return {}
    return {"conv1_structure": float(spectral_concentration(backend.to_host(W)).mean())}


def _init_from(net, source) -> str:
    """Copy into ``net`` every parameter of the checkpoint ``source`` (a .npz, or a run folder's
    newest) with the same name and shape, except the classifier (the last layer), which keeps
    its fresh initialisation. Returns a line saying what was copied."""
    from pathlib import Path

    path = Path(source)
    run = RunDir(path if path.is_dir() else path.parent)
    state, path = run.load(None if path.is_dir() else path, flag="--init-from")
    classifier = net.layers[-1].name
    copied, skipped = [], []
    for name, p, _ in net.params_and_grads():
        value = state["net"].get(name)
        if name.startswith(classifier + ".") or value is None or value.shape != p.shape:
            skipped.append(name)
            continue
        p[...] = backend.get_array_module(p).asarray(value, dtype=p.dtype)
        copied.append(name)
    if not copied:
        raise RunError(f"--init-from {path}: no parameter of this {net.arch} matches the "
                       "checkpoint's names and shapes")
    return (f"initialised {len(copied)} parameters from {path} ({', '.join(copied)}); "
            f"fresh: {', '.join(skipped)}")


def _restore_schedule(cfg: TrainConfig, saved_cfg: dict, opt, sched, state) -> None:
    """Bring the optimizer's learning rate and the schedule back to the checkpoint's, then apply
    what the resume changed: a new schedule starts fresh; a new --lr becomes the current rate
    (the schedule goes on from it)."""
    same_schedule = (cfg.schedule, cfg.lr_step) == (saved_cfg.get("schedule"),
                                                    saved_cfg.get("lr_step"))
    if sched is not None and state is not None and same_schedule:
        sched.load_state_dict(state)
    if cfg.lr != saved_cfg.get("lr"):
        opt.lr = cfg.lr
        if isinstance(sched, StepLR):   # so that its next step keeps the new rate's scale
            sched.base_lr = cfg.lr / sched.gamma ** (sched.epoch // sched.step_size)
    elif sched is not None and not same_schedule and isinstance(sched, StepLR):
        sched.base_lr = opt.lr
