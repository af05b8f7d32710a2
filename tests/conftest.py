"""Shared test fixtures: tiny image files in the real datasets' on-disk layouts, the CUDA
emulator, a trained run."""
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


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    """The CUDA emulator (kernels/cuda/emulator.py), compiling each .cu once per session; a skip
    without g++."""
    from kernels.cuda import emulator
    if not emulator.available():
        pytest.skip("g++ not on PATH")
    return emulator.Emulator(tmp_path_factory.mktemp("cuda_emu"))


@pytest.fixture(params=["batched", "per-image"])
def conv_products(request, monkeypatch):
    """Run a conv test through both ways of doing the products (zfraw/layers/conv.py): the
    threshold on output pixels is set so that every map is small, or every map is large."""
    import zfraw.layers.conv as conv_module

    monkeypatch.setattr(conv_module, "PER_IMAGE_MIN_PIXELS",
                        10**9 if request.param == "batched" else 1)
    return request.param


def train_folder_run(base, per_class: int, w: int, h: int):
    """A one-epoch zf-32 (width 0.125) run on a folder: dataset of 3 classes (ant, bee, cat),
    ``per_class`` w x h images each in train/ and val/, written under ``base``; its decode cache
    in ``base/cache``. Returns (run folder, dataset root)."""
    from zfraw.training import TrainConfig, train

    root = base / "ds"
    for split in ("train", "val"):
        for k, c in enumerate(("ant", "bee", "cat")):
            for i in range(per_class):
                write_image(str(root / split / c / f"{i}.png"), w=w, h=h, seed=10 * k + i)
    out = base / "run"
    train(TrainConfig(arch="zf-32", width=0.125, data=f"folder:{root}", epochs=1,
                      batch_size=per_class, init="he", input_scale=1 / 64, impl="numpy",
                      out=str(out), cache_dir=str(base / "cache"), progress=False,
                      prefetch=False), log=lambda *a: None)
    return out, root


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A finished one-epoch run of a small zf-32 on 96 synthetic images (never modified by the
    tests: copy it before changing anything)."""
    from zfraw.training import TrainConfig, train

    out = tmp_path_factory.mktemp("trained") / "run"
    train(TrainConfig(arch="zf-32", width=0.125, data="synthetic:96", epochs=1, batch_size=32,
                      init="he", input_scale=1 / 64, impl="numpy", out=str(out), progress=False,
                      prefetch=False), log=lambda *a: None)
    return out
