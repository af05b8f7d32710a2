"""Frozen features of a trained net, computed once per image and cached (Tables 4, 5, 7, Fig. 9).

A net's features at a layer are its activations there on the evaluation view of each image
(centre crop minus the net's training mean, times its input scale: zfraw.data's ``eval_view``),
with no gradient and dropout off. Conv maps are max-pooled to a ``grid`` x ``grid`` layout per
map (the paper's Table 7 classifies pooled conv maps), so a layer-1 feature vector stays small.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .. import backend
from ..atomic import atomic_open
from ..checkpoint import write_error

# What reading a damaged .npz raises (as zfraw.checkpoint reads its own): a cut or overwritten
# zip, a CRC error, bad compressed data, a mangled array header.
_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError)


def grid_max_pool(maps: np.ndarray, grid: int) -> np.ndarray:
    """(N, C, H, W) -> (N, C * grid * grid): the max of each map over a grid x grid partition
    (cells of floor/ceil sizes, covering the map exactly; grid <= H, W)."""
    n, c, h, w = maps.shape
    g = min(grid, h, w)
    ys, xs = np.linspace(0, h, g + 1).astype(int), np.linspace(0, w, g + 1).astype(int)
    cells = [maps[:, :, ys[i]:ys[i + 1], xs[j]:xs[j + 1]].max(axis=(2, 3))
             for i in range(g) for j in range(g)]
    return np.stack(cells, axis=2).reshape(n, -1)


def layer_features(net, source, layers, grid: int = 2, batch_size: int = 64) -> dict:
    """{layer: float32 (N, D)} for every image of ``source`` (an ImageSource), in one pass per
    batch up to the deepest layer."""
    order = sorted(layers, key=net.index)
    out = {name: [] for name in order}
    net.eval()
    for _, x in source.batches(batch_size):
        _, acts = net.forward(backend.to_device(x, net.device), until=order[-1], capture=order)
        for name in order:
            a = backend.to_host(acts[name]).astype(np.float32)
            out[name].append(grid_max_pool(a, grid) if a.ndim == 4 else a.reshape(len(a), -1))
    return {name: np.concatenate(v) for name, v in out.items()}


def _read_cached(path: Path, layers) -> dict:
    """The features stored at ``path`` (every array read, so every CRC checked); raises one of
    :data:`_DAMAGE` when the file is damaged or lacks one of ``layers``."""
    with np.load(path, allow_pickle=False) as z:
        feats = {k: z[k] for k in z.files}
    missing = [name for name in layers if name not in feats]
    if missing:
        raise KeyError(f"no features of {', '.join(missing)}")
    return feats


def cached_features(cache_dir, key: dict, compute, log=print) -> dict:
    """``compute()`` -> {layer: (N, D)}, stored under ``cache_dir`` by a hash of ``key`` (a
    JSON-able description: checkpoint, data, split, layers, grid) and read back next time. A
    damaged file (a disk that filled or a copy cut short) is recomputed and replaced, and that
    said in one line with ``log``."""
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"features-{digest}.npz"
    if path.is_file():
        try:
            return _read_cached(path, key.get("layers", []))
        except _DAMAGE as e:
            log(f"{path} is damaged ({type(e).__name__}: {' '.join(str(e).split())}); "
                "computing the features again and replacing it")
    feats = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as f:
            np.savez(f, **feats)
    except OSError as e:
        raise write_error(path, e, "the features were not cached; nothing half-written is "
                          "left") from None
    return feats
