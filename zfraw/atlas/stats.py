"""What the atlas says about each map from its per-image maxima (the pass's (N, C) array of a
layer): how often it fires, which maps fire alike, and the shape of its distribution."""
from __future__ import annotations

from collections import Counter

import numpy as np

DUPLICATE_R = 0.95     # two maps whose per-image maxima correlate above this are near-duplicates


def firing_rates(maxima: np.ndarray) -> np.ndarray:
    """(C,) the share of the N images on which each map's maximum is above zero (after the
    ReLU: the map fires somewhere in the image). maxima: (N, C)."""
    return (np.asarray(maxima) > 0).mean(axis=0)


def near_duplicates(maxima: np.ndarray, threshold: float = DUPLICATE_R) -> list:
    """For each map, [(other map, r)] of the maps whose per-image maxima correlate with its own
    above ``threshold`` (Pearson's r over the N images), strongest first. A map whose maxima do
    not vary (a dead map: all 0) correlates with nothing."""
    m = np.asarray(maxima, np.float64)
    c = m.shape[1]
    out = [[] for _ in range(c)]
    live = np.flatnonzero(m.std(axis=0) > 0)
    if len(live) < 2:
        return out
    r = np.corrcoef(m[:, live].T)
    np.fill_diagonal(r, -np.inf)
    for a, b in zip(*np.nonzero(r > threshold)):
        out[int(live[a])].append((int(live[b]), float(r[a, b])))
    for pairs in out:
        pairs.sort(key=lambda p: (-p[1], p[0]))
    return out


def histogram(values: np.ndarray, bins: int = 20):
    """The distribution of one map's per-image maxima: (zeros, counts, edges) with ``zeros`` the
    number of images where it is 0 (the map is silent) and counts (bins,) over the positive
    values between 0 and their maximum (edges (bins + 1,)); no counts where none is positive."""
    v = np.asarray(values, np.float64)
    pos = v[v > 0]
    zeros = int(len(v) - len(pos))
    if not len(pos):
        return zeros, np.zeros(0, np.int64), np.zeros(0)
    counts, edges = np.histogram(pos, bins=bins, range=(0.0, float(pos.max())))
    return zeros, counts, edges


def class_counts(labels, names) -> list:
    """[(class name, count)] of the images' labels, most frequent first (ties: first seen)."""
    counts = Counter(int(c) for c in labels)
    order = {c: i for i, c in enumerate(dict.fromkeys(int(c) for c in labels))}
    return [(str(names[c]) if 0 <= c < len(names) else str(c), n)
            for c, n in sorted(counts.items(), key=lambda cn: (-cn[1], order[cn[0]]))]
