"""Dataset specs as the command line writes them.

    synthetic            the built-in dataset, 10,000 train + 2,000 val images
    synthetic:N          N train + N // 5 val images
    tiny-imagenet:PATH   Tiny ImageNet original layout (zfraw.data.tiny_imagenet)
    tiny-imagenet-N:PATH its first N classes (wnids.txt order), for runs at a smaller scale
    folder:PATH          PATH/train/<class>/*, PATH/val/<class>/* (zfraw.data.folders)
    caltech101:PATH      Caltech-101, 30 train / up to 50 test per class (zfraw.data.caltech101)
    caltech101-N:PATH    the same with N training images per class (the paper: 15 or 30)
    caltech256[-N]:PATH  Caltech-256, N (default 30; the paper: 15, 30, 45, 60) train / up to
                         25 test per class, the clutter class excluded

The Caltech splits are drawn from the run's seed: five seeds give the paper's five splits.
"""
from __future__ import annotations

import os
import re

from .caltech101 import N_TEST, load_caltech101, load_caltech256
from .dataset import Dataset, first_classes
from .folders import load_folder
from .images import DataError
from .synthetic import CLASSES, synthetic_splits
from .tiny_imagenet import load_tiny_imagenet

KINDS = ("synthetic", "tiny-imagenet", "folder", "caltech101", "caltech256")
CALTECH = re.compile(r"^(caltech101|caltech256)(?:-(\d+))?$")
TINY_SUBSET = re.compile(r"^tiny-imagenet-(\d+)$")


def caltech_kind(kind: str):
    """'caltech101-15' -> ('caltech101', 15); 'caltech256' -> ('caltech256', 30); None for a
    kind that is not a Caltech one."""
    m = CALTECH.match(kind)
    if not m:
        return None
    n = int(m.group(2)) if m.group(2) else 30
    if n < 1:
        raise DataError(f"{kind}: training images per class must be >= 1")
    return m.group(1), n
SYNTHETIC_DEFAULT_N = 10_000


def parse_spec(spec: str) -> tuple[str, str | int | None]:
    """Split a spec into ``(kind, argument)``: an int N or None for synthetic, a path otherwise.

    Raises :class:`DataError` for an unknown kind, a bad N, or a path that does not exist.
    """
    kind, sep, arg = spec.partition(":")
    if kind not in KINDS and not caltech_kind(kind) and not TINY_SUBSET.match(kind):
        raise DataError(f"unknown dataset kind {kind!r} in {spec!r}; choose one of "
                        + ", ".join(KINDS) + " (e.g. synthetic, synthetic:2000, tiny-imagenet:PATH)")
    if kind == "synthetic":
        if not sep:
            return kind, None
        if not arg.isdigit() or int(arg) < 1:
            raise DataError(f"synthetic:N needs a positive integer N, got {arg!r}")
        return kind, int(arg)
    if not arg:
        raise DataError(f"{kind} needs a path: {kind}:PATH")
    path = os.path.expanduser(arg)
    if not os.path.isdir(path):
        raise DataError(f"{kind}: no such directory {path}")
    return kind, path


def load_spec(spec: str, size: int, seed: int = 0, cache_dir: str | None = None,
              on_error: str = "warn") -> tuple[Dataset, Dataset]:
    """Load ``(train, val)`` for a spec with images stored at ``size`` x ``size``.

    ``seed`` draws the synthetic images and the Caltech split.
    """
    kind, arg = parse_spec(spec)
    if kind == "synthetic":
        n = arg or SYNTHETIC_DEFAULT_N
        parts = synthetic_splits(n, max(1, n // 5), seed, size)
        return tuple(Dataset(images=im, labels=lab, boxes=box, classes=list(CLASSES),
                             names=list(CLASSES)) for im, lab, box in parts)
    if kind == "tiny-imagenet":
        return load_tiny_imagenet(arg, size, cache_dir, on_error)
    subset = TINY_SUBSET.match(kind)
    if subset:
        n = int(subset.group(1))
        train, val = load_tiny_imagenet(arg, size, cache_dir, on_error)
        if not 1 <= n <= train.num_classes:
            raise DataError(f"{kind}: N must be between 1 and the dataset's {train.num_classes} "
                            f"classes, got {n}")
        return first_classes(train, n), first_classes(val, n)
    if kind == "folder":
        return load_folder(arg, size, cache_dir, on_error)
    base, n_train = caltech_kind(kind)
    loader = load_caltech101 if base == "caltech101" else load_caltech256
    return loader(arg, size, n_train=n_train, n_test=N_TEST[base], seed=seed, cache_dir=cache_dir,
                  on_error=on_error)
