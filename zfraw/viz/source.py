"""The images a visualization reads: stored uint8 images, the run's mean image, the net's
input side, labels, boxes and class names, in zfraw.data's formats.

Net inputs are the paper's evaluation view, computed by zfraw.data's ``eval_view`` (the same
function that makes training's validation batches): the centre crop of side ``crop`` minus the
mean image, times the run's ``input_scale`` (1 for the paper's 0..255). An imported net brings
its own convention as an :class:`~zfraw.nets.inputs.InputSpec` (mean pixel, std, BGR order),
applied by the same function and inverted by :meth:`ImageSource.to_pixels` for display. Boxes are converted once
from the datasets' (x0, y0, x1, y1) in stored pixels to (y0, x0, y1, x1) in net-input pixels,
the order of ``net.rf_box``; so are the named part boxes of the correspondence analysis
(``parts``: per image {name: box}, e.g. the synthetic set's or a ``--parts`` file's).
"""
from __future__ import annotations

import copy
import sys

import numpy as np

from zfraw.data.transforms import center_offset
from zfraw.nets.inputs import InputSpec


class ImageSource:
    """images: uint8 (N, S, S, 3); mean: float32 (S, S, 3) (or None for 0); crop: net input side
    C <= S; labels: (N,) int; boxes: (N, 4) int (x0, y0, x1, y1) stored pixels, -1 rows unknown,
    or None; names: class names; scale: the factor applied to mean-subtracted pixels.
    spec: an :class:`InputSpec` instead of mean and scale (its crop must be ``crop``); without
    one the spec is the zfraw run's, ``InputSpec.zfraw(mean, crop, scale)``. parts: per image
    a dict {part name: (x0, y0, x1, y1) stored pixels} or None; kept as ``self.parts`` in
    (y0, x0, y1, x1) crop pixels (None without parts). files: the images' files as the dataset
    lists them (None where unknown), for the report's records."""

    def __init__(self, images, mean, crop: int, labels, boxes=None, names=None,
                 scale: float = 1.0, spec: InputSpec | None = None, parts=None, files=None):
        # A memory map (an ndarray) stays lazy; anything else becomes an array.
        images = images if isinstance(images, np.ndarray) else np.asarray(images)
        if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (N, S, S, 3), got {images.dtype} "
                             f"{images.shape}")
        s = images.shape[1]
        if not 0 < crop <= s:
            raise ValueError(f"crop {crop} must be in 1..{s} (the stored size)")
        if spec is None:
            if not scale > 0:
                raise ValueError(f"input scale must be positive, got {scale}")
            mean = np.zeros(images.shape[1:], np.float32) if mean is None \
                else np.asarray(mean, np.float32)
            if mean.shape != images.shape[1:]:
                raise ValueError(f"mean image {mean.shape} does not match images "
                                 f"{images.shape[1:]}")
            spec = InputSpec.zfraw(mean, crop, scale)
        elif mean is not None or scale != 1.0:
            raise ValueError("ImageSource: give either mean and scale or an InputSpec")
        elif (spec.size, spec.crop) != (s, crop):
            raise ValueError(f"input spec stores at {spec.size} and crops {spec.crop}; the "
                             f"images are {s}x{s} and the crop {crop}")
        self.images, self.crop, self.spec = images, crop, spec
        self.mean, self.scale = spec.mean, spec.scale
        self.labels = np.asarray(labels, np.int64)
        if self.labels.shape != (len(images),):
            raise ValueError(f"{len(images)} images but labels of shape {self.labels.shape}")
        self.offset = center_offset(s, crop)  # top-left corner of the centre crop, both axes
        self.boxes = None if boxes is None else self._net_boxes(np.asarray(boxes))
        self.parts = None if parts is None else self._net_parts(parts)
        self.names = list(names) if names is not None else [str(i) for i in
                                                           range(int(self.labels.max()) + 1)]
        self.files = None if not files else list(files)
        if self.files is not None and len(self.files) != len(self.labels):
            raise ValueError(f"{len(self.labels)} images but {len(self.files)} file names")

    def _net_boxes(self, boxes):
        """(N, 4) (x0, y0, x1, y1) stored -> (y0, x0, y1, x1) in the crop, clipped; -1 rows kept."""
        o, c = self.offset, self.crop
        out = np.clip(boxes[:, [1, 0, 3, 2]] - o, 0, c)
        out[boxes[:, 0] < 0] = -1
        return out

    def _net_parts(self, parts):
        """Per image {part name: (x0, y0, x1, y1) stored} (or None) -> {name: (y0, x0, y1, x1)}
        in the crop, clipped; parts that fall outside the crop are left out."""
        if len(parts) != len(self.labels):
            raise ValueError(f"{len(self.labels)} images but part boxes for {len(parts)}")
        out = []
        for boxes in parts:
            mine = {}
            for name, b in (boxes or {}).items():
                y0, x0, y1, x1 = (int(v) for v in self._net_boxes(np.asarray([b]))[0])
                if y1 > y0 and x1 > x0:
                    mine[name] = (y0, x0, y1, x1)
            out.append(mine)
        return out

    def __len__(self) -> int:
        return len(self.labels)

    def inputs(self, idx) -> np.ndarray:
        """Net inputs of images ``idx``: float32 (n, 3, C, C), the spec's evaluation view; for a
        zfraw run (centre crop - mean) * scale, bit for bit what training's evaluation batches
        hold."""
        images = np.asarray(self.images[np.asarray(idx, np.int64).reshape(-1)])
        return self.spec.apply(images)

    def pixels(self, idx) -> np.ndarray:
        """The same crops for display: float32 (n, 3, C, C) in 0..255 (mean not subtracted)."""
        o, c = self.offset, self.crop
        img = np.asarray(self.images[np.asarray(idx, np.int64).reshape(-1), o:o + c, o:o + c],
                         np.float32)
        return np.ascontiguousarray(img.transpose(0, 3, 1, 2))

    def to_pixels(self, x) -> np.ndarray:
        """Net inputs (n, 3, C, C) (e.g. transformed or occluded) back to RGB 0..255 for
        display: the spec's inverse."""
        return self.spec.invert(x)

    def batches(self, batch_size: int, limit: int | None = None, desc: str = ""):
        """Yield (start index, net inputs) over the first ``limit`` images (all by default),
        printing progress to stderr when ``desc`` is given: a line redrawn in place on a
        terminal, one line at the end into a log."""
        n = len(self) if limit is None else min(limit, len(self))
        live = sys.stderr.isatty()
        for start in range(0, n, batch_size):
            if desc and live:
                print(f"\r{desc}: {min(start + batch_size, n)}/{n}", end="", file=sys.stderr,
                      flush=True)
            yield start, self.inputs(np.arange(start, min(start + batch_size, n)))
        if desc:
            print(f"\r{desc}: {n}/{n}" if live else f"{desc}: {n}/{n}", file=sys.stderr)

    def relabeled(self, labels, names) -> "ImageSource":
        """The same images with other labels and class names (e.g. an imported net's
        predictions over its own classes)."""
        out = copy.copy(self)
        out.labels = np.asarray(labels, np.int64)
        if out.labels.shape != self.labels.shape:
            raise ValueError(f"{len(self)} images but labels of shape {out.labels.shape}")
        out.names = list(names)
        return out

    def class_indices(self, label: int) -> np.ndarray:
        """Indices of the images of one class."""
        return np.flatnonzero(self.labels == label)
