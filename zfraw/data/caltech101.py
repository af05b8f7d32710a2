"""Caltech-101 (``root/101_ObjectCategories/<class>/*.jpg``) and Caltech-256
(``root/256_ObjectCategories/NNN.name/*.jpg``) with the paper's protocols.

Zeiler & Fergus (Sec. 5.2) train on N images per class (Caltech-101: 15 or 30, testing on up
to 50 of the rest; Caltech-256: 15, 30, 45 or 60, testing on up to 25 of the rest, following
Griffin et al.), report accuracy averaged over classes, and repeat over random splits. Here a
split is drawn from ``seed``: each class's files are shuffled, the first ``n_train`` train, the
next up to ``n_test`` test, so splits of different seeds differ and the train and test images
of one split never overlap. Caltech-101's ``BACKGROUND_Google`` and Caltech-256's
``257.clutter`` are not classes and are excluded. A class with no images or with too few for
``n_train`` plus one test image is an error (:class:`DataError`).
"""
from __future__ import annotations

import os
import re

import numpy as np

from .dataset import Dataset, build_dataset
from .folders import check_not_empty, list_class_folders
from .images import DataError

EXCLUDED = ("BACKGROUND_Google", "257.clutter")
# The paper's training images per class, and the test images per class of each protocol.
TRAIN_SIZES = {"caltech101": (15, 30), "caltech256": (15, 30, 45, 60)}
N_TEST = {"caltech101": 50, "caltech256": 25}


def load_caltech101(root: str, size: int, n_train: int = 30, n_test: int = 50, seed: int = 0,
                    cache_dir: str | None = None, on_error: str = "warn") -> tuple[Dataset, Dataset]:
    """Load one random split of Caltech-101. ``root`` holds ``101_ObjectCategories/`` (or is it).

    Returns ``(train, test)``; every image is decoded once (one cache for all splits) and the
    split is a selection of rows, so new seeds cost nothing.
    """
    full = load_caltech_all(root, "caltech101", size, cache_dir, on_error)
    return tuple(_subset(full, rows) for rows in split_rows(full, n_train, n_test, seed,
                                                           "Caltech-101"))


def load_caltech256(root: str, size: int, n_train: int = 30, n_test: int = 25, seed: int = 0,
                    cache_dir: str | None = None, on_error: str = "warn") -> tuple[Dataset, Dataset]:
    """Load one random split of Caltech-256 (``root`` holds ``256_ObjectCategories/`` or is
    it); class folders are ``NNN.name``, the names without the number. As
    :func:`load_caltech101` otherwise."""
    full = load_caltech_all(root, "caltech256", size, cache_dir, on_error)
    return tuple(_subset(full, rows) for rows in split_rows(full, n_train, n_test, seed,
                                                           "Caltech-256"))


FOLDERS = {"caltech101": ("101_ObjectCategories", "Caltech-101"),
           "caltech256": ("256_ObjectCategories", "Caltech-256")}


def load_caltech_all(root: str, kind: str, size: int, cache_dir: str | None = None,
                     on_error: str = "warn") -> Dataset:
    """Every image of a Caltech tree (``kind``: 'caltech101' or 'caltech256'), one Dataset
    whose ``files`` are relative to the category folder; :func:`split_rows` draws the splits."""
    folder, what = FOLDERS[kind]
    if not os.path.isdir(root):
        raise DataError(f"{what}: no such directory {root}")
    cat_dir = os.path.join(root, folder)
    if not os.path.isdir(cat_dir):
        cat_dir = root
    listing = {c: f for c, f in list_class_folders(cat_dir).items() if c not in EXCLUDED}
    check_not_empty(listing, cat_dir)
    classes = list(listing)
    names = [re.sub(r"^\d+\.", "", c) for c in classes]   # Caltech-256's '001.ak47' -> 'ak47'
    files = [os.path.join(c, f) for c, fs in listing.items() for f in fs]
    labels = np.array([i for i, fs in enumerate(listing.values()) for _ in fs], np.int64)
    return build_dataset(cat_dir, "all", files, labels, None, classes, names, size,
                         cache_dir, on_error, train=True)  # every class has training images


def split_rows(full: Dataset, n_train: int, n_test: int, seed: int, what: str = "Caltech") -> tuple:
    """(train rows, test rows) of one random split of ``full``: per class, ``n_train`` shuffled
    images for training and up to ``n_test`` of the rest for testing; sorted row indices.
    Raises :class:`DataError` naming classes with fewer than ``n_train + 1`` images."""
    if n_train < 1 or n_test < 1:
        raise DataError(f"{what}: n_train and n_test must be >= 1, got {n_train}, {n_test}")
    counts = np.bincount(full.labels, minlength=full.num_classes)
    short = [f"{c} ({n})" for c, n in zip(full.classes, counts) if n < n_train + 1]
    if short:
        raise DataError(f"{what}: class(es) with fewer than n_train + 1 = {n_train + 1} "
                        f"images: {', '.join(short)}")
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for k in range(full.num_classes):
        rows = rng.permutation(np.flatnonzero(full.labels == k))
        train_idx.append(rows[:n_train])
        test_idx.append(rows[n_train:n_train + n_test])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(test_idx))


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
