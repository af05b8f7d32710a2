"""Caltech-101 (``root/101_ObjectCategories/<class>/*.jpg``) with the paper's protocol.

Zeiler & Fergus (Sec. 5.2) train on N = 15 or 30 images per class and test on up to 50 of the
rest, report accuracy averaged over classes, and repeat over random splits. Here a split is drawn
from ``seed``: each class's files are shuffled, the first ``n_train`` train, the next up to
``n_test`` test. ``BACKGROUND_Google`` is not a class and is excluded. A class with no images
or with too few for ``n_train`` plus one test image is an error (:class:`DataError`).
"""
from __future__ import annotations

import os

import numpy as np

from .dataset import Dataset, build_dataset
from .folders import check_not_empty, list_class_folders
from .images import DataError

EXCLUDED = ("BACKGROUND_Google",)


def load_caltech101(root: str, size: int, n_train: int = 30, n_test: int = 50, seed: int = 0,
                    cache_dir: str | None = None, on_error: str = "warn") -> tuple[Dataset, Dataset]:
    """Load one random split of Caltech-101. ``root`` holds ``101_ObjectCategories/`` (or is it).

    Returns ``(train, test)``; every image is decoded once (one cache for all splits) and the
    split is a selection of rows, so new seeds cost nothing.
    """
    if not os.path.isdir(root):
        raise DataError(f"Caltech-101: no such directory {root}")
    cat_dir = os.path.join(root, "101_ObjectCategories")
    if not os.path.isdir(cat_dir):
        cat_dir = root
    listing = {c: f for c, f in list_class_folders(cat_dir).items() if c not in EXCLUDED}
    check_not_empty(listing, cat_dir)
    short = [f"{c} ({len(f)})" for c, f in listing.items() if len(f) < n_train + 1]
    if short:
        raise DataError(f"Caltech-101: class(es) with fewer than n_train + 1 = {n_train + 1} "
                        f"images: {', '.join(short)}")
    classes = list(listing)
    files = [os.path.join(c, f) for c, fs in listing.items() for f in fs]
    labels = np.array([i for i, fs in enumerate(listing.values()) for _ in fs], np.int64)
    full = build_dataset(cat_dir, "all", files, labels, None, classes, classes, size,
                         cache_dir, on_error, train=True)  # every class has training images

    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for k in range(len(classes)):
        rows = rng.permutation(np.flatnonzero(full.labels == k))
        train_idx.append(rows[:n_train])
        test_idx.append(rows[n_train:n_train + n_test])
    return tuple(_subset(full, np.sort(np.concatenate(ix))) for ix in (train_idx, test_idx))


def _subset(ds: Dataset, rows: np.ndarray) -> Dataset:
    return Dataset(images=ds.images[rows], labels=ds.labels[rows], boxes=None,
                   classes=ds.classes, names=ds.names, files=[ds.files[i] for i in rows])


def mean_per_class_accuracy(pred, labels, num_classes: int) -> float:
    """Accuracy averaged over classes (Caltech protocol). pred, labels: int (N,).

    Classes with no test example are left out of the average.
    """
    pred, labels = np.asarray(pred), np.asarray(labels)
    if pred.shape != labels.shape:
        raise ValueError(f"pred {pred.shape} and labels {labels.shape} differ in shape")
    correct = np.bincount(labels, weights=(pred == labels), minlength=num_classes)
    count = np.bincount(labels, minlength=num_classes)
    present = count > 0
    return float(np.mean(correct[present] / count[present]))
