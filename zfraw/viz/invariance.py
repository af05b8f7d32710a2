"""Invariance of features to vertical translation, scale and rotation (the paper's Sec. 4.4,
Fig. 5).

Transforms act on net inputs (C, H, W) after mean subtraction, so the border that a transform
uncovers is filled with 0, the mean colour. For each amount we report, per chosen layer, the
Euclidean distance between the feature vectors (the layer's activation, flattened) of the
original and of the transformed image, and the transformed image's true-class probability.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image


def translate(img: np.ndarray, dy: int, dx: int, fill: float = 0.0) -> np.ndarray:
    """Shift (C, H, W) by whole pixels (content moves down by dy, right by dx); the uncovered
    border is ``fill``."""
    c, h, w = img.shape
    out = np.full_like(img, fill)
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    if abs(dy) < h and abs(dx) < w:
        out[:, yd, xd] = img[:, ys, xs]
    return out


def _affine(img: np.ndarray, inverse, fill: float) -> np.ndarray:
    """Apply an affine map per channel with Pillow (bilinear, float 'F' images). inverse: the
    6 coefficients (a, b, c, d, e, f) mapping output (x, y) to input
    (a x + b y + c, d x + e y + f)."""
    c, h, w = img.shape
    out = np.empty_like(img, dtype=np.float32)
    for k in range(c):  # Pillow's float images have one channel
        ch = Image.fromarray(np.ascontiguousarray(img[k], dtype=np.float32), mode="F")
        out[k] = np.asarray(ch.transform((w, h), Image.AFFINE, inverse, Image.BILINEAR,
                                         fillcolor=fill))
    return out


def rotate(img: np.ndarray, degrees: float, fill: float = 0.0) -> np.ndarray:
    """Rotate (C, H, W) counter-clockwise by ``degrees`` about the image centre (bilinear)."""
    c, h, w = img.shape
    t = math.radians(degrees)
    cx, cy = w / 2, h / 2  # Pillow's continuous coordinates: pixel i spans [i, i+1)
    cos, sin = math.cos(t), math.sin(t)
    # Output pixel (x, y) samples the input at the point rotated back by -t about the centre
    # (image y points down, so counter-clockwise on screen is this sign pattern).
    inv = (cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy)
    return _affine(img, inv, fill)


def scale(img: np.ndarray, factor: float, fill: float = 0.0) -> np.ndarray:
    """Zoom (C, H, W) by ``factor`` about the image centre (>1 enlarges, <1 shrinks), same size
    out, bilinear."""
    if factor <= 0:
        raise ValueError(f"scale factor must be > 0, got {factor}")
    c, h, w = img.shape
    cx, cy = w / 2, h / 2  # Pillow's continuous coordinates: pixel i spans [i, i+1)
    s = 1.0 / factor
    return _affine(img, (s, 0.0, cx - s * cx, 0.0, s, cy - s * cy), fill)


TRANSFORMS = {
    # The paper's Fig. 5 translates vertically: content moves down by a pixels (up for a < 0).
    "translate": lambda img, a: translate(img, int(round(a)), 0),
    "scale": scale,
    "rotate": rotate,
}


def invariance_curves(features, images: np.ndarray, labels: np.ndarray, kind: str, amounts,
                      layers):
    """Distances and true-class probability vs the amount of one transform.

    features(x (n, C, H, W)) -> (probs (n, K), {layer: activation (n, ...)}) host arrays;
    probs None for a net without a classifier, and then 'prob' is None. images: (N, C, H, W)
    net inputs, labels: (N,). kind: 'translate' (pixels, vertical), 'scale' (factor) or
    'rotate' (degrees). Returns {'amounts': (A,), 'dist': {layer: (A, N)}, 'prob': (A, N)}."""
    if kind not in TRANSFORMS:
        raise ValueError(f"unknown transform {kind!r}; choose one of {', '.join(TRANSFORMS)}")
    labels = np.asarray(labels)
    _, ref = features(images)
    ref = {name: ref[name].reshape(len(images), -1) for name in layers}
    dist = {name: [] for name in layers}
    prob = []
    for a in amounts:
        moved = np.stack([TRANSFORMS[kind](img, a) for img in images])
        probs, feats = features(moved)
        for name in layers:
            dist[name].append(np.linalg.norm(feats[name].reshape(len(images), -1) - ref[name],
                                             axis=1))
        if probs is not None:
            prob.append(probs[np.arange(len(images)), labels])
    return {"amounts": np.asarray(amounts, dtype=np.float64),
            "dist": {name: np.stack(d) for name, d in dist.items()},
            "prob": np.stack(prob) if prob else None}
