"""Shared test fixtures: tiny image files in the real datasets' on-disk layouts."""
import os

import numpy as np
import pytest
from PIL import Image


def write_image(path, w=20, h=16, mode="RGB", seed=0, fmt=None):
    """Write a small random image (any Pillow mode) to ``path``; returns its RGB uint8 pixels."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img = Image.fromarray(rgb)
    if mode == "L":
        img = img.convert("L")
    elif mode == "P":
        img = img.convert("P")
    elif mode == "CMYK":
        img = img.convert("CMYK")
    img.save(path, format=fmt)
    return np.asarray(img.convert("RGB"))


def write_corrupt(path):
    """A file with an image extension whose bytes are not an image."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 this is not really a jpeg")


@pytest.fixture
def zfraw_data():
    """The real data directory from $ZFRAW_DATA, or skip."""
    root = os.environ.get("ZFRAW_DATA")
    if not root or not os.path.isdir(root):
        pytest.skip("ZFRAW_DATA not set")
    return root
