"""Decoding one image file into a fixed-size RGB array (the paper's first preprocessing step).

Every image is converted to RGB (grayscale, palette, CMYK, with or without alpha), its shorter
side resized to ``size`` and the centre ``size x size`` square cut out, as the paper does with
256 for ImageNet. Boxes go through the same affine map.

The work is bounded by the crop, not by the image's shape: resizing a 1x5000 image's shorter
side to 256 would make a 256x1,280,000 image to cut one square out of. Up to an aspect ratio of
:data:`EXACT_ASPECT` (every ordinary photo) the whole image is resized and cropped; beyond it
only the centre region is resized (Pillow's ``resize(box=...)``, within one grey level of the
whole-image way); beyond :data:`MAX_ASPECT` the file is refused as unreadable (its centre crop
would show less than 1% of it).

Wide single-channel images (16-bit PNG/TIFF, 32-bit integer or float TIFF) are scaled to 8 bits
first (:func:`to_8bit`), since Pillow's ``convert("RGB")`` clips them to 0..255 instead.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm")


# Aspect ratios (longer side / shorter side): up to EXACT_ASPECT the whole image is resized,
# as zfraw always did (so caches and boxes stay valid); up to MAX_ASPECT only the centre region;
# beyond, the image is refused.
EXACT_ASPECT = 32
MAX_ASPECT = 100


class DataError(ValueError):
    """A dataset on disk is not in the expected layout or holds unreadable files."""


def is_image_file(name: str) -> bool:
    """True when the file name has one of the image extensions we decode (case-insensitive)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def resize_crop_geometry(width: int, height: int, size: int):
    """The shorter-side resize and centre crop as numbers.

    Returns ``(new_w, new_h, scale_x, scale_y, off_x, off_y)``: the image is resized to
    (new_w, new_h) and the crop starts at (off_x, off_y), so an original coordinate x maps to
    ``x * scale_x - off_x``.
    """
    short = min(width, height)
    new_w = max(size, round(width * size / short))
    new_h = max(size, round(height * size / short))
    return new_w, new_h, new_w / width, new_h / height, (new_w - size) // 2, (new_h - size) // 2


def map_box(box, width: int, height: int, size: int) -> np.ndarray:
    """Map a half-open box (x0, y0, x1, y1) in original pixels into the stored crop, clipped.

    Returns int64 (4,) rounded to whole pixels and clipped to [0, size]; a box that falls
    entirely outside the crop comes out empty (x0 == x1 or y0 == y1).
    """
    _, _, sx, sy, ox, oy = resize_crop_geometry(width, height, size)
    x0, y0, x1, y1 = box
    out = np.array([np.floor(x0 * sx - ox), np.floor(y0 * sy - oy),
                    np.ceil(x1 * sx - ox), np.ceil(y1 * sy - oy)])
    return np.clip(out, 0, size).astype(np.int64)


def to_8bit(img: Image.Image) -> Image.Image:
    """Scale a wide single-channel image to 8-bit mode "L"; other modes are returned unchanged.

    The rule: "I;16*" (16-bit) and "I" (32-bit integer, which Pillow also uses for 16-bit data)
    are read as 0..65535 (clipped to it) and mapped to round(v / 257), so 0 -> 0, 65535 -> 255,
    and the result is ``v >> 8`` within 1. "F" (float) is read as 0..1 intensities, the usual
    float-image convention, mapped to round(v * 255) and clipped (NaN -> 0).
    """
    if img.mode.startswith("I"):                  # "I", "I;16", "I;16B", "I;16L", "I;16N"
        v = np.clip(np.asarray(img, np.int64), 0, 65535)
        out = (v + 128) // 257                    # = round(v / 257): 257 is odd, so no ties
    elif img.mode == "F":
        v = np.nan_to_num(np.asarray(img, np.float64), nan=0.0)
        out = np.rint(np.clip(v, 0.0, 1.0) * 255)
    else:
        return img
    return Image.fromarray(out.astype(np.uint8))  # 2-D uint8 -> mode "L"


def load_rgb(path: str, size: int):
    """Decode ``path`` into uint8 (size, size, 3) RGB after shorter-side resize and centre crop.

    Returns ``(array, (width, height))`` with the original size, for mapping boxes. Raises the
    decoder's error (OSError, ValueError, ...) for a corrupt or unreadable file, and
    :class:`DataError` for an aspect ratio beyond :data:`MAX_ASPECT`.
    """
    with Image.open(path) as img:
        width, height = img.size
        if max(width, height) > MAX_ASPECT * min(width, height):
            raise DataError(f"{width}x{height} pixels, an aspect ratio beyond {MAX_ASPECT}:1 "
                            "(its centre crop would show under 1% of it)")
        new_w, new_h, _, _, ox, oy = resize_crop_geometry(width, height, size)
        img.draft("RGB", (new_w, new_h))       # JPEG: decode at a reduced scale when it can
        img = to_8bit(img)                     # 16/32-bit and float: scale, don't clip
        if img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")          # palette transparency must go through RGBA
        img = img.convert("RGB")
        if max(new_w, new_h) <= EXACT_ASPECT * size:
            if img.size != (new_w, new_h):
                img = img.resize((new_w, new_h), Image.BILINEAR)
            img = img.crop((ox, oy, ox + size, oy + size))
        else:                                  # only the region that becomes the crop
            sx, sy = img.width / new_w, img.height / new_h      # (draft may have shrunk it)
            img = img.resize((size, size), Image.BILINEAR,
                             box=(ox * sx, oy * sy, (ox + size) * sx, (oy + size) * sy))
        arr = np.asarray(img, dtype=np.uint8)
    return arr, (width, height)
