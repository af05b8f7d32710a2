"""Occlusion sensitivity (the paper's Sec. 4.2, Fig. 7).

A grey square (0 after mean subtraction, i.e. the mean image's colour) slides over the image;
for every position we record (a) the total activation of the feature map that is strongest in
the unoccluded image, (b) the probability of the correct class, (c) the most probable class.
Occluded copies are built and evaluated in batches, so a sweep costs a few forward passes.

Positions: square centres on a regular grid, c_i = stride//2 + i*stride < H (likewise in x);
the square [c - size//2, c - size//2 + size) is clipped at the border, so every pixel is
covered and map cell (i, j) sits over image pixel (c_i, c_j).

Box statistic (our addition, to test "the model localises the object"): the probability drop
of a position is max(p_unoccluded - p_occluded, 0) for the true class; the in-box share is the
drop summed over positions whose centre lies in the object's box, divided by the total drop.
With no localisation it would equal the share of centres inside the box (~ the box's area
share), which we report beside it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def grid_centres(length: int, stride: int) -> np.ndarray:
    """Occluder centres along one axis of ``length`` pixels: stride//2, stride//2 + stride, ..."""
    if stride < 1 or length < 1:
        raise ValueError(f"stride and length must be >= 1, got {stride}, {length}")
    return np.arange(stride // 2, length, stride)


def occlude(image: np.ndarray, boxes, fill: float = 0.0) -> np.ndarray:
    """Copies of image (C, H, W), one per half-open box (y0, x0, y1, x1) (clipped), with the box
    set to ``fill``. -> (len(boxes), C, H, W)."""
    c, h, w = image.shape
    out = np.repeat(image[None], len(boxes), axis=0)
    for k, (y0, x0, y1, x1) in enumerate(boxes):
        out[k, :, max(y0, 0):min(y1, h), max(x0, 0):min(x1, w)] = fill
    return out


def square_boxes(height: int, width: int, size: int, stride: int):
    """The sweep's occluder boxes (y0, x0, y1, x1), row-major over the centre grid, and the
    grid's centres (ys, xs)."""
    if size < 1:
        raise ValueError(f"occluder size must be >= 1, got {size}")
    ys, xs = grid_centres(height, stride), grid_centres(width, stride)
    half = size // 2
    boxes = [(cy - half, cx - half, cy - half + size, cx - half + size) for cy in ys for cx in xs]
    return boxes, ys, xs


@dataclass
class OcclusionMaps:
    """One sweep. act, prob_true, top_class: (len(ys), len(xs)) maps over the centre grid
    (prob_true and top_class None for a net without a classifier); ys, xs: centre pixels;
    fmap: the strongest map's index; base_act, base_prob, base_class: the unoccluded image's
    values; size: the square's side."""
    act: np.ndarray
    prob_true: np.ndarray
    top_class: np.ndarray
    ys: np.ndarray
    xs: np.ndarray
    fmap: int
    base_act: float
    base_prob: float
    base_class: int
    size: int


def occlusion_sweep(forward, image: np.ndarray, label: int, size: int, stride: int,
                    batch_size: int = 64, fill: float = 0.0, fmap: int | None = None,
                    occluded=None) -> OcclusionMaps:
    """Slide a ``size`` square with ``stride`` over image (C, H, W), net input (mean-subtracted).

    forward(x (n, C, H, W)) -> (probs (n, K), act (n, Cl, h, w)) host arrays: class
    probabilities and the chosen layer's activations; probs None for a net without a
    classifier, and then the maps' prob_true and top_class are None (base_prob nan, base_class
    -1) and ``label`` is not read. fmap: the map to follow; default the
    one with the largest activation in the unoccluded image. ``occluded(boxes, fill)``, when
    given, returns the same two arrays for the occluded copies without being handed them
    (:class:`zfraw.viz.incremental.IncrementalOcclusion`, which recomputes only what each
    occluder changes). The image keeps a float64 dtype (other dtypes become float32)."""
    image = np.asarray(image, dtype=np.result_type(image, np.float32))
    if image.ndim != 3:
        raise ValueError(f"image must be (C, H, W), got {image.shape}")
    if occluded is None:
        def occluded(boxes, fill):
            return forward(occlude(image, boxes, fill))
    probs0, act0 = forward(image[None])
    if fmap is None:
        fmap = int(np.argmax(act0[0].reshape(act0.shape[1], -1).max(axis=1)))
    boxes, ys, xs = square_boxes(image.shape[1], image.shape[2], size, stride)
    act, prob, top = [], [], []
    for i in range(0, len(boxes), batch_size):
        probs, a = occluded(boxes[i:i + batch_size], fill)
        act.append(a[:, fmap].reshape(len(a), -1).sum(axis=1))
        if probs is not None:
            prob.append(probs[:, label])
            top.append(probs.argmax(axis=1))
    shape = (len(ys), len(xs))
    scores = probs0 is not None
    return OcclusionMaps(act=np.concatenate(act).reshape(shape),
                         prob_true=np.concatenate(prob).reshape(shape) if scores else None,
                         top_class=np.concatenate(top).reshape(shape) if scores else None,
                         ys=ys, xs=xs, fmap=fmap, base_act=float(act0[0, fmap].sum()),
                         base_prob=float(probs0[0, label]) if scores else float("nan"),
                         base_class=int(probs0[0].argmax()) if scores else -1, size=size)


def drop_share_in_box(maps: OcclusionMaps, box):
    """(share of the true-class probability drop from occluders centred inside the box,
    share of occluder centres inside the box). box: half-open (y0, x0, y1, x1) in pixels (the
    order of net.rf_box; convert dataset (x0, y0, x1, y1) annotations first). The first is nan
    when no position lowered the probability."""
    y0, x0, y1, x1 = box
    inside = ((maps.ys[:, None] >= y0) & (maps.ys[:, None] < y1)
              & (maps.xs[None, :] >= x0) & (maps.xs[None, :] < x1))
    drop = np.maximum(maps.base_prob - maps.prob_true, 0.0)
    total = drop.sum()
    share = float(drop[inside].sum() / total) if total > 0 else float("nan")
    return share, float(inside.mean())
