"""Streaming top-k per feature map: the k strongest activations of every map over a dataset of
any size, without holding all activations (the selection behind the paper's Fig. 2).

Each batch is reduced to its own k best per map with ``argpartition``, then merged with the k
kept so far, so memory is O(maps * (k + batch * positions)) whatever the dataset size. The
batch's reduction runs where the activations are (on the GPU for CuPy arrays): only its (maps,
k) values and ids are copied to the host. (Where several activations tie at the k-th value, the
GPU's partition may keep another of them than NumPy's.)

Two selections: the k strongest (image, position) pairs (one image may fill several slots,
at neighbouring positions), or, with ``per_image``, each image's strongest position first
and then the k strongest images: k distinct images, as the paper's Fig. 2 shows them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend import get_array_module, to_host


def _top_k_cols(values, k: int):
    """Column indices of the k largest entries of each row of values (C, M), in any order
    (numpy or cupy, following values)."""
    xp = get_array_module(values)
    if values.shape[1] <= k:
        return xp.broadcast_to(xp.arange(values.shape[1]), values.shape).copy()
    return xp.argpartition(-values, k - 1, axis=1)[:, :k]


def _maps_on_device(act):
    """A layer's activation as an (N, C, P) view where it lives (no copy): (N, C, H, W) -> P =
    H*W positions; (N, F) of an fc layer -> F maps with one position each."""
    if act.ndim == 4:
        return act.reshape(act.shape[0], act.shape[1], -1)
    if act.ndim == 2:
        return act[:, :, None]
    raise ValueError(f"activation must be (N, C, H, W) or (N, F), got shape {act.shape}")


def per_image_max(act) -> np.ndarray:
    """Each map's largest activation in each image: (N, C, H, W) or (N, F) -> host (N, C)
    float32, reduced where the activations are (only (N, C) values are copied to the host)."""
    return to_host(_maps_on_device(act).max(axis=2)).astype(np.float32, copy=False)


@dataclass
class TopK:
    """The k strongest activations of each of C maps, sorted strongest first.
    values (C, k) float32 (-inf where fewer than k were seen), image (C, k) int64 dataset index
    (-1 where empty), y, x (C, k) int64 position in the map (0, 0 for fc units)."""
    values: np.ndarray
    image: np.ndarray
    y: np.ndarray
    x: np.ndarray


class StreamingTopK:
    """Keeps the k largest activations of each feature map of one layer over batches.

    >>> tk = StreamingTopK(k=9)
    >>> for start, x in batches: tk.update(net.forward(x, until='relu5'), start)
    >>> best = tk.result()          # TopK with (C, 9) arrays
    """

    def __init__(self, k: int = 9, per_image: bool = False):
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k, self.per_image = k, per_image
        self.values = None  # (C, <=k) float32
        self.ids = None     # (C, <=k) int64 flat id = image * P + position
        self.map_hw = None  # (H, W) of the maps, (1, 1) for fc units

    def update(self, act, first_index: int):
        """Merge one batch. act: (N, C, H, W) or (N, F) activations of images
        first_index .. first_index+N-1 of the dataset."""
        a = _maps_on_device(act)
        xp = get_array_module(a)
        n, c, p = a.shape
        hw = tuple(act.shape[2:]) if act.ndim == 4 else (1, 1)
        if self.map_hw is None:
            self.map_hw = hw
        elif (c, hw) != (self.values.shape[0], self.map_hw):
            raise ValueError(f"batch has {c} maps of {hw}, earlier batches had "
                             f"{self.values.shape[0]} of {self.map_hw}")
        if self.per_image:                                      # each image's best position
            pos = a.argmax(axis=2)                              # (N, C), first maximum
            best = xp.take_along_axis(a, pos[:, :, None], axis=2)[:, :, 0]
            cand = best.T                                       # (C, N)
            cols = _top_k_cols(cand, self.k)
            vals = xp.take_along_axis(cand, cols, axis=1)
            ids = (cols.astype(xp.int64) + first_index) * p \
                + xp.take_along_axis(pos.T, cols, axis=1)       # image*P + its best position
        else:
            cand = a.transpose(1, 0, 2).reshape(c, n * p)       # (C, N*P)
            cols = _top_k_cols(cand, self.k)
            vals = xp.take_along_axis(cand, cols, axis=1)
            ids = cols.astype(xp.int64) + first_index * p      # image*P + pos, as n*P + pos
        # The one copy to the host: (C, k) values and ids, not the batch's activations.
        vals, ids = to_host(vals).astype(np.float32, copy=False), to_host(ids)
        if self.values is not None:
            vals = np.concatenate([self.values, vals], axis=1)
            ids = np.concatenate([self.ids, ids], axis=1)
            keep = _top_k_cols(vals, self.k)
            vals = np.take_along_axis(vals, keep, axis=1)
            ids = np.take_along_axis(ids, keep, axis=1)
        self.values, self.ids = vals, ids

    def state(self) -> dict:
        """What the selection has kept so far, as host arrays (for a pass that saves itself and
        resumes, :mod:`zfraw.atlas.scan`): {'k', 'per_image', 'values', 'ids', 'map_hw'}
        (values, ids and map_hw None before the first batch)."""
        return {"k": self.k, "per_image": self.per_image, "values": self.values,
                "ids": self.ids, "map_hw": self.map_hw}

    @classmethod
    def from_state(cls, state: dict) -> "StreamingTopK":
        """The selection :meth:`state` saved, ready for the next batch: merging the rest of the
        batches into it gives what one uninterrupted pass gives."""
        tk = cls(int(state["k"]), bool(state["per_image"]))
        if state["values"] is not None:
            tk.values = np.asarray(state["values"], np.float32)
            tk.ids = np.asarray(state["ids"], np.int64)
            tk.map_hw = tuple(int(v) for v in state["map_hw"])
        return tk

    def result(self) -> TopK:
        """The kept activations, strongest first (ties broken by smaller dataset id)."""
        if self.values is None:
            raise ValueError("StreamingTopK.result: no batch was given")
        c, m = self.values.shape
        order = np.lexsort((self.ids, -self.values), axis=1) if m else np.zeros((c, 0), int)
        vals = np.take_along_axis(self.values, order, axis=1)
        ids = np.take_along_axis(self.ids, order, axis=1)
        pad = self.k - m
        if pad:
            vals = np.concatenate([vals, np.full((c, pad), -np.inf, np.float32)], axis=1)
            ids = np.concatenate([ids, np.full((c, pad), -1, np.int64)], axis=1)
        h, w = self.map_hw
        pos = np.where(ids >= 0, ids % (h * w), 0)
        image = np.where(ids >= 0, ids // (h * w), -1)
        return TopK(values=vals.astype(np.float32), image=image, y=pos // w, x=pos % w)


def merge_topk(parts, k: int | None = None) -> TopK:
    """The top ``k`` (default: the parts' k) of several :class:`TopK` results over disjoint
    shards of one dataset (image indices are the dataset's, as each shard's pass gave them),
    strongest first with ties broken by smaller (image, y, x), as :meth:`StreamingTopK.result`
    does: the top k of the shards' top k's is the top k of the whole set, so this equals the
    single pass (a sharded pass over MPI ranks merges with it)."""
    parts = list(parts)
    if not parts:
        raise ValueError("merge_topk: no results to merge")
    k = parts[0].values.shape[1] if k is None else k
    vals, image, y, x = (np.concatenate([getattr(p, f) for p in parts], axis=1)
                         for f in ("values", "image", "y", "x"))
    empty = image < 0                                   # padding slots sort last
    order = np.lexsort((x, y, np.where(empty, np.iinfo(np.int64).max, image),
                        np.where(empty, np.inf, -vals.astype(np.float64))), axis=1)[:, :k]
    take = lambda a: np.take_along_axis(a, order, axis=1)   # noqa: E731
    vals, image, y, x = take(vals), take(image), take(y), take(x)
    if vals.shape[1] < k:                               # fewer slots than k in all the parts
        pad = k - vals.shape[1]
        vals = np.concatenate([vals, np.full((len(vals), pad), -np.inf, np.float32)], axis=1)
        image, y, x = (np.concatenate([a, np.full((len(a), pad), fill, np.int64)], axis=1)
                       for a, fill in ((image, -1), (y, 0), (x, 0)))
    return TopK(values=vals.astype(np.float32), image=image, y=y, x=x)
