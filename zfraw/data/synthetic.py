"""The built-in ``synthetic`` dataset: ten object classes on cluttered, textured backgrounds.

No files: every image is drawn with vectorized NumPy from a seed, so a demo or a test can train a
net anywhere. Each image holds one object whose *shape* is the class (disc, square, triangle,
cross, ring, star, stripes, checker, ellipse, diamond). Colour, scale, rotation and position are
drawn at random and independently of the class, so colour alone says nothing about the class.
The background is a random colour with a smooth sinusoidal texture, pixel noise, and clutter
(small blobs and thin lines) that never decides the class. The box is the tight bounding box of
the object's pixels.

Parts (our addition, for the correspondence analysis of the paper's Table 1): every class has
two or three named parts (a square's corner, a star's tip, a ring's hole, ...; ``PARTS``) at
fixed places in the object's own frame, so their boxes in each image follow from the same draws
(``make_parts``, ``validation_parts``) and the same part is occluded in every image of a class.

Determinism: images are drawn in chunks of ``CHUNK`` with one RNG per chunk (seeded from
``(seed, chunk index)``), so image ``i`` depends only on ``(seed, i, size)``: the first 100
images of ``make_synthetic(1000, s)`` are ``make_synthetic(100, s)``.
"""
from __future__ import annotations

import numpy as np

CLASSES = ("disc", "square", "triangle", "cross", "ring", "star", "stripes", "checker",
           "ellipse", "diamond")
CHUNK = 256
_VAL_SEED_OFFSET = 1_000_003  # the validation split uses an unrelated stream of the same seed


def _shape_mask(k: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-mask of class ``k`` in object coordinates (u, v), object radius 1. Shape (n,H,W)."""
    rho2 = u * u + v * v
    if k == 0:                                             # disc
        return rho2 <= 1.0
    if k == 1:                                             # square
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8
    if k == 2:                                             # equilateral triangle
        inside = np.ones(u.shape, bool)
        for a in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3):
            inside &= np.cos(a) * u + np.sin(a) * v <= 0.5
        return inside
    if k == 3:                                             # plus-shaped cross
        au, av = np.abs(u), np.abs(v)
        return ((au <= 0.3) & (av <= 1.0)) | ((av <= 0.3) & (au <= 1.0))
    if k == 4:                                             # ring
        return (rho2 <= 1.0) & (rho2 >= 0.5 ** 2)
    if k == 5:                                             # five-pointed star
        t = np.abs((np.arctan2(v, u) * 5 / (2 * np.pi)) % 1.0 - 0.5) * 2  # 1 at tips, 0 between
        return np.sqrt(rho2) <= 0.4 + 0.6 * t ** 2
    if k == 6:                                             # square patch of three stripes
        return (np.maximum(np.abs(u), np.abs(v)) <= 0.9) & (np.cos(u * np.pi * 2.5) > 0)
    if k == 7:                                             # 3x3 checkerboard patch
        return ((np.maximum(np.abs(u), np.abs(v)) <= 0.9)
                & (np.sin(u * np.pi * 1.67) * np.sin(v * np.pi * 1.67) > 0))
    if k == 8:                                             # ellipse, axes 1 and 0.55
        return u * u + (v / 0.55) ** 2 <= 1.0
    if k == 9:                                             # thin diamond (rhombus), axes 1 and 0.5
        return np.abs(u) + np.abs(v) / 0.5 <= 1.0
    raise ValueError(f"class index {k} out of range 0..{len(CLASSES) - 1}")


def _draw_params(rng: np.random.Generator, n: int, size: int) -> dict:
    """All random choices for ``n`` images (one chunk), drawn in a fixed order."""
    p = {}
    p["label"] = rng.integers(0, len(CLASSES), n)
    p["radius"] = rng.uniform(0.22, 0.36, n) * size              # object radius in pixels
    margin = p["radius"] * 0.9                                   # keep most of the object inside
    p["cx"] = rng.uniform(margin, size - margin)
    p["cy"] = rng.uniform(margin, size - margin)
    p["theta"] = rng.uniform(-np.pi, np.pi, n)
    p["bg"] = rng.uniform(0, 255, (n, 3))
    fg = rng.uniform(0, 255, (n, 3))
    # Keep the object visible: too close to the background colour -> use the complement.
    close = np.linalg.norm(fg - p["bg"], axis=1) < 100
    p["fg"] = np.where(close[:, None], 255 - fg, fg)
    # Smooth texture: two random plane waves.
    p["tex_freq"] = rng.uniform(0.05, 0.5, (n, 2))                 # radians per pixel
    p["tex_angle"] = rng.uniform(0, np.pi, (n, 2))
    p["tex_phase"] = rng.uniform(0, 2 * np.pi, (n, 2))
    p["tex_amp"] = rng.uniform(5, 25, (n, 2, 3))
    # Clutter: small blobs and thin line segments of random colours.
    nb, nl = 6, 4
    p["blob_c"] = rng.uniform(0, size, (n, nb, 2))
    p["blob_r"] = rng.uniform(1.0, 0.06 * size, (n, nb))
    p["blob_on"] = rng.random((n, nb)) < 0.7
    p["blob_col"] = rng.uniform(0, 255, (n, nb, 3))
    p["line_a"] = rng.uniform(0, size, (n, nl, 2))
    p["line_b"] = rng.uniform(0, size, (n, nl, 2))
    p["line_w"] = rng.uniform(0.5, 1.5, (n, nl))
    p["line_on"] = rng.random((n, nl)) < 0.6
    p["line_col"] = rng.uniform(0, 255, (n, nl, 3))
    p["noise_seed"] = rng.integers(0, 2 ** 63, n)
    # float32 throughout rendering (float64 parameters would upcast every image-sized array).
    return {k: (a.astype(np.float32) if a.dtype == np.float64 else a) for k, a in p.items()}


def _render(p: dict, size: int, return_masks: bool):
    """Render one chunk of parameters. Returns (images uint8 (n,H,W,3), boxes int64 (n,4), masks)."""
    n = len(p["label"])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5      # pixel centres
    img = np.empty((n, size, size, 3), np.float32)

    # Background colour + texture.
    img[:] = p["bg"][:, None, None, :]
    for j in range(2):
        ang = p["tex_angle"][:, j, None, None]
        wave = np.sin(p["tex_freq"][:, j, None, None] * (np.cos(ang) * xx + np.sin(ang) * yy)
                      + p["tex_phase"][:, j, None, None])
        img += wave[..., None] * p["tex_amp"][:, j, None, None, :]

    # Clutter blobs (smaller than any object) and line segments.
    for j in range(p["blob_r"].shape[1]):
        d2 = (xx - p["blob_c"][:, j, 0, None, None]) ** 2 + (yy - p["blob_c"][:, j, 1, None, None]) ** 2
        m = (d2 <= p["blob_r"][:, j, None, None] ** 2) & p["blob_on"][:, j, None, None]
        np.copyto(img, p["blob_col"][:, j, None, None, :], where=m[..., None])
    for j in range(p["line_w"].shape[1]):
        a, b = p["line_a"][:, j], p["line_b"][:, j]
        ab = b - a
        t = ((xx - a[:, 0, None, None]) * ab[:, 0, None, None]
             + (yy - a[:, 1, None, None]) * ab[:, 1, None, None]) / (ab ** 2).sum(1)[:, None, None]
        t = np.clip(t, 0, 1)
        dx = xx - (a[:, 0, None, None] + t * ab[:, 0, None, None])
        dy = yy - (a[:, 1, None, None] + t * ab[:, 1, None, None])
        m = (dx * dx + dy * dy <= p["line_w"][:, j, None, None] ** 2) & p["line_on"][:, j, None, None]
        np.copyto(img, p["line_col"][:, j, None, None, :], where=m[..., None])

    # The object, in its own rotated and scaled coordinates, drawn on top.
    c, s = np.cos(p["theta"])[:, None, None], np.sin(p["theta"])[:, None, None]
    r = p["radius"][:, None, None]
    dx, dy = xx - p["cx"][:, None, None], yy - p["cy"][:, None, None]
    u, v = (c * dx + s * dy) / r, (-s * dx + c * dy) / r
    mask = np.zeros((n, size, size), bool)
    for k in range(len(CLASSES)):
        sel = np.flatnonzero(p["label"] == k)
        if sel.size:
            mask[sel] = _shape_mask(k, u[sel], v[sel])
    np.copyto(img, p["fg"][:, None, None, :], where=mask[..., None])

    # Pixel noise, from a per-image stream so it does not depend on the chunk layout.
    noise = np.stack([np.random.default_rng(int(ns)).standard_normal((size, size, 3), np.float32)
                      for ns in p["noise_seed"]])
    img += 6.0 * noise
    images = np.clip(np.rint(img), 0, 255).astype(np.uint8)

    rows, cols = mask.any(2), mask.any(1)                     # (n,H), (n,W)
    boxes = np.stack([cols.argmax(1), rows.argmax(1),
                      size - cols[:, ::-1].argmax(1), size - rows[:, ::-1].argmax(1)], 1)
    return images, boxes.astype(np.int64), (mask if return_masks else None)


def make_synthetic(n: int, seed: int = 0, size: int = 64, return_masks: bool = False):
    """Generate ``n`` synthetic images deterministically from ``seed``.

    Returns ``(images, labels, boxes)``: images uint8 (n, size, size, 3) RGB, labels int64 (n,)
    in 0..9 (names in ``CLASSES``), boxes int64 (n, 4) as (x0, y0, x1, y1), half-open pixel
    bounds of the object's pixels (so ``mask[y0:y1, x0:x1]`` holds the whole object). With
    ``return_masks=True`` a fourth item, the object masks bool (n, size, size), is returned.
    """
    if n < 0 or size < 16:
        raise ValueError(f"make_synthetic needs n >= 0 and size >= 16, got n={n}, size={size}")
    parts = []
    for chunk in range((n + CHUNK - 1) // CHUNK):
        rng = np.random.default_rng([seed, chunk, size])
        p = _draw_params(rng, CHUNK, size)
        take = min(CHUNK, n - chunk * CHUNK)
        p = {key: val[:take] for key, val in p.items()}
        parts.append((p["label"],) + _render(p, size, return_masks))
    if not parts:
        empty = (np.zeros((0, size, size, 3), np.uint8), np.zeros(0, np.int64),
                 np.zeros((0, 4), np.int64))
        return empty + ((np.zeros((0, size, size), bool),) if return_masks else ())
    labels = np.concatenate([q[0] for q in parts]).astype(np.int64)
    images = np.concatenate([q[1] for q in parts])
    boxes = np.concatenate([q[2] for q in parts])
    if return_masks:
        return images, labels, boxes, np.concatenate([q[3] for q in parts])
    return images, labels, boxes


def synthetic_splits(n_train: int, n_val: int, seed: int = 0, size: int = 64):
    """Train and validation sets drawn from unrelated streams of one seed.

    Returns ``((train_images, train_labels, train_boxes), (val_images, val_labels, val_boxes))``
    with the shapes of :func:`make_synthetic`.
    """
    return (make_synthetic(n_train, seed, size),
            make_synthetic(n_val, seed + _VAL_SEED_OFFSET, size))


# -- object parts (the correspondence analysis of the paper's Sec. 5, Table 1 and Fig. 8) -------
# Each class's named parts as points in object coordinates (u, v), object radius 1, the frame
# in which _shape_mask draws the shape: the same part of the same shape in every image,
# whatever its position, size, rotation and colour (the paper occludes the left eye, the right
# eye and the nose of five dogs). Points sit inside the shape, or on its visible feature (the
# ring's hole); a part's box is a square of side 2 * PART_HALF * radius centred on the point.
PARTS = {
    "disc": {"centre": (0.0, 0.0), "rim": (0.7, 0.0)},
    "square": {"corner": (0.55, 0.55), "edge middle": (0.6, 0.0), "centre": (0.0, 0.0)},
    "triangle": {"tip": (0.0, -0.65), "edge middle": (0.0, 0.3), "centre": (0.0, 0.0)},
    "cross": {"arm end": (0.75, 0.0), "inner corner": (0.3, 0.3), "centre": (0.0, 0.0)},
    "ring": {"hole": (0.0, 0.0), "band": (0.75, 0.0)},
    "star": {"tip": (0.7, 0.0), "notch": (0.3 * np.cos(np.pi / 5), 0.3 * np.sin(np.pi / 5)),
             "centre": (0.0, 0.0)},
    "stripes": {"middle stripe": (0.0, 0.0), "outer stripe": (0.75, 0.0),
                "stripe end": (0.0, 0.7)},
    "checker": {"centre": (0.0, 0.0), "corner cell": (0.6, 0.6), "edge cell": (0.6, 0.0)},
    "ellipse": {"long end": (0.7, 0.0), "flank": (0.0, 0.35), "centre": (0.0, 0.0)},
    "diamond": {"sharp tip": (0.65, 0.0), "blunt tip": (0.0, 0.3), "centre": (0.0, 0.0)},
}
PART_HALF = 0.3  # half the side of a part's box, in object radii


def part_points(p: dict, k: int):
    """Image coordinates (x, y) of the parts of image k (its class's PARTS) -> {name: (x, y)}."""
    c, s = float(np.cos(p["theta"][k])), float(np.sin(p["theta"][k]))
    r = float(p["radius"][k])
    # _render's object frame: u = (c dx + s dy) / r, v = (-s dx + c dy) / r, inverted.
    return {name: (float(p["cx"][k]) + r * (c * u - s * v), float(p["cy"][k]) + r * (s * u + c * v))
            for name, (u, v) in PARTS[CLASSES[int(p["label"][k])]].items()}


def make_parts(n: int, seed: int = 0, size: int = 64) -> list:
    """The part boxes of the ``n`` images of ``make_synthetic(n, seed, size)`` (the same random
    draws, nothing rendered): one dict per image, {part name: (x0, y0, x1, y1)} half-open
    whole-pixel boxes in image pixels (the order of the object boxes), clipped to the image,
    for the parts of its class in ``PARTS``."""
    out = []
    for chunk in range((n + CHUNK - 1) // CHUNK):
        p = _draw_params(np.random.default_rng([seed, chunk, size]), CHUNK, size)
        for k in range(min(CHUNK, n - chunk * CHUNK)):
            half = PART_HALF * float(p["radius"][k])
            boxes = {}
            for name, (x, y) in part_points(p, k).items():
                box = np.clip([np.floor(x - half), np.floor(y - half), np.ceil(x + half),
                               np.ceil(y + half)], 0, size).astype(np.int64)
                boxes[name] = tuple(int(v) for v in box)
            out.append(boxes)
    return out


def validation_parts(n_val: int, seed: int = 0, size: int = 64) -> list:
    """The part boxes of the validation split of :func:`synthetic_splits` (its first ``n_val``
    images, as :func:`make_parts` gives them)."""
    return make_parts(n_val, seed + _VAL_SEED_OFFSET, size)
