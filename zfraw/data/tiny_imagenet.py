"""Tiny ImageNet in its original layout (Stanford CS231N).

    root/wnids.txt                        one wnid per line; its order is the class order
    root/words.txt                        wnid <tab> readable name (may list many more wnids)
    root/train/<wnid>/images/*.JPEG       training images
    root/train/<wnid>/<wnid>_boxes.txt    file <tab> x0 y0 x1 y1 (inclusive pixel bounds)
    root/val/images/*.JPEG                validation images
    root/val/val_annotations.txt          file <tab> wnid <tab> x0 y0 x1 y1

A wnid listed in wnids.txt without a train folder, or with no images in it, is an error
(:class:`DataError`): the class indices would not mean what wnids.txt says. Boxes are returned
half-open in stored-image pixels (the inclusive x1, y1 of the files get +1).

Stored size: Tiny ImageNet images are 64x64. We store them at 72 (upsampled) and train on random
64 crops, the same crop/stored ratio as the paper's 224/256, so the 64x64 nets see the whole
field they were designed for; ``size`` may be set to 64 (then crops must be smaller, e.g. 56).
"""
from __future__ import annotations

import os

from .dataset import Dataset, build_dataset
from .images import DataError, is_image_file


def _read_lines(path: str) -> list:
    if not os.path.isfile(path):
        raise DataError(f"Tiny ImageNet: missing {path}")
    with open(path) as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def _box(fields) -> list:
    x0, y0, x1, y1 = (float(v) for v in fields)
    return [x0, y0, x1 + 1, y1 + 1]  # inclusive -> half-open


def load_tiny_imagenet(root: str, size: int = 72, cache_dir: str | None = None,
                       on_error: str = "warn") -> tuple[Dataset, Dataset]:
    """Load the train and val splits of a Tiny ImageNet folder. Returns ``(train, val)``."""
    if not os.path.isdir(root):
        raise DataError(f"Tiny ImageNet: no such directory {root}")
    wnids = [w.strip() for w in _read_lines(os.path.join(root, "wnids.txt"))]
    index = {w: i for i, w in enumerate(wnids)}
    words = {}
    words_path = os.path.join(root, "words.txt")
    if os.path.isfile(words_path):
        for line in _read_lines(words_path):
            wnid, _, name = line.partition("\t")
            words[wnid] = name.strip()
    names = [words.get(w, w) for w in wnids]

    files, labels, boxes = [], [], []
    for wnid in wnids:
        img_dir = os.path.join(root, "train", wnid, "images")
        if not os.path.isdir(img_dir):
            raise DataError(f"Tiny ImageNet: wnids.txt lists {wnid} but {img_dir} does not exist "
                            "(remove the wnid from wnids.txt or restore the folder)")
        names_here = sorted(f for f in os.listdir(img_dir) if is_image_file(f))
        if not names_here:
            raise DataError(f"Tiny ImageNet: class {wnid} has no images in {img_dir}")
        box_of = {}
        box_path = os.path.join(root, "train", wnid, f"{wnid}_boxes.txt")
        if os.path.isfile(box_path):
            for line in _read_lines(box_path):
                fields = line.split()
                box_of[fields[0]] = _box(fields[1:5])
        for name in names_here:
            files.append(os.path.join("train", wnid, "images", name))
            labels.append(index[wnid])
            boxes.append(box_of.get(name, [-1, -1, -1, -1]))
    train = build_dataset(root, "train", files, labels, boxes, wnids, names, size,
                          cache_dir, on_error)

    files, labels, boxes = [], [], []
    for line in _read_lines(os.path.join(root, "val", "val_annotations.txt")):
        fields = line.split()
        if fields[1] not in index:
            raise DataError(f"Tiny ImageNet: val_annotations.txt gives {fields[0]} the wnid "
                            f"{fields[1]}, which is not in wnids.txt")
        files.append(os.path.join("val", "images", fields[0]))
        labels.append(index[fields[1]])
        boxes.append(_box(fields[2:6]))
    # absent, not merely unreadable (a broken link is named and skipped as unreadable)
    missing = [f for f in files if not os.path.lexists(os.path.join(root, f))]
    if missing:
        raise DataError(f"Tiny ImageNet: {len(missing)} file(s) named in val_annotations.txt "
                        f"do not exist: {', '.join(missing[:10])}" + (" ..." if len(missing) > 10 else ""))
    val = build_dataset(root, "val", files, labels, boxes, wnids, names, size, cache_dir, on_error,
                        train=False)
    return train, val
