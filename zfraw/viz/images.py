"""Pixel-level helpers for the figures: display normalisation, padded crops, grids, PNG files
(Pillow). Images here are (C, H, W) float arrays (the net's layout) until they become
(H, W, 3) uint8 for display.

Every file a figure writes goes through :func:`write_file` (zfraw.atomic underneath): a failure
(a full disk) leaves the previous file or none, never a truncated one, and no temporary."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..atomic import atomic_open


# Projections are sparse: a few pixels carry most of the signal. Figures saturate the top 0.5%
# of |values| so the structure around them stays visible.
DISPLAY_PERCENTILE = 99.5

# The narrowest a projection, an image patch or an image is drawn, in output pixels: smaller
# tiles are enlarged by whole-pixel repetition (nearest neighbour, :func:`tile_zoom`).
MIN_TILE = 48


def to_hwc(img: np.ndarray) -> np.ndarray:
    """(C, H, W) with C in {1, 3} -> (H, W, 3); (H, W) -> (H, W, 3)."""
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[None]
    if img.ndim != 3 or img.shape[0] not in (1, 3):
        raise ValueError(f"expected (C, H, W) with C in (1, 3) or (H, W), got {img.shape}")
    return np.repeat(img, 3, axis=0).transpose(1, 2, 0) if img.shape[0] == 1 \
        else img.transpose(1, 2, 0)


def scale_to_uint8(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Linear map [lo, hi] -> [0, 255], clipped. img: (C, H, W) -> (H, W, 3) uint8."""
    span = hi - lo if hi > lo else 1.0
    u = (to_hwc(img).astype(np.float64) - lo) / span
    return (np.clip(u, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def minmax_uint8(img: np.ndarray) -> np.ndarray:
    """Stretch one image's own range to [0, 255] (each filter or projection on its own,
    as the paper displays them). (C, H, W) -> (H, W, 3) uint8; a constant image is grey 0."""
    return scale_to_uint8(img, float(np.min(img)), float(np.max(img)))


def symmetric_uint8(img: np.ndarray, percentile: float = 100.0) -> np.ndarray:
    """Zero -> mid grey, +-m -> 255 / 0 with m the ``percentile`` of |img| (100: the maximum;
    lower values saturate a few outliers so that sparse projections stay visible). Keeps the
    sign of a signed map visible. (C, H, W) -> (H, W, 3) uint8."""
    m = float(np.percentile(np.abs(img), percentile)) or float(np.max(np.abs(img))) or 1.0
    return scale_to_uint8(img, -m, m)


def clip_box(box, height: int, width: int):
    """(y0, x0, y1, x1) half-open box clipped to the image; may become empty."""
    y0, x0, y1, x1 = box
    return max(y0, 0), max(x0, 0), min(y1, height), min(x1, width)


def crop_padded(img: np.ndarray, box, fill: float = 0.0) -> np.ndarray:
    """img[:, y0:y1, x0:x1] for a half-open box (y0, x0, y1, x1) that may extend past the
    image; the out-of-image part is ``fill``. (C, H, W) -> (C, y1-y0, x1-x0), so every crop
    of one layer has the receptive field's full size and its pixels stay where they were."""
    y0, x0, y1, x1 = (int(v) for v in box)
    if y1 <= y0 or x1 <= x0:
        raise ValueError(f"empty crop box {box}")
    c, h, w = img.shape
    out = np.full((c, y1 - y0, x1 - x0), fill, dtype=img.dtype)
    cy0, cx0, cy1, cx1 = clip_box((y0, x0, y1, x1), h, w)
    if cy1 > cy0 and cx1 > cx0:
        out[:, cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0] = img[:, cy0:cy1, cx0:cx1]
    return out


def resize_uint8(tile: np.ndarray, size: int) -> np.ndarray:
    """(h, w, 3) uint8 -> (size, size, 3), nearest neighbour (keeps pixels sharp)."""
    if tile.shape[:2] == (size, size):
        return tile
    return np.asarray(Image.fromarray(tile).resize((size, size), Image.NEAREST))


def grid(tiles, ncols: int, pad: int = 1, bg: int = 255) -> np.ndarray:
    """Tile equally sized (h, w, 3) uint8 images row-major into one (H, W, 3) uint8 image,
    ``pad`` pixels of ``bg`` between and around them. Missing tiles stay background."""
    tiles = list(tiles)
    if not tiles:
        raise ValueError("grid: no tiles")
    h, w = tiles[0].shape[:2]
    if any(t.shape != (h, w, 3) for t in tiles):
        raise ValueError(f"grid: tiles must all be ({h}, {w}, 3) uint8")
    ncols = max(1, min(ncols, len(tiles)))
    nrows = -(-len(tiles) // ncols)
    out = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, 3), bg, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, ncols)
        out[pad + r * (h + pad):pad + r * (h + pad) + h,
            pad + c * (w + pad):pad + c * (w + pad) + w] = t
    return out


def hstack(images, pad: int = 4, bg: int = 255) -> np.ndarray:
    """Place (h_i, w_i, 3) uint8 images side by side, top-aligned, ``pad`` apart."""
    images = list(images)
    h = max(im.shape[0] for im in images)
    w = sum(im.shape[1] for im in images) + pad * (len(images) - 1)
    out = np.full((h, w, 3), bg, np.uint8)
    x = 0
    for im in images:
        out[:im.shape[0], x:x + im.shape[1]] = im
        x += im.shape[1] + pad
    return out


def vstack(images, pad: int = 4, bg: int = 255) -> np.ndarray:
    """Stack (h_i, w_i, 3) uint8 images top to bottom, left-aligned, ``pad`` apart."""
    return hstack([im.transpose(1, 0, 2) for im in images], pad, bg).transpose(1, 0, 2).copy()


def upscale(img: np.ndarray, factor: int) -> np.ndarray:
    """(h, w, 3) uint8 -> (h*factor, w*factor, 3) by pixel repetition."""
    return np.repeat(np.repeat(img, factor, axis=0), factor, axis=1) if factor > 1 else img


def tile_zoom(side: int, min_side: int = MIN_TILE) -> int:
    """Integer zoom that makes a tile of ``side`` pixels at least ``min_side`` wide."""
    return max(1, -(-min_side // side))


def write_file(path, write, mode: str = "wb") -> Path:
    """Create ``path``'s folder and write the file atomically: ``write(f)`` fills an open file
    that replaces ``path`` only when it returns. An OSError names ``path``. Returns the path."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, mode) as f:
            write(f)
    except OSError as e:
        if e.filename is None:
            e.filename = str(path)       # a failed write() names no file; say which one
        raise
    return path


def save_png(img: np.ndarray, path) -> Path:
    """Write an (H, W, 3) uint8 image as PNG (atomically, :func:`write_file`), creating the
    folder; returns the path."""
    pixels = Image.fromarray(np.ascontiguousarray(img))
    return write_file(path, lambda f: pixels.save(f, format="PNG"))


def save_webp(img: np.ndarray, path, quality: int = 80, lossless: bool = False) -> Path:
    """Write an (H, W, 3) uint8 image as WebP (atomically, :func:`write_file`): lossy at
    ``quality`` (0-100; a fraction of PNG's size, for pages read in a browser) or ``lossless``
    (the exact pixels). Pillow's encoder is deterministic: the same pixels give the same bytes.
    Returns the path."""
    pixels = Image.fromarray(np.ascontiguousarray(img))
    return write_file(path, lambda f: pixels.save(f, format="WEBP", quality=quality,
                                                  lossless=lossless, method=4))


def text_band(text: str, width: int, size: int = 15, bg: int = 255) -> np.ndarray:
    """A (h, width, 3) uint8 band holding ``text`` in black (Pillow's default font at ``size``
    px, lines split at newlines), for labels on pixel figures."""
    font = ImageFont.load_default(size=size)
    lines = text.split("\n")
    h = (size + 4) * len(lines) + 4
    band = Image.new("RGB", (max(width, 1), h), (bg, bg, bg))
    draw = ImageDraw.Draw(band)
    for i, line in enumerate(lines):
        draw.text((2, 2 + i * (size + 4)), line, fill=(0, 0, 0), font=font)
    return np.asarray(band)


def titled(img: np.ndarray, text: str, size: int = 15) -> np.ndarray:
    """img (h, w, 3) uint8 with ``text`` written in a band above it."""
    return vstack([text_band(text, img.shape[1], size), img], pad=2)


def framed(img: np.ndarray, width: int = 3, value: int = 0) -> np.ndarray:
    """img (h, w, 3) uint8 inside a ``width``-pixel frame of grey level ``value``."""
    return np.pad(img, ((width, width), (width, width), (0, 0)), constant_values=value)
