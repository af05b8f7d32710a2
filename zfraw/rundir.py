"""The run folder: its layout, its lock and its checks, in one place.

Training (:mod:`zfraw.training`) writes a run folder and the report and the experiments read it;
both go through this module, so the layout is stated once::

    config.json          the run's configuration (TrainConfig as JSON)
    metrics.jsonl        one JSON line per finished epoch
    mean.npy             the training set's per-pixel mean image, float32 (S, S, 3)
    last.npz             the latest checkpoint (epoch end, or mid-epoch after Ctrl-C)
    epoch-NNN.npz        kept for the epochs of the paper's Fig. 4 (1, 2, 5, 10, 20, 30, 40, 64)
                         and the final epoch of the run
    predictions/val-epoch-NNN.npz
                         per validation image at each epoch's end: the top-1 class and the
                         true class's rank (0: top-1), int16, so two runs on the same images
                         can be compared image by image afterwards
    .lock                held (flock) by the one training that writes the folder
    report/              written by ``python -m zfraw.report``

The rules that keep a run from losing work:

- Every file is replaced atomically (:mod:`zfraw.atomic`: temporary file, fsync, rename), and a
  temporary file is removed on every failure path.
- One writer at a time: a training holds an exclusive ``flock`` on ``.lock`` while it runs. The
  OS releases it when the process dies, however it dies, so a killed run never leaves a stale
  lock behind; a second training into the same folder is refused while the first one runs.
- A folder that holds a run (a checkpoint) is never overwritten silently: a new training there
  is refused unless it resumes the run or asks, with ``overwrite``, for the old files to be
  removed first (never a mix of two runs). A folder whose run never reached a checkpoint (the
  first epoch was interrupted or diverged) holds nothing to lose and is started over.
- A damaged checkpoint is named with its path, and the newest intact one is offered; a
  checkpoint of another run is named as that, not blamed on the data.
- A write that fails (a full disk) names the file and says what was kept; an append to
  metrics.jsonl that fails is undone. A torn last line of metrics.jsonl (a process killed in the
  middle of an append) is ignored by readers and dropped by the next training that resumes the
  run (the checkpoint is the truth), which keeps the file as it was in metrics.jsonl.torn; each
  says so in one line.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

from .atomic import TEMPORARY, atomic_open, atomic_path, atomic_write_text, remove_quietly
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint, write_error

CONFIG, METRICS, MEAN, LAST, LOCK, REPORT = ("config.json", "metrics.jsonl", "mean.npy",
                                             "last.npz", ".lock", "report")
PREDICTIONS = "predictions"
TORN = METRICS + ".torn"     # metrics.jsonl as it was before its torn last line was dropped
FIG4_EPOCHS = (1, 2, 5, 10, 20, 30, 40, 64)
EPOCH_FILE = re.compile(r"^epoch-(\d+)\.npz$")
# The settings that make a checkpoint another run's when they differ from the run's config.
RUN_DEFINING = ("arch", "width", "data", "resize", "input_scale")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


_TOLD = set()   # (metrics file, torn text) already said by a reader in this process


@contextmanager
def _writing(path: Path, kept: str | None = None):
    """Name ``path`` and what was kept in the OSError of a failed write (a full disk)."""
    try:
        yield
    except OSError as e:
        raise write_error(path, e, kept or (f"the previous {path.name} is unchanged"
                                            if path.exists() else
                                            f"no {path.name} was written")) from None


class RunError(ValueError):
    """A user error about a run folder (refused overwrite, busy, damaged, not a run); the
    message is one line that says what to do."""


def check_out_folder(path, flag: str = "--out") -> None:
    """Refuse (ValueError, one line) an output folder that can never be created: a file, or a
    path under a file. Creates nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is a file, not a folder; choose another {flag}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{flag} {path} is under {parent}, which is a file, not a "
                                 f"folder; choose another {flag}")
            break


class RunDir:
    """One run folder. ``RunDir(path)`` touches nothing on disk; the writers below do."""

    def __init__(self, path):
        self.path = Path(path)
        self._lock_file = None

    def __repr__(self):
        return f"RunDir({str(self.path)!r})"

    # -- names ---------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def mean_path(self) -> Path:
        return self.path / MEAN

    @property
    def last_path(self) -> Path:
        return self.path / LAST

    @property
    def report_path(self) -> Path:
        return self.path / REPORT

    def epoch_path(self, epoch: int) -> Path:
        return self.path / f"epoch-{epoch:03d}.npz"

    # -- what is there -------------------------------------------------------------------------
    def epoch_checkpoints(self) -> list:
        """[(epoch, path)] of the run's epoch-NNN.npz files, oldest first."""
        if not self.path.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.path.iterdir()
                 if (m := EPOCH_FILE.match(p.name))]
        return sorted(found)

    def checkpoints(self) -> list:
        """Every checkpoint, newest first: last.npz (if present), then epoch-NNN.npz by epoch."""
        found = [self.last_path] if self.last_path.is_file() else []
        return found + [p for _, p in reversed(self.epoch_checkpoints())]

    def run_files(self) -> list:
        """The files of the layout present in the folder (temporary files included)."""
        if not self.path.is_dir():
            return []
        names = {CONFIG, METRICS, MEAN, LAST, TORN}
        return sorted(p for p in self.path.iterdir() if p.is_file() and (
            p.name in names or EPOCH_FILE.match(p.name) or TEMPORARY.search(p.name)))

    def has_checkpoint(self) -> bool:
        return bool(self.checkpoints())

    def is_run(self) -> bool:
        """Whether the folder holds a run's files (a config or a checkpoint)."""
        return self.config_path.is_file() or self.has_checkpoint()

    # -- the writer's lock ---------------------------------------------------------------------
    def lock(self) -> "RunDir":
        """Create the folder if needed and take the writer's lock, or raise :class:`RunError`
        when another process holds it. Use as ``with run.lock(): ...``; released on exit, and
        by the OS when the process dies."""
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"--out {self.path} is a file, not a folder; choose another --out")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            f = open(self.path / LOCK, "a+")
        except OSError as e:
            raise RunError(f"cannot write the run folder {self.path}: {e.strerror}; "
                           "choose another --out") from None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunError(f"{self.path} is in use: a training ({holder}) is writing to it; "
                               "wait for it to finish or choose another --out") from None
            raise
        f.truncate(0)
        f.write(f"pid {os.getpid()}\n")
        f.flush()
        self._lock_file = f
        return self

    def unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()      # closing the file releases the flock
            self._lock_file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.unlock()

    # -- starting ------------------------------------------------------------------------------
    def start_new(self, overwrite: bool = False) -> list:
        """Make the locked folder ready for a new run. A run with a checkpoint is refused unless
        ``overwrite``, which removes every file of the old run (and its report) first. A folder
        holding files that are not a run's is refused (a new run never mixes into them, and
        ``overwrite`` never deletes them). Returns the paths removed."""
        files = self.run_files()
        others = sorted(p.name for p in self.path.iterdir()
                        if p.name not in (LOCK, REPORT, PREDICTIONS) and p not in files)
        if others:
            raise RunError(f"--out {self.path} is not empty and is not a run folder (it holds "
                           f"{', '.join(others[:3])}{', ...' if len(others) > 3 else ''}); "
                           "choose a new or empty --out")
        if self.has_checkpoint() and not overwrite:
            done = self.epochs_done()
            raise RunError(f"{self.path} already holds a run ({done} epoch(s) done); continue it "
                           f"with --resume --out {self.path}, or start over with a new --out or "
                           "with --overwrite (which deletes the old run's files first)")
        removed = files + ([self.report_path] if overwrite and self.report_path.exists() else [])
        for p in files:
            p.unlink()
        if self.predictions_dir.is_dir():      # the old run's: never mixed with the new one's
            removed.append(self.predictions_dir)
            shutil.rmtree(self.predictions_dir)
        if overwrite and self.report_path.exists():
            shutil.rmtree(self.report_path)
        return removed

    def epochs_done(self) -> int:
        """Finished epochs according to metrics.jsonl (0 when it has none)."""
        try:
            return max((r.get("epoch", 0) for r in self.read_metrics()), default=0)
        except RunError:
            return 0

    def remove_temporaries(self) -> None:
        """Remove left-over temporary files of this module and of checkpoint writes."""
        for p in self.run_files():
            if TEMPORARY.search(p.name):
                remove_quietly(str(p))

    # -- config and metrics --------------------------------------------------------------------
    def write_config(self, config: dict) -> None:
        with _writing(self.config_path):
            atomic_write_text(self.config_path, json.dumps(config, indent=1) + "\n")

    def read_config(self) -> dict:
        """The run's config.json as a dict; :class:`RunError` when the folder is not a run."""
        if not self.path.is_dir():
            raise RunError(f"{self.path}: no such run folder")
        if not self.config_path.is_file():
            raise RunError(f"{self.path} is not a training run folder (no {CONFIG})")
        try:
            config = json.loads(self.config_path.read_text())
        except (ValueError, OSError) as e:
            raise RunError(f"{self.config_path} is unreadable ({e})") from None
        if not isinstance(config, dict) or "arch" not in config:
            raise RunError(f"{self.config_path} is not a zfraw run configuration")
        return config

    def _parse_metrics(self) -> tuple[list, str | None]:
        """(the records of metrics.jsonl, its torn last line or None). A last line that is not
        JSON is torn (an append cut short: a full disk, a killed process); a bad line before
        it is damage, a :class:`RunError`."""
        if not self.metrics_path.is_file():
            return [], None
        try:
            text = self.metrics_path.read_text(errors="replace")
        except OSError as e:
            raise RunError(f"{self.metrics_path} is unreadable ({e.strerror})") from None
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        records = []
        for k, (n, line) in enumerate(lines):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                if k == len(lines) - 1:
                    return records, line
                raise RunError(f"{self.metrics_path}, line {n}: not JSON ({e})") from None
        return records, None

    def read_metrics(self) -> list:
        """The records of metrics.jsonl (empty when the file is missing or empty). A torn last
        line is left out, and said once (the file is not changed: a reader does not hold the
        writer's lock; the next training that resumes the run drops it)."""
        records, torn = self._parse_metrics()
        if torn is not None and (str(self.metrics_path), torn) not in _TOLD:
            _TOLD.add((str(self.metrics_path), torn))
            _say(f"{self.metrics_path}: ignoring its torn last line ({len(torn)} characters "
                 "that are not a whole record: a write cut short, e.g. by a full disk); the "
                 "records before it are read")
        return records

    def append_metrics(self, record: dict) -> None:
        """Add one epoch's record (a whole line in one write, flushed to disk). A write that
        fails (a full disk) is undone: the file is cut back to its previous end, so no torn
        line is left, and the error says that the epoch's checkpoint holds the epoch."""
        data = (json.dumps(record) + "\n").encode()
        kept = (f"{METRICS} is as it was, without epoch {record.get('epoch')}'s record; the "
                f"epoch's checkpoint ({LAST}) was saved before it, so --resume continues from it")
        with _writing(self.metrics_path, kept):
            fd = os.open(self.metrics_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                end = os.lseek(fd, 0, os.SEEK_END)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                except BaseException:
                    try:
                        os.ftruncate(fd, end)   # no torn line: the file as it was
                    except OSError:
                        pass                    # a resume drops the torn line (trim_metrics)
                    raise
            finally:
                os.close(fd)

    def trim_metrics(self, epochs_done: int) -> None:
        """Keep only the records of epochs up to ``epochs_done`` (those after the checkpoint
        being resumed belong to work that is about to be redone). A torn last line is dropped
        (the checkpoint is the truth), the file as it was kept as metrics.jsonl.torn, and that
        said in one line. Called by the writer, with the folder locked."""
        if not self.metrics_path.is_file():
            return
        records, torn = self._parse_metrics()
        if torn is not None:
            copy = self.path / TORN
            with _writing(copy):
                with atomic_open(copy, "wb") as f:
                    f.write(self.metrics_path.read_bytes())
            _say(f"{self.metrics_path}: dropped its torn last line ({len(torn)} characters "
                 "that are not a whole record: a write cut short, e.g. by a full disk); the "
                 f"checkpoint is the truth and the run goes on from it; the file as it was is "
                 f"kept in {copy}")
        kept = [r for r in records if r.get("epoch", 0) <= epochs_done]
        with _writing(self.metrics_path):
            atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))

    def clear_metrics(self) -> None:
        with _writing(self.metrics_path):
            atomic_write_text(self.metrics_path, "")

    # -- per-image predictions -----------------------------------------------------------------
    @property
    def predictions_dir(self) -> Path:
        return self.path / PREDICTIONS

    def predictions_path(self, epoch: int) -> Path:
        return self.predictions_dir / f"val-epoch-{epoch:03d}.npz"

    def save_predictions(self, epoch: int, top1, true_rank, labels) -> None:
        """Keep epoch ``epoch``'s per-image validation results: top-1 class, the true class's
        rank (0 when top-1 is right) and the label, each (N,) in the validation set's order."""
        import numpy as np

        path = self.predictions_path(epoch)
        with _writing(path):
            self.predictions_dir.mkdir(exist_ok=True)
            with atomic_open(path, "wb") as f:
                np.savez(f, top1=np.asarray(top1, np.int16),
                         true_rank=np.asarray(true_rank, np.int16),
                         labels=np.asarray(labels, np.int16))

    def read_predictions(self, epoch: int | None = None) -> dict:
        """{'top1', 'true_rank', 'labels', 'epoch'} of ``epoch`` (default: the last finished
        one); :class:`RunError` when the run kept none for it."""
        import numpy as np

        epoch = self.epochs_done() if epoch is None else epoch
        path = self.predictions_path(epoch)
        try:
            with np.load(path, allow_pickle=False) as z:
                out = {k: z[k].astype(np.int64) for k in ("top1", "true_rank", "labels")}
        except (OSError, ValueError, KeyError) as e:
            raise RunError(f"{path}: no per-image predictions for epoch {epoch} "
                           f"({e.__class__.__name__}); runs trained before they were kept "
                           "have none") from None
        return dict(out, epoch=epoch)

    # -- the mean image ------------------------------------------------------------------------
    def save_mean(self, mean) -> None:
        import numpy as np

        with _writing(self.mean_path), atomic_open(self.mean_path, "wb") as f:
            np.save(f, np.asarray(mean, np.float32))

    # -- checkpoints ---------------------------------------------------------------------------
    def save(self, net, opt, mean, meta: dict) -> None:
        """Write last.npz (atomically)."""
        save_checkpoint(str(self.last_path), net, opt, mean, meta)

    def keep_epoch(self, epoch: int, last_epoch: int) -> None:
        """Keep last.npz as epoch-NNN.npz for the paper's Fig. 4 epochs and the final one: a hard
        link (no copy), which the next replacement of last.npz leaves pointing at this epoch."""
        if epoch in FIG4_EPOCHS or epoch == last_epoch:
            path = self.epoch_path(epoch)
            with _writing(path, f"{LAST} holds epoch {epoch}"), atomic_path(path) as tmp:
                os.link(self.last_path, tmp)

    def load(self, path=None, flag: str = "--resume-from") -> tuple[dict, Path]:
        """Read a checkpoint: ``path``, or the newest one (last.npz, else the newest epoch).
        Returns (checkpoint dict, its path). A damaged file raises :class:`RunError` that names
        it and offers the newest intact checkpoint of the run, to be given with the command
        line option ``flag``."""
        if path is None:
            found = self.checkpoints()
            if not found:
                raise RunError(f"{self.path}: no checkpoint ({LAST} or epoch-NNN.npz)"
                               + ("" if self.is_run() else "; is it a training run folder?"))
            path = found[0]
        path = Path(path)
        try:
            return load_checkpoint(str(path)), path
        except CheckpointError as e:
            raise RunError(f"{e}; {self._offer_intact(path, flag)}") from None

    def _offer_intact(self, damaged: Path, flag: str) -> str:
        """The sentence that offers the newest intact checkpoint other than ``damaged``."""
        for p in self.checkpoints():
            if p.resolve() == damaged.resolve():
                continue
            try:
                load_checkpoint(str(p))
            except CheckpointError:
                continue
            return f"the newest intact checkpoint is {p} (use it with {flag} {p})"
        return "the run has no intact checkpoint"

    def load_net(self, path=None, device: str = "cpu", config: dict | None = None,
                 flag: str = "--checkpoint"):
        """The net of a checkpoint (default: the newest), built from the run's config (arch,
        width; classes read from the checkpoint's last layer), in eval mode on ``device``.
        Returns (net, checkpoint dict, path). ``flag``: as for :meth:`load`."""
        from .nets import build, get_spec

        config = config or self.read_config()
        ckpt, path = self.load(path, flag)
        if path.resolve().parent != self.path.resolve():    # from outside the run's folder
            self._check_own(ckpt, path, config, flag)
        last = get_spec(config["arch"])["layers"][-1][0]
        key = f"{last}.b"
        if key not in ckpt["net"]:
            raise RunError(f"{path}: no {key!r} in the checkpoint; is it a {config['arch']} run?")
        net = build(config["arch"], int(ckpt["net"][key].shape[0]), seed=config.get("seed", 0),
                    width=config.get("width", 1.0))
        try:
            net.load_state_dict(ckpt["net"])
        except (KeyError, ValueError) as e:
            raise RunError(f"{path} does not match the run's {config['arch']} at width "
                           f"{config.get('width', 1.0)}: {e}") from None
        return net.to(device).eval(), ckpt, path

    def _check_own(self, ckpt: dict, path: Path, config: dict, flag: str) -> None:
        """Refuse a checkpoint (from outside the run's folder) whose own config, in its meta
        record, differs from the run's in a setting that defines what the net reads
        (:data:`RUN_DEFINING`): it is another run's, and reading it with this run's data and
        input convention would mislead (and the mismatch would be blamed on the data)."""
        own = ckpt["meta"].get("config")
        if not isinstance(own, dict):
            return
        differ = [k for k in RUN_DEFINING if k in own and k in config and own[k] != config[k]]
        if differ:
            def settings(cfg):
                return ", ".join(f"{k} {cfg[k]}" for k in differ)
            raise RunError(f"{path} is a checkpoint of another run ({own.get('out', 'unknown')}:"
                           f" {settings(own)}), not of {self.path} ({settings(config)}); give "
                           f"{flag} a checkpoint of {self.path}, or use the folder of the run "
                           "it belongs to")

    def final_state(self):
        """(epoch, last.npz) when last.npz holds a whole epoch later than every epoch-NNN.npz
        (the run's final net, which no epoch file keeps unless its epoch was a kept one), else
        None (no last.npz, a mid-epoch save, or an epoch file of the same epoch)."""
        if not self.last_path.is_file():
            return None
        meta = self.load(self.last_path)[0]["meta"]
        kept = [e for e, _ in self.epoch_checkpoints()]
        epoch = int(meta.get("epoch", 0))
        if meta.get("step", 0) or epoch < 1 or (kept and epoch <= kept[-1]):
            return None
        return epoch, self.last_path

    def snapshots(self, device: str = "cpu", config: dict | None = None, final: bool = False):
        """Yields (epoch, net) for every epoch-NNN.npz of the run, oldest first (one net alive
        at a time); with ``final``, then the final net too where no epoch file keeps it
        (:meth:`final_state`: e.g. the paper's Fig. 4 ends with its last epoch, 64)."""
        config = config or self.read_config()
        found = self.epoch_checkpoints()
        last = self.final_state() if final else None
        for epoch, path in found + ([last] if last else []):
            yield epoch, self.load_net(path, device, config)[0]
