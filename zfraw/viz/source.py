"""The images a visualization reads: stored uint8 images, the run's mean image, the net's
input side, labels, boxes and class names, in zfraw.data's formats.

Net inputs are the paper's evaluation view, computed by zfraw.data's ``eval_view`` (the same
function that makes training's validation batches): the centre crop of side ``crop`` minus the
mean image, times the run's ``input_scale`` (1 for the paper's 0..255). Boxes are converted once
from the datasets' (x0, y0, x1, y1) in stored pixels to (y0, x0, y1, x1) in net-input pixels,
the order of ``net.rf_box``.
"""
from __future__ import annotations

import sys

import numpy as np

from zfraw.data.transforms import center_offset, eval_view


class ImageSource:
    """images: uint8 (N, S, S, 3); mean: float32 (S, S, 3) (or None for 0); crop: net input side
    C <= S; labels: (N,) int; boxes: (N, 4) int (x0, y0, x1, y1) stored pixels, -1 rows unknown,
    or None; names: class names; scale: the factor applied to mean-subtracted pixels."""

    def __init__(self, images, mean, crop: int, labels, boxes=None, names=None,
                 scale: float = 1.0):
        # A memory map (an ndarray) stays lazy; anything else becomes an array.
        images = images if isinstance(images, np.ndarray) else np.asarray(images)
        if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (N, S, S, 3), got {images.dtype} "
                             f"{images.shape}")
        s = images.shape[1]
        if not 0 < crop <= s:
            raise ValueError(f"crop {crop} must be in 1..{s} (the stored size)")
        if not scale > 0:
            raise ValueError(f"input scale must be positive, got {scale}")
        self.images, self.crop, self.scale = images, crop, float(scale)
        self.mean = np.zeros(images.shape[1:], np.float32) if mean is None \
            else np.asarray(mean, np.float32)
        if self.mean.shape != images.shape[1:]:
            raise ValueError(f"mean image {self.mean.shape} does not match images "
                             f"{images.shape[1:]}")
        self.labels = np.asarray(labels, np.int64)
        if self.labels.shape != (len(images),):
            raise ValueError(f"{len(images)} images but labels of shape {self.labels.shape}")
        self.offset = center_offset(s, crop)  # top-left corner of the centre crop, both axes
        self.boxes = None if boxes is None else self._net_boxes(np.asarray(boxes))
        self.names = list(names) if names is not None else [str(i) for i in
                                                           range(int(self.labels.max()) + 1)]

    def _net_boxes(self, boxes):
        """(N, 4) (x0, y0, x1, y1) stored -> (y0, x0, y1, x1) in the crop, clipped; -1 rows kept."""
        o, c = self.offset, self.crop
        out = np.clip(boxes[:, [1, 0, 3, 2]] - o, 0, c)
        out[boxes[:, 0] < 0] = -1
        return out

    def __len__(self) -> int:
        return len(self.labels)

    def inputs(self, idx) -> np.ndarray:
        """Net inputs of images ``idx``: float32 (n, 3, C, C), (centre crop - mean) * scale,
        bit for bit what training's evaluation batches hold."""
        images = np.asarray(self.images[np.asarray(idx, np.int64).reshape(-1)])
        return eval_view(images, self.mean, self.crop, self.scale)

    def pixels(self, idx) -> np.ndarray:
        """The same crops for display: float32 (n, 3, C, C) in 0..255 (mean not subtracted)."""
        o, c = self.offset, self.crop
        img = np.asarray(self.images[np.asarray(idx, np.int64).reshape(-1), o:o + c, o:o + c],
                         np.float32)
        return np.ascontiguousarray(img.transpose(0, 3, 1, 2))

    def to_pixels(self, x) -> np.ndarray:
        """Net inputs (n, 3, C, C) (e.g. transformed or occluded) back to 0..255 for display."""
        o, c = self.offset, self.crop
        return x / self.scale + self.mean[o:o + c, o:o + c].transpose(2, 0, 1)

    def batches(self, batch_size: int, limit: int | None = None, desc: str = ""):
        """Yield (start index, net inputs) over the first ``limit`` images (all by default),
        printing progress to stderr when ``desc`` is given."""
        n = len(self) if limit is None else min(limit, len(self))
        for start in range(0, n, batch_size):
            if desc:
                print(f"\r{desc}: {min(start + batch_size, n)}/{n}", end="", file=sys.stderr,
                      flush=True)
            yield start, self.inputs(np.arange(start, min(start + batch_size, n)))
        if desc:
            print(file=sys.stderr)

    def class_indices(self, label: int) -> np.ndarray:
        """Indices of the images of one class."""
        return np.flatnonzero(self.labels == label)
