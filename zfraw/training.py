"""The training loop behind ``train.py``: SGD with momentum, the paper's filter renormalization
after every step, validation top-1/top-5 each epoch, metrics and checkpoints in a run folder
(:mod:`zfraw.rundir` owns its layout, its lock and the refusals that keep a run from being lost).

The step itself, :func:`train_step`, is the one the step benchmark times.

One path for a plain process and for every rank of an MPI job (:mod:`zfraw.distributed`; a plain
process is a team of one): :func:`train` has rank 0 check and lock the run folder, then a
:class:`_Session` sets up (data, net, optimizer, from the checkpoint when resuming) and goes
epoch by epoch (:meth:`_Session.train_epoch`, :meth:`_Session.validate`,
:meth:`_Session.end_epoch`).

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
import time
from dataclasses import dataclass

import numpy as np

from . import backend, distributed, host, ops
from .data import (BatchLoader, concatenate, hold_out, load_spec, mean_image,
                   mean_per_class_accuracy, stored_size, subset)
from .layers import Dropout
from .nets import build, get_spec
from .ops import registry
from .ops.elementwise import check_dropout_p
from .optim import SCHEMES, SGD, ReduceLROnPlateau, StepLR, renormalize_filters
from .progress import Progress
from .rundir import FIG4_EPOCHS, RunDir, RunError
from .stopping import HardStop, StopFlag

__all__ = ["FIG4_EPOCHS", "HardStop", "RunError", "TrainConfig", "TrainingDiverged",
           "check_config", "evaluate", "resume_config", "train", "train_step"]

SCHEDULES = ("step", "plateau", "none")
# Steps between host reads of the running loss when no progress bar asks for one sooner. A read
# waits for all the work queued on the GPU, so reading every step would stall the host behind the
# device; every 50 steps costs next to nothing, yet a NaN still stops the run within 50 steps.
SYNC_EVERY = 50
# The largest stored side, in multiples of the net's input side: the net sees only the centre
# crop of the stored image, so a larger side only shows a smaller part of each image, while each
# stored image takes side^2 * 3 bytes (1.2 MB at 4 x 224 = 896; 100000 would need 30 GB each).
MAX_RESIZE = 4
# Training images evaluated without augmentation at each epoch's end (train_eval_* metrics).
TRAIN_SAMPLE = 2000


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
    that its results report; ``val_from_train`` moves that many more training images of each
    class (the last ones before the held-out) into the validation set, never trained on nor
    decided on, for a larger validation set than the dataset's own; ``lr_mult`` ({layer: factor}) scales one layer's learning rate
    (Caffe's per-layer lr_mult, :class:`zfraw.optim.SGD`); ``init_scale`` ({layer: factor})
    multiplies one layer's initial weights (conv1=1/16 puts He's conv1 of zf-64 at about the
    paper's N(0, 0.01^2), so that what it learns soon outweighs its random start);
    ``init_bias`` ({layer: value}) starts one layer's biases at a constant (Krizhevsky et al.
    started conv2, conv4, conv5, fc6 and fc7 at 1 so that their ReLUs begin on, not dead)."""

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
    val_from_train: int = 0
    lr_mult: dict | None = None
    init_scale: dict | None = None
    init_bias: dict | None = None


# What a resume may do with each setting. FIXED ones define the run (the net, the data, the
# batches, the function being learned): a resume that asks for another value is refused.
# CHANGEABLE ones may move between sessions: the new value is applied and said. SESSION ones
# only concern this process (where output goes, how data is read) and are taken silently.
FIXED = ("arch", "width", "data", "resize", "seed", "init", "batch_size", "input_scale",
         "dropout", "momentum", "weight_decay", "renorm_radius", "init_from", "holdout", "val_from_train",
         "lr_mult", "init_scale", "init_bias")
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
    need(isinstance(cfg.val_from_train, int) and cfg.val_from_train >= 0,
         f"--val-from-train must be a number of images per class >= 0, got {cfg.val_from_train}")
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
    for name, value in (cfg.init_bias or {}).items():
        need(name in trained, f"--init-bias {name}={value}: {cfg.arch} has no layer {name!r} "
             f"with weights (it has {', '.join(trained)})")
        need(math.isfinite(value), f"--init-bias {name}={value}: the bias must be a finite number")
    crop = spec["input"][1]
    need(cfg.resize is None or cfg.resize <= MAX_RESIZE * crop,
         f"--resize {cfg.resize} is more than {MAX_RESIZE} times the net's {crop}px input (at "
         f"most {MAX_RESIZE * crop}): the net sees only the centre {crop}px of the stored image, "
         f"and each image would take {(cfg.resize or 0) ** 2 * 3 / 1e9:.3g} GB")
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


def _no_sums() -> dict:
    """The running sums of an epoch with no step done yet."""
    return {"loss": 0.0, "correct": 0, "seen": 0, "time": 0.0}


class _RunningSums:
    """An epoch's running train sums (the checkpoint's ``sums``: loss, correct, seen, time).
    Loss and correct count accumulate on the device, in float64 and step after step in the same
    order wherever the reads fall (so the metrics, and a resumed run's, are the same bit for bit);
    the host sees them only at sync points (:meth:`sync`). ``host`` holds the last read."""

    def __init__(self, sums: dict, device: str, step: int, team=distributed.SOLO):
        xp = backend.xp_for(device)
        self.host = dict(sums)
        self.team = team   # data-parallel: each rank sums its shares; the reads sum the ranks'
        if not team.root:
            sums = _no_sums()   # the run's sums so far are on rank 0
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
        loss, correct, seen = self.team.sum([*_read_sums(self.acc), self.seen])
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
             team=distributed.SOLO, per_image: bool = False):
    """Top-1/top-5 and mean loss of ``net`` on ``loader``'s set (centre crop or 10-crop with the
    softmax averaged over views). Returns a dict, or None when ``should_stop()`` cut it short;
    with ``per_image``, (that dict, {'top1', 'true_rank', 'labels'}: (N,) each, the true
    class's rank 0 when the top-1 is right). With a data-parallel ``team``, ``loader`` holds this
    rank's shard of the set: the ranks' per-image statistics are gathered in rank order, so
    every rank gets the metrics of the whole set (None on every rank when any rank was
    stopped)."""
    parts = team.allgather(_eval_stats(net, loader, ten, device, should_stop))
    if any(p is None for p in parts):
        return None
    nll, top5, labels, rank = (np.concatenate(field) for field in zip(*parts))
    pred = top5[:, 0]
    metrics = {"val_loss": float(nll.mean()),
               "val_top1": float((pred == labels).mean()),
               "val_top5": float((top5 == labels[:, None]).any(1).mean()),
               "val_class_mean_top1": mean_per_class_accuracy(pred, labels, net.num_classes)}
    if per_image:
        return metrics, {"top1": pred, "true_rank": rank, "labels": labels}
    return metrics


def _eval_stats(net, loader: BatchLoader, ten: bool, device: str, should_stop):
    """Per image of ``loader``'s set: (negative log-likelihood (N,), top-5 classes (N, 5),
    labels (N,), the true class's rank (N,)), host arrays; None when ``should_stop()`` cut the
    pass short."""
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
        return (np.zeros(0, np.float32), np.zeros((0, k), np.int64), np.zeros(0, np.int64),
                np.zeros(0, np.int64))
    probs, labels = backend.to_host(xp.concatenate(probs_all)), np.concatenate(labels_all)
    top5 = np.argsort(-probs, axis=1)[:, :5]
    n = len(labels)
    true = probs[np.arange(n), labels]
    rank = (probs > true[:, None]).sum(axis=1)      # classes ranked above the true one
    return -np.log(np.maximum(true, 1e-12)), top5, labels, rank


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
    its share of each batch. A plain process is the team of one, rank 0 of 1, and takes the
    same path."""
    team = distributed.team()
    run = RunDir(cfg.out)
    cfg, ckpt, early = _agree_on_run(team, run, cfg, resume, asked, overwrite, resume_from, log)
    if not team.root:
        log = _quiet     # rank 0 speaks for the job
    try:
        if early is not None:
            return early
        if cfg.device == "cuda":
            team.use_gpu()
        host.keep_freed_memory()  # each step's large arrays reuse the last step's pages
        with registry.use_impl(cfg.impl or registry.default_impl(cfg.device)):
            try:
                return _Session(cfg, run, ckpt, team, step_hook, log).run()
            except TrainingDiverged as e:   # read from the summed losses: on every rank
                raise distributed.agreed(e)
    finally:
        if team.root:
            run.remove_temporaries()
            run.unlock()


def _quiet(*_) -> None:
    pass


def _agree_on_run(team, run, cfg, resume, asked, overwrite, resume_from, log):
    """Rank 0 checks the settings, takes the folder's lock and makes the checks of a resume
    (:func:`_prepare`); then every rank has (the config to train with, the checkpoint or None,
    the result to return at once or None). An error of rank 0's is raised on every rank, marked
    agreed (so that they exit normally), with the folder unlocked. The checkpoint is not sent:
    the other ranks read it from its path, and train without a progress bar. Rank 0 holds the
    lock when this returns."""
    ckpt = None

    def decide():
        nonlocal ckpt
        check_config(cfg)
        if (resume or resume_from is not None) and not run.path.is_dir():
            raise RunError(f"{run.path}: no such run folder to resume")
        run.lock()
        try:
            chosen, ckpt, path, early = _prepare(cfg, run, resume, asked, overwrite,
                                                 resume_from, log)
            team.check_batch(chosen.batch_size)
        except BaseException:
            run.unlock()
            raise
        return chosen, None if path is None else str(path), early

    chosen, path, early = team.from_root(decide)
    if team.root:
        return chosen, ckpt, early
    if early is None and path is not None:
        ckpt, _ = run.load(path)
    return dataclasses.replace(chosen, progress=False), ckpt, early


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


class _Session:
    """One :func:`train` call on one rank of ``team``, with the folder locked (by rank 0) and
    the impl selected. Set-up (``__init__``): the data, the net, the optimizer and the schedule,
    from the checkpoint ``ckpt`` when there is one. Then :meth:`run` goes epoch by epoch:
    :meth:`train_epoch` steps through one, :meth:`validate` measures the net, :meth:`end_epoch`
    records the metrics and saves, or :meth:`interrupted` saves where a Ctrl-C stopped.

    Only rank 0 (``team.root``) writes the folder; in a data-parallel team each rank trains on
    its share of every batch and evaluates its share of the validation (and held-out) images."""

    def __init__(self, cfg: TrainConfig, run: RunDir, ckpt, team, step_hook, log):
        self.cfg, self.folder, self.team, self.step_hook, self.log = cfg, run, team, step_hook, log
        crop = get_spec(cfg.arch)["input"][1]
        size = stored_size(crop, cfg.resize)
        train_set, val_set = team.root_first(
            lambda: load_spec(cfg.data, size, cfg.seed, cfg.cache_dir, cfg.on_error))
        hold_set = None
        if cfg.holdout:
            train_set, hold_set = hold_out(train_set, cfg.holdout)
        if cfg.val_from_train:
            train_set, moved = hold_out(train_set, cfg.val_from_train)
            val_set = concatenate(val_set, moved)
        if ckpt is not None and ckpt["meta"].get("classes", train_set.classes) != train_set.classes:
            raise RunError(f"{cfg.data} now has classes other than the run's "
                           f"({train_set.num_classes} vs {len(ckpt['meta']['classes'])}); the data "
                           "changed on disk: train into a new --out")
        self.classes = train_set.classes
        self.net = net = _build_net(cfg, train_set.num_classes)
        self.opt = SGD(net, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.lr_mult)
        self.sched = _make_schedule(cfg, self.opt)
        self.metrics = None          # the last finished epoch's
        if ckpt is None:
            if cfg.init_from:
                log(_init_from(net, cfg.init_from))
            self.mean = mean_image(train_set.images)
            self.epoch, self.step, self.sums = 0, 0, _no_sums()
            if team.root:
                run.clear_metrics()
        else:
            m = ckpt["meta"]
            net.load_state_dict(ckpt["net"])
            self.opt.load_state_dict(ckpt["opt"])
            _restore_schedule(cfg, m["config"], self.opt, self.sched, m.get("schedule"))
            self.mean = ckpt["mean"]
            self.epoch, self.step, self.sums = m["epoch"], m["step"], m["sums"]
            if team.root:
                run.trim_metrics(self.epoch)
        if team.root:
            run.write_config(dataclasses.asdict(cfg))
            run.save_mean(self.mean)

        self.train_loader = team.train_loader(train_set, self.mean, crop, cfg.batch_size,
                                              cfg.seed, cfg.prefetch, cfg.input_scale)
        self.val_loader = self._eval_loader(val_set, crop)
        self.hold_loader = None if hold_set is None else self._eval_loader(hold_set, crop)
        # A fixed sample of the training images, seen as the validation images are (no dropout,
        # centre crop): the training error without augmentation, to tell an underfitting net
        # from a converged one.
        sample = np.unique(np.linspace(0, len(train_set) - 1, min(TRAIN_SAMPLE, len(train_set)))
                           .astype(np.int64))
        self.train_sample_loader = self._eval_loader(subset(train_set, sample), crop)
        self.steps = self.train_loader.steps_per_epoch()
        team.share_net(net)
        self.reduce_grads = team.grad_reducer(net)
        self.sync_every = team.sync_every(cfg.device, SYNC_EVERY)
        # A team of one reads the sums whenever its progress bar would redraw; the ranks of a
        # larger team read at the same steps, so rank 0's bar alone must not decide.
        self.bar_reads = team.size == 1
        log(f"{cfg.arch} (width {cfg.width}, {net.num_params():,} params) on {cfg.data}: "
            f"{len(train_set)} train / "
            + (f"{len(hold_set)} held-out / " if hold_set is not None else "")
            + f"{len(val_set)} val, {train_set.num_classes} classes, "
            f"stored {size}px, crop {crop}px, impl {registry.get_impl()}, device {cfg.device}"
            + (f"; resuming at epoch {self.epoch + 1} step {self.step}" if ckpt else "")
            + (f"; data-parallel over {team.size} MPI ranks x {cfg.batch_size // team.size} "
               f"images ({len(self.reduce_grads)} gradient buckets)" if team.size > 1 else ""))

    def _eval_loader(self, data, crop: int) -> BatchLoader:
        cfg = self.cfg
        return BatchLoader(self.team.shard(data), self.mean, crop, cfg.batch_size, cfg.seed,
                           cfg.prefetch, cfg.input_scale)

    def run(self) -> dict:
        """Train from the set-up's epoch and step to ``cfg.epochs``; returns :func:`train`'s
        result."""
        # A diverging step overflows and spreads NaN through every later op; NumPy would warn at
        # each of them. The loss check at the next sync point reports it once, with where it
        # happened, so the warnings add nothing.
        with StopFlag() as stop, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            while self.epoch < self.cfg.epochs:
                sums = self.train_epoch(stop)
                res = None if stop.requested else self.validate(stop)
                stop.check_hard()
                if res is None:
                    return self.interrupted(sums)
                self.end_epoch(sums, res)
        return {"status": "done", "epoch": self.epoch, "step": 0, "metrics": self.metrics}

    def train_epoch(self, stop: StopFlag) -> dict:
        """Step through epoch ``self.epoch`` from step ``self.step`` to its end, or to a stop
        (Ctrl-C: ``stop.requested``, agreed by every rank at the same step). Returns the
        epoch's running sums, read at the last step. Raises :class:`TrainingDiverged` at a sync
        point that reads a non-finite loss, :class:`HardStop` on a second Ctrl-C."""
        cfg, team = self.cfg, self.team
        self.net.train()
        bar = Progress(self.steps, f"epoch {self.epoch + 1}/{cfg.epochs}") if cfg.progress else None
        sums = _RunningSums(self.sums, cfg.device, self.step, team)
        batches = self.train_loader.train_batches(self.epoch, start_step=self.step)
        try:
            try:
                # A step only queues device work: nothing is read back on the host (on a GPU a
                # read would wait for the step) except at the sync points below. The hook gets
                # no sums, so it needs none.
                for x, y in batches:
                    stop.agree(team)   # every rank stops at the same step
                    if stop.requested:
                        break
                    yd = backend.to_device(y, cfg.device)
                    loss, probs = train_step(self.net, self.opt, backend.to_device(x, cfg.device),
                                             yd, cfg.renorm_radius, self.reduce_grads)
                    self.step += 1
                    sums.add(loss, probs, yd)
                    if self.step - sums.synced_step >= self.sync_every or (
                            bar and self.bar_reads and bar.due(self.step)):
                        self._sync(sums, bar)
                    if self.step_hook is not None:
                        try:
                            self.step_hook(self.epoch, self.step, self.net)
                        except KeyboardInterrupt as e:
                            if isinstance(e, HardStop):
                                raise
                            stop.requested = True   # as a Ctrl-C: agreed at the next step
                batches.close()   # here, where a second Ctrl-C reaches us (see StopFlag)
            except HardStop:
                raise
            except KeyboardInterrupt:
                stop.requested = True  # raised at a step boundary: save in run()
            stop.check_hard()
            stop.agree(team)
            # Epoch end or interrupt: the metrics, the checkpoint and the bar's last line need
            # the sums, and a NaN must stop the run before a checkpoint is written.
            self._sync(sums, bar)
        finally:
            batches.close()
            if bar:
                bar.close()
        return sums.host

    def _sync(self, sums: _RunningSums, bar) -> None:
        """A sync point: read the running sums, stop on a non-finite loss, show them on the bar.
        A NaN in any step makes the summed loss NaN, so checking the sum covers every step."""
        if sums.synced_step == self.step:
            return                        # nothing new since the last read
        first = sums.synced_step + 1
        s = sums.sync(self.step)
        if not math.isfinite(s["loss"]):
            raise _diverged(s["loss"], self.epoch + 1, first, self.step, self.opt.lr,
                            self.folder)
        if bar:
            bar.update(self.step, loss=s["loss"] / s["seen"], acc=s["correct"] / s["seen"],
                       ips=s["seen"] / max(1e-9, s["time"]))

    def validate(self, stop: StopFlag) -> dict | None:
        """:func:`evaluate` on the validation images (their per-image results kept as
        ``self.predictions``), with the metrics of the held-out images (``holdout_*``, when
        there are any) and of the training sample (``train_eval_*``) added; None when a Ctrl-C
        cut it short."""
        cfg, should_stop = self.cfg, lambda: stop.requested

        def measure(loader, per_image=False):
            return evaluate(self.net, loader, cfg.ten_crop, cfg.device, should_stop, self.team,
                            per_image)

        got = measure(self.val_loader, per_image=True)
        if got is None:
            return None
        res, self.predictions = got
        for prefix, loader in (("holdout", self.hold_loader),
                               ("train_eval", self.train_sample_loader)):
            if loader is not None:
                more = measure(loader)
                if more is None:
                    return None
                res.update({prefix + k[3:]: v for k, v in more.items()})
        return res

    def save(self, epoch: int, step: int, sums: dict) -> None:
        """Write last.npz (rank 0): the weights, the optimizer and where the run stands."""
        if self.team.root:
            meta = {"config": dataclasses.asdict(self.cfg), "epoch": epoch, "step": step,
                    "sums": sums,
                    "schedule": self.sched.state_dict() if self.sched is not None else None,
                    "classes": self.classes}
            self.folder.save(self.net, self.opt, self.mean, meta)

    def interrupted(self, sums: dict) -> dict:
        """Save where a Ctrl-C stopped the epoch (the resume goes on from that step)."""
        self.save(self.epoch, self.step, sums)
        self.log(f"interrupted: saved {self.folder.last_path} at epoch {self.epoch + 1} step "
                 f"{self.step}; continue with --resume --out {self.cfg.out}")
        return {"status": "interrupted", "epoch": self.epoch, "step": self.step,
                "metrics": self.metrics}

    def end_epoch(self, sums: dict, res: dict) -> None:
        """The finished epoch's metrics (train sums, validation ``res``, conv1's structure),
        the schedule's step (on the held-out images when there are any), the epoch-end
        checkpoint, the metrics line and the log line."""
        cfg, opt = self.cfg, self.opt
        metrics = {"epoch": self.epoch + 1, "lr": opt.lr,
                   "train_loss": sums["loss"] / max(1, sums["seen"]),
                   "train_top1": sums["correct"] / max(1, sums["seen"]),
                   "images_per_s": sums["seen"] / max(1e-9, sums["time"]),
                   "train_time_s": sums["time"], "ten_crop": cfg.ten_crop, **res,
                   **_conv1_structure(self.net)}
        held = self.hold_loader is not None
        if self.sched is not None:   # the held-out images decide when there are any
            self.sched.step(1.0 - res["holdout_top1" if held else "val_top1"])
        self.epoch, self.step, self.sums = self.epoch + 1, 0, _no_sums()
        self.team.check_in_step(self.net)
        self.save(self.epoch, 0, self.sums)
        if self.team.root:
            self.folder.keep_epoch(self.epoch, cfg.epochs)
            self.folder.save_predictions(self.epoch, **self.predictions)
            self.folder.append_metrics(metrics)
        self.log(f"epoch {self.epoch}: train loss {metrics['train_loss']:.4f} top-1 "
                 f"{metrics['train_top1']:.4f} | val loss {res['val_loss']:.4f} top-1 "
                 f"{res['val_top1']:.4f} top-5 {res['val_top5']:.4f} | "
                 + (f"held-out top-1 {res['holdout_top1']:.4f} | " if held else "")
                 + (f"conv1 structure {metrics['conv1_structure']:.3f} | "
                    if "conv1_structure" in metrics else "")
                 + f"{metrics['images_per_s']:.0f} img/s, lr {opt.lr:g}")
        self.metrics = metrics


def _build_net(cfg: TrainConfig, num_classes: int):
    """The freshly initialised net of ``cfg`` (``init_scale``, ``init_bias`` and ``dropout``
    applied), on its
    device: before the optimizer exists, so that its velocities go where the weights are, and
    before any checkpoint is loaded over it."""
    net = build(cfg.arch, num_classes, seed=cfg.seed, init=cfg.init, width=cfg.width)
    for name, factor in (cfg.init_scale or {}).items():
        net.layer(name).params["W"] *= factor
    for name, value in (cfg.init_bias or {}).items():
        net.layer(name).params["b"][...] = value
    if cfg.dropout is not None:
        for layer in net.layers:
            if isinstance(layer, Dropout):
                layer.p = cfg.dropout       # checked by check_config (check_dropout_p)
    net.to(cfg.device)
    return net


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
