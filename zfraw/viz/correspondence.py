"""Correspondence analysis (the paper's Sec. 5, Table 1 and Fig. 8).

Occlude the same object part (the paper: the left eye, the right eye, the nose) in n images of
one class; eps_i = x_i - x_i_occluded is the change of image i's feature vector at a layer. If
the model implicitly establishes correspondence, the changes agree in sign across images:

    Delta = sum_{i != j} H(sign(eps_i), sign(eps_j))

over ordered pairs, H the Hamming distance. We use the normalised Hamming distance (the
fraction of dimensions whose signs differ), so each pair's distance lies in [0, 1] whatever
the layer size, and report, as the paper's Table 1 does, its mean and standard deviation over
the pairs (i, j) (:func:`pair_distances`); Delta itself is n(n-1) times that mean. Lower = more
consistent. The control ('random' in Table 1): squares of the same sizes at random places
inside each image's object region (its box), drawn ``n_random`` times, the pairs of all draws
pooled.
"""
from __future__ import annotations

import numpy as np

from .occlusion import occlude


def pair_distances(eps: np.ndarray) -> np.ndarray:
    """Normalised Hamming distances between sign(eps_i) and sign(eps_j) for the n(n-1)/2
    unordered pairs i < j (row-major), eps (n, D); sign 0 counts as its own value. The ordered
    pairs of Delta count each of these twice."""
    eps = np.asarray(eps)
    if eps.ndim != 2 or eps.shape[0] < 2:
        raise ValueError(f"eps must be (n >= 2, D), got {eps.shape}")
    s = np.sign(eps)
    n, d = s.shape
    # n is a handful of images; each row is compared with all later rows at once over D.
    return np.concatenate([(s[i] != s[i + 1:]).sum(axis=1) / d for i in range(n - 1)])


def hamming_delta(eps: np.ndarray) -> float:
    """Delta for feature changes eps (n, D): sum over ordered pairs i != j of the fraction of
    the D dimensions where sign(eps_i) != sign(eps_j)."""
    return float(2 * pair_distances(eps).sum())


def _changes(features, images, boxes, layers, fill):
    """{layer: (n, D)} changes eps_i = f(x_i) - f(x_i with boxes[i] filled)."""
    occluded = np.stack([occlude(img, [b], fill)[0] for img, b in zip(images, boxes)])
    _, f0 = features(images)
    _, f1 = features(occluded)
    n = len(images)
    return {name: f0[name].reshape(n, -1) - f1[name].reshape(n, -1) for name in layers}


def _place(rng, size: int, lo: int, hi: int, length: int) -> int:
    """Start of a ``size`` interval drawn uniformly inside [lo, hi) (centred on it where it does
    not fit), then kept inside [0, length) where it can be."""
    if size <= hi - lo:
        start = int(rng.integers(lo, hi - size + 1))
    else:
        start = lo - (size - (hi - lo)) // 2
    return max(0, min(start, length - size)) if size <= length else 0


def random_boxes(rng: np.random.Generator, height: int, width: int, like, regions=None):
    """For each box (y0, x0, y1, x1) in ``like``, one of the same size at a uniformly random
    place inside regions[i] (y0, x0, y1, x1), e.g. the object's box, or inside the (height,
    width) image when regions is None. Along an axis where the box is larger than its region
    it is centred on the region (and kept inside the image)."""
    if regions is None:
        regions = [(0, 0, height, width)] * len(like)
    if len(regions) != len(like):
        raise ValueError(f"{len(like)} boxes but {len(regions)} regions")
    out = []
    for (y0, x0, y1, x1), (ry0, rx0, ry1, rx1) in zip(like, regions):
        bh, bw = min(y1 - y0, height), min(x1 - x0, width)
        ry = _place(rng, bh, max(ry0, 0), min(ry1, height), height)
        rx = _place(rng, bw, max(rx0, 0), min(rx1, width), width)
        out.append((ry, rx, ry + bh, rx + bw))
    return out


def correspondence(features, images: np.ndarray, boxes, layers, n_random: int = 10,
                   seed: int = 0, fill: float = 0.0, regions=None):
    """The correspondence measure of one part, and of random occlusions of the same sizes.

    features(x) -> (probs, {layer: activation}); images (n, C, H, W) net inputs of one class;
    boxes: the part's n half-open (y0, x0, y1, x1) boxes; regions: n boxes inside which the
    random squares are drawn (the objects' boxes; None: anywhere in the image).

    Returns {layer: {'part_mean', 'part_std': mean and standard deviation of the normalised
    Hamming distance over the n(n-1)/2 pairs of images; 'random_mean', 'random_std': the same
    over the pairs of all ``n_random`` draws (nan when n_random is 0); 'part': Delta of the
    part, 'random_delta': the mean of Delta over the draws, 'pairs': n(n-1) ordered pairs;
    'random': the boxes of the first draw (for the figure); 'part_distances' and
    'random_distances': the pairs' distances themselves (None for random when n_random is 0),
    for pooling}}."""
    images = np.asarray(images, dtype=np.float32)
    if len(boxes) != len(images):
        raise ValueError(f"{len(images)} images but {len(boxes)} boxes")
    rng = np.random.default_rng(seed)
    part = {name: pair_distances(e) for name, e in
            _changes(features, images, boxes, layers, fill).items()}
    rand = {name: [] for name in layers}
    first = None
    for _ in range(n_random):
        where = random_boxes(rng, *images.shape[2:], boxes, regions)
        first = first or where
        for name, e in _changes(features, images, where, layers, fill).items():
            rand[name].append(pair_distances(e))
    n = len(images)
    nan = float("nan")
    out = {}
    for name in layers:
        r = np.concatenate(rand[name]) if n_random else None
        out[name] = {"part_mean": float(part[name].mean()), "part_std": float(part[name].std()),
                     "random_mean": float(r.mean()) if n_random else nan,
                     "random_std": float(r.std()) if n_random else nan,
                     "part": float(2 * part[name].sum()),
                     "random_delta": float(np.mean([2 * d.sum() for d in rand[name]]))
                     if n_random else nan,
                     "pairs": n * (n - 1), "random": first,
                     "part_distances": part[name], "random_distances": r}
    return out
