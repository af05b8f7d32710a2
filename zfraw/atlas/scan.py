"""The atlas's one streaming pass over the images: for every map of every layer at once, one
forward per batch up to the deepest layer, keeping

- its 9 strongest images, each at its strongest position (the report's Fig. 2 selection:
  :class:`~zfraw.viz.topk.StreamingTopK` with ``per_image``, as ``collect_topk(distinct=True)``
  keeps them), and
- its maximum in every image ((N, C) per layer: firing rates, the distribution of each map's
  maxima, near-duplicate maps; 4 bytes per map and image, 14 MB for 688 maps over 5,000 images).

Resumable: every ``save_every`` images the state (the selections, the maxima so far, the
batches done) is replaced atomically (:mod:`zfraw.atomic`) in ``STATE_DIR`` of the atlas folder,
stamped with a fingerprint of what it is computed from (the net's weights, the layers, the
images, the batch size, the rank count). A re-run with the same inputs goes on after the last
saved batch and ends with exactly what an uninterrupted pass gives (the same batches, merged in
the same order); a state for other inputs is set aside and the pass starts over. Ctrl-C stops
at the next batch boundary and saves (:class:`~zfraw.stopping.StopFlag`); a second Ctrl-C stops
at once, keeping the last saved state.

Sharded over MPI ranks (under ``mpiexec``): rank r forwards the batches that
:func:`zfraw.distributed.dealt_batches` deals it (as ``collect_topk_sharded`` does) and saves
its own state file; at the end the ranks' selections are merged exactly
(:func:`~zfraw.viz.topk.merge_topk`) and their maxima put back in image order, on every rank.
"""
from __future__ import annotations

import hashlib
import json
import math
import resource
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import distributed
from ..atomic import atomic_open, remove_quietly
from ..backend import to_device, to_host
from ..progress import Progress
from ..stopping import StopFlag
from ..viz.topk import StreamingTopK, merge_topk, per_image_max

STATE_DIR = ".pass"      # in the atlas folder; removed once the atlas is written


class Stopped(KeyboardInterrupt):
    """Ctrl-C stopped the pass at a batch boundary, after saving: ``done`` of ``total``
    images are in the saved state."""

    def __init__(self, done: int, total: int, path: Path):
        super().__init__(f"stopped after {done} of {total} images; the pass is saved in {path}")
        self.done, self.total, self.path = done, total, path


@dataclass
class Scan:
    """The pass's result, the same on every rank."""
    topk: dict          # {layer: TopK}: k distinct images per map, strongest first
    maxima: dict        # {layer: (N, C) float32}: each map's maximum in each image
    images: int         # N
    ranks: int          # MPI ranks that shared the pass
    seconds: float      # this run's time in the pass (the work of earlier, interrupted runs
    #                     not counted)
    resumed_at: int     # images found done in a saved state (0: a fresh pass)
    peak_mib: list      # peak resident memory of each rank's process at the end of the pass


def fingerprint(net, source, layers, k: int, batch_size: int, ranks: int) -> str:
    """What a saved state is valid for: the net's weights, the layers, k, the batch size, the
    rank count, and the images (their number, labels, and the first and last as the net sees
    them: the input convention included). A hex digest."""
    h = hashlib.sha256()
    n = len(source)
    h.update(json.dumps({"layers": list(layers), "k": k, "batch_size": batch_size,
                         "ranks": ranks, "images": n}).encode())
    for name, p, _ in net.params_and_grads():
        h.update(name.encode())
        h.update(np.ascontiguousarray(to_host(p)).tobytes())
    h.update(np.asarray(source.labels, np.int64).tobytes())
    h.update(np.ascontiguousarray(source.inputs([0, n - 1])).tobytes())
    return h.hexdigest()


class MapState:
    """One rank's share of the pass: a :class:`StreamingTopK` and the per-image maxima of each
    layer, over its first ``done`` batches."""

    def __init__(self, layers, k: int):
        self.layers = list(layers)
        self.keep = {name: StreamingTopK(k, per_image=True) for name in self.layers}
        self.maxima = {name: [] for name in self.layers}   # (n, C) host arrays, batch order
        self.done = 0

    def update(self, acts: dict, start: int) -> None:
        """Merge one batch's activations ({layer: (n, C, H, W) or (n, F)}) of images start..."""
        for name in self.layers:
            self.keep[name].update(acts[name], start)
            self.maxima[name].append(per_image_max(acts[name]))
        self.done += 1

    def save(self, path: Path, stamp: str) -> None:
        """Replace ``path`` by this state, atomically."""
        arrays = {"fingerprint": np.array(stamp), "done": np.array(self.done),
                  "layers": np.array(json.dumps(self.layers))}
        for i, name in enumerate(self.layers):
            st = self.keep[name].state()
            arrays[f"k{i}"] = np.array(st["k"])
            if st["values"] is not None:
                arrays[f"values{i}"], arrays[f"ids{i}"] = st["values"], st["ids"]
                arrays[f"hw{i}"] = np.array(st["map_hw"])
                arrays[f"maxima{i}"] = np.concatenate(self.maxima[name])
                arrays[f"rows{i}"] = np.array([len(m) for m in self.maxima[name]])
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: Path, stamp: str, layers, k: int):
        """The state saved at ``path`` if it is for these inputs (``stamp``), else None (and
        a line saying why, when there is a file)."""
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["fingerprint"]) != stamp or json.loads(str(z["layers"])) != list(layers):
                    _say(f"atlas: {path} is the pass of another net, other images or other "
                         "settings; starting the pass over")
                    return None
                state = cls(layers, k)
                state.done = int(z["done"])
                for i, name in enumerate(state.layers):
                    if f"values{i}" not in z:
                        continue
                    state.keep[name] = StreamingTopK.from_state(
                        {"k": int(z[f"k{i}"]), "per_image": True, "values": z[f"values{i}"],
                         "ids": z[f"ids{i}"], "map_hw": z[f"hw{i}"]})
                    rows = np.cumsum(z[f"rows{i}"])[:-1]
                    state.maxima[name] = np.split(z[f"maxima{i}"], rows)
                return state
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            _say(f"atlas: {path} is damaged ({e.__class__.__name__}); starting the pass over")
            return None

    def result(self):
        """({layer: TopK or None}, {layer: [(n, C)]}) of this rank's batches."""
        return ({name: tk.result() if tk.values is not None else None
                 for name, tk in self.keep.items()}, self.maxima)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def peak_mib() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def scan(net, source, layers, state_dir, *, k: int = 9, batch_size: int = 64,
         save_every: int = 1000, team=None, progress: bool = True) -> Scan:
    """The pass over every image of ``source`` for ``layers`` (see the module's docstring);
    ``state_dir``: where each rank keeps its saved state. Raises :class:`Stopped` after a
    Ctrl-C (the state saved), :class:`~zfraw.stopping.HardStop` after a second one."""
    team = team or distributed.team()
    rank, size = team.rank, team.size
    layers = list(layers)
    deepest = max(layers, key=net.index)
    n = len(source)
    mine = distributed.dealt_batches(n, batch_size, rank, size)
    rounds = len(distributed.dealt_batches(n, batch_size, 0, size))   # rank 0 has the most
    stamp = fingerprint(net, source, layers, k, batch_size, size)
    path = Path(state_dir) / f"rank-{rank}-of-{size}.npz"
    state = MapState.load(path, stamp, layers, k) or MapState(layers, k)
    if len(set(team.allgather(state.done))) > 1:     # a rank saved a batch the others did not
        if rank == 0:
            _say("atlas: the ranks' saved passes stopped at different batches; starting over")
        state = MapState(layers, k)
    resumed = min(n, state.done * size * batch_size)
    if resumed and rank == 0:
        _say(f"atlas: resuming the pass after image {resumed} of {n} (saved in {path.parent})")
    every = max(1, math.ceil(save_every / (batch_size * size)))   # rounds between saves
    bar = Progress(n, "atlas pass", unit="img", initial=resumed) if progress and rank == 0 \
        else None
    net.eval()
    t0 = time.perf_counter()
    try:
        with StopFlag() as stop:
            for r in range(state.done, rounds):
                if r < len(mine):
                    start, end = mine[r]
                    x = source.inputs(np.arange(start, end))
                    _, acts = net.forward(to_device(x, net.device), until=deepest,
                                          capture=layers)
                    state.update(acts, start)
                else:
                    state.done += 1                      # this rank's share has ended
                stop.check_hard()
                stop.agree(team)                         # every rank stops at the same batch
                seen = min(n, (r + 1) * size * batch_size)
                if bar is not None:
                    bar.update(seen)
                if stop.requested or (r + 1) % every == 0 or r + 1 == rounds:
                    stop.check_hard()
                    state.save(path, stamp)
                if stop.requested:
                    raise Stopped(seen, n, path.parent)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    parts = team.allgather((state.result(), mine, peak_mib()))
    topk, maxima = {}, {}
    for name in layers:
        found = [p[0][0][name] for p in parts if p[0][0][name] is not None]
        topk[name] = found[0] if len(found) == 1 else merge_topk(found, k)
        rows = [(s, m) for p in parts for (s, _), m in zip(p[1], p[0][1][name])]
        maxima[name] = np.concatenate([m for _, m in sorted(rows, key=lambda sm: sm[0])])
    return Scan(topk=topk, maxima=maxima, images=n, ranks=size, seconds=seconds,
                resumed_at=resumed, peak_mib=[p[2] for p in parts])


def remove_state(state_dir) -> None:
    """Remove the saved pass once the atlas is written (by rank 0: every rank saved its last
    state before the ranks' results were gathered, and touches it no more)."""
    state_dir = Path(state_dir)
    for p in state_dir.glob("rank-*-of-*.npz"):
        remove_quietly(p)
    try:
        state_dir.rmdir()
    except OSError:
        pass
