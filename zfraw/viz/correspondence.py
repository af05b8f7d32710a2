"""Correspondence analysis (the paper's Sec. 5, Table 1).

Occlude the same object part in n images of one class; eps_i = x_i - x_i_occluded is the
change of image i's feature vector at a layer. If the model implicitly establishes
correspondence, the changes agree in sign across images:

    Delta = sum_{i != j} H(sign(eps_i), sign(eps_j))

over ordered pairs, H the Hamming distance. We use the normalised Hamming distance (the
fraction of dimensions whose signs differ), so Delta lies in [0, n(n-1)] whatever the layer
size; :func:`correspondence` also returns the number of pairs n(n-1), by which Delta divides
into a per-pair mean. Lower = more consistent. The control is the same computation with a
square of the same size at a random place in each image.
"""
from __future__ import annotations

import numpy as np

from .occlusion import occlude


def hamming_delta(eps: np.ndarray) -> float:
    """Delta for feature changes eps (n, D): sum over ordered pairs i != j of the fraction of
    the D dimensions where sign(eps_i) != sign(eps_j) (sign 0 counts as its own value)."""
    eps = np.asarray(eps)
    if eps.ndim != 2 or eps.shape[0] < 2:
        raise ValueError(f"eps must be (n >= 2, D), got {eps.shape}")
    s = np.sign(eps)
    n, d = s.shape
    total = 0.0
    for i in range(n):  # n is a handful of images; each row is vectorised over D
        total += (s[i] != s).sum() / d  # row i against all rows (its own term is 0)
    return float(total)


def _changes(features, images, boxes, layers, fill):
    """{layer: (n, D)} changes eps_i = f(x_i) - f(x_i with boxes[i] filled)."""
    occluded = np.stack([occlude(img, [b], fill)[0] for img, b in zip(images, boxes)])
    _, f0 = features(images)
    _, f1 = features(occluded)
    n = len(images)
    return {name: f0[name].reshape(n, -1) - f1[name].reshape(n, -1) for name in layers}


def random_boxes(rng: np.random.Generator, height: int, width: int, like):
    """For each box (y0, x0, y1, x1) in ``like``, one of the same size at a uniformly random
    place inside a (height, width) image."""
    out = []
    for y0, x0, y1, x1 in like:
        bh, bw = min(y1 - y0, height), min(x1 - x0, width)
        ry = int(rng.integers(0, height - bh + 1))
        rx = int(rng.integers(0, width - bw + 1))
        out.append((ry, rx, ry + bh, rx + bw))
    return out


def correspondence(features, images: np.ndarray, boxes, layers, n_random: int = 10,
                   seed: int = 0, fill: float = 0.0):
    """Delta for the given part boxes and for ``n_random`` draws of random boxes of the same
    sizes. features(x) -> (probs, {layer: activation}); images (n, C, H, W) net inputs of one
    class; boxes: n half-open (y0, x0, y1, x1). Returns {layer: {'part': Delta of the part
    boxes, 'random_mean' and 'random_std': mean and standard deviation of Delta over the
    random draws (nan when n_random is 0), 'pairs': n(n-1)}}, all floats but 'pairs' (int)."""
    images = np.asarray(images, dtype=np.float32)
    if len(boxes) != len(images):
        raise ValueError(f"{len(images)} images but {len(boxes)} boxes")
    rng = np.random.default_rng(seed)
    part = _changes(features, images, boxes, layers, fill)
    rand = {name: [] for name in layers}
    for _ in range(n_random):
        eps = _changes(features, images, random_boxes(rng, *images.shape[2:], boxes), layers,
                       fill)
        for name in layers:
            rand[name].append(hamming_delta(eps[name]))
    n = len(images)
    return {name: {"part": hamming_delta(part[name]),
                   "random_mean": float(np.mean(rand[name])) if n_random else float("nan"),
                   "random_std": float(np.std(rand[name])) if n_random else float("nan"),
                   "pairs": n * (n - 1)} for name in layers}
