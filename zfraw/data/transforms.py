"""The paper's crops, flips and mean subtraction, on whole batches with vectorized indexing.

Images are stored at S x S (shorter side resized, centre crop; S from :func:`stored_size`, the
one statement of the default). The per-pixel mean image is taken over the training set at S x S
(float32 (S, S, 3)) and saved with the run. A crop of side C at
offset (oy, ox), optionally flipped left-right, of ``image - mean`` is built by indexing rows and
columns with per-image index arrays; a flip is the column index read backwards. Output batches
are float32 (N, 3, C, C), channels first, as the nets expect.

The evaluation view (:func:`eval_view`) is the centre crop, minus the mean, times the run's
input scale (an imported net's convention may add a per-channel std and BGR order). Ten-crop evaluation (Krizhevsky et al., used by the paper): the four corner crops and the centre
crop, each also flipped, in the order of :func:`ten_crop_offsets`.
"""
from __future__ import annotations

import numpy as np

STORED_CONVENTIONS = ("zfraw", "zoo")


def stored_size(crop: int, resize: int | None = None, convention: str = "zfraw") -> int:
    """The stored image side S for a net of input side ``crop``: ``resize`` when it is given (a
    run's ``--resize``; None or 0 for the default), else the default of ``convention``:

    - ``'zfraw'``: 256 for a 224 input (the paper's 224 crops of 256 images), else crop * 9/8
      (``crop + crop // 8``: 72 for 64, 255 for 227). Training runs and everything that reads
      them (reports, experiments) store at this size.
    - ``'zoo'``: 256 for every input of 224 to 256, the ImageNet model zoo's convention (Caffe's
      227 nets and torchvision's 224 nets both read 256 images), else as 'zfraw'. The input
      presets of imported nets (:class:`zfraw.nets.inputs.InputSpec`) store at this size.

    The two part on purpose for inputs 225..256 (a 227 crop: 255 for zfraw, 256 for the zoo).
    """
    if convention not in STORED_CONVENTIONS:
        raise ValueError(f"stored size convention {convention!r}: choose "
                         f"{' or '.join(STORED_CONVENTIONS)}")
    if resize:
        return resize
    if crop == 224 or (convention == "zoo" and 224 <= crop <= 256):
        return 256
    return crop + crop // 8


def mean_image(images: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Per-pixel mean of uint8 (N, S, S, 3) images, accumulated in float64 by chunks.

    Returns float32 (S, S, 3).
    """
    if len(images) == 0:
        raise ValueError("mean_image of an empty set")
    total = np.zeros(images.shape[1:], np.float64)
    for i in range(0, len(images), chunk):
        total += images[i:i + chunk].sum(0, dtype=np.float64)
    return (total / len(images)).astype(np.float32)


def crop_batch(images: np.ndarray, mean: np.ndarray, oy, ox, flip, crop: int) -> np.ndarray:
    """Mean-subtracted crops of a batch.

    images: uint8 (N, S, S, 3); mean: float32 (S, S, 3); oy, ox: int (N,) top-left corners;
    flip: bool (N,) mirror left-right; returns float32 (N, 3, crop, crop).
    """
    n, s = images.shape[0], images.shape[1]
    oy, ox, flip = np.asarray(oy), np.asarray(ox), np.asarray(flip, bool)
    if crop > s or np.any(oy < 0) or np.any(ox < 0) or np.any(oy + crop > s) or np.any(ox + crop > s):
        raise ValueError(f"crop {crop} at the given offsets does not fit in {s}x{s} images")
    ar = np.arange(crop)
    rows = oy[:, None] + ar                                          # (N, C)
    cols = np.where(flip[:, None], ox[:, None] + crop - 1 - ar, ox[:, None] + ar)
    r, c = rows[:, :, None], cols[:, None, :]
    out = images[np.arange(n)[:, None, None], r, c].astype(np.float32)   # (N, C, C, 3)
    out -= mean[r, c]
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def random_crop_params(rng: np.random.Generator, n: int, size: int, crop: int):
    """Random offsets and flips for ``n`` training crops: (oy, ox, flip), each (n,)."""
    oy = rng.integers(0, size - crop + 1, n)
    ox = rng.integers(0, size - crop + 1, n)
    flip = rng.random(n) < 0.5
    return oy, ox, flip


def center_offset(size: int, crop: int) -> int:
    """Top-left offset of the centre crop (rounded down), on both axes."""
    return (size - crop) // 2


def ten_crop_offsets(size: int, crop: int) -> list:
    """The ten evaluation views as (oy, ox, flip): top-left, top-right, bottom-left, bottom-right,
    centre, then the same five flipped."""
    e, c = size - crop, center_offset(size, crop)
    five = [(0, 0), (0, e), (e, 0), (e, e), (c, c)]
    return [(oy, ox, False) for oy, ox in five] + [(oy, ox, True) for oy, ox in five]


def center_crop(images: np.ndarray, mean: np.ndarray, crop: int) -> np.ndarray:
    """Mean-subtracted centre crops: uint8 (N,S,S,3) -> float32 (N, 3, crop, crop)."""
    n, c = len(images), center_offset(images.shape[1], crop)
    return crop_batch(images, mean, np.full(n, c), np.full(n, c), np.zeros(n, bool), crop)


def scale_inputs(x: np.ndarray, scale: float) -> np.ndarray:
    """Multiply mean-subtracted pixels ``x`` (float32, any shape) by ``scale`` in place; returns x.

    The factor is cast to float32 so the product stays float32 and is the same everywhere.
    """
    if scale != 1.0:
        x *= np.float32(scale)
    return x


def eval_view(images: np.ndarray, mean: np.ndarray, crop: int, scale: float = 1.0,
              std=None, order: str = "RGB") -> np.ndarray:
    """The evaluation view, the one definition of a net's input at test time: uint8 (N,S,S,3)
    -> float32 (N, 3, crop, crop) = ((centre crop - mean) / std) * scale, channels in ``order``.

    mean: float32 (S, S, 3) mean image or (3,) mean pixel, RGB; std: None (1) or (3,), RGB;
    order: 'RGB' (as stored) or 'BGR' (reversed last, for Caffe's nets). A zfraw run uses its
    mean image and input scale only. Used by :meth:`BatchLoader.eval_batches` (validation
    during training), by the visualizations' ``ImageSource`` and by imported nets'
    :class:`~zfraw.nets.inputs.InputSpec`, so all see exactly the same numbers.
    """
    mean = np.asarray(mean, np.float32)
    if mean.shape == (3,):  # a mean pixel: the same subtraction as a constant mean image
        mean = np.broadcast_to(mean, images.shape[1:])
    x = center_crop(images, mean, crop)
    if std is not None:
        x /= np.asarray(std, np.float32).reshape(3, 1, 1)
    x = scale_inputs(x, scale)
    if order == "BGR":
        x = np.ascontiguousarray(x[:, ::-1])
    elif order != "RGB":
        raise ValueError(f"channel order {order!r}: choose RGB or BGR")
    return x


def ten_crop(images: np.ndarray, mean: np.ndarray, crop: int) -> np.ndarray:
    """All ten views of each image: uint8 (N,S,S,3) -> float32 (10, N, 3, crop, crop)."""
    n = len(images)
    return np.stack([crop_batch(images, mean, np.full(n, oy), np.full(n, ox), np.full(n, f), crop)
                     for oy, ox, f in ten_crop_offsets(images.shape[1], crop)])
