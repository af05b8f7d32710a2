"""Class-folder datasets: ``root/train/<class>/*`` and ``root/val/<class>/*`` (ImageNet in the
common extracted form, Imagenette, ...).

Classes are the sorted folder names under ``train/``. A class folder with no image files is an
error (:class:`DataError`), as is a ``val/`` class that ``train/`` lacks; a ``train/`` class
missing from ``val/`` only gets a warning (it is just not evaluated). Files whose extension is not
an image extension (``images.IMAGE_EXTENSIONS``) are not images and are ignored; files with an
image extension that fail to decode are reported (see :mod:`zfraw.data.dataset`), symbolic links
to missing files or in a loop among them. A class folder that cannot be read (a symbolic link to
a missing folder or in a loop, a folder without read permission) is a :class:`DataError`: skipping
it would drop a class. No boxes.
"""
from __future__ import annotations

import os
import warnings

from .dataset import Dataset, build_dataset
from .images import DataError, is_image_file


def list_class_folders(split_dir: str) -> dict:
    """{class name: sorted image file names} for each sub-folder of ``split_dir``. Raises
    :class:`DataError` naming every entry that cannot be read as a class folder (a symbolic
    link to a missing folder or in a loop, a folder that cannot be listed)."""
    if not os.path.isdir(split_dir):
        raise DataError(f"missing folder {split_dir}")
    out, unreadable = {}, []
    for cls in sorted(os.listdir(split_dir)):
        path = os.path.join(split_dir, cls)
        if os.path.islink(path) and not os.path.exists(path):
            unreadable.append(f"{cls} (a symbolic link to a missing folder or in a loop)")
        elif os.path.isdir(path):
            try:
                out[cls] = sorted(f for f in os.listdir(path) if is_image_file(f))
            except OSError as e:
                unreadable.append(f"{cls} ({e.strerror})")
    if unreadable:
        raise DataError(f"{split_dir}: class folder(s) that cannot be read: "
                        f"{'; '.join(unreadable)} (fix or remove them)")
    if not out:
        raise DataError(f"{split_dir} has no class sub-folders")
    return out


def check_not_empty(listing: dict, where: str):
    """Raise :class:`DataError` naming every class folder of ``listing`` with no images."""
    empty = [c for c, files in listing.items() if not files]
    if empty:
        raise DataError(f"{where}: class folder(s) with no image files: {', '.join(empty)} "
                        "(remove them or add images)")


def load_folder(root: str, size: int, cache_dir: str | None = None,
                on_error: str = "warn") -> tuple[Dataset, Dataset]:
    """Load ``root/train`` and ``root/val`` class folders. Returns ``(train, val)``."""
    if not os.path.isdir(root):
        raise DataError(f"folder dataset: no such directory {root}")
    train_list = list_class_folders(os.path.join(root, "train"))
    check_not_empty(train_list, os.path.join(root, "train"))
    classes = list(train_list)
    index = {c: i for i, c in enumerate(classes)}
    val_list = list_class_folders(os.path.join(root, "val"))
    extra = [c for c in val_list if c not in index]
    if extra:
        raise DataError(f"{root}/val has class folder(s) that train/ lacks: {', '.join(extra)}")
    check_not_empty(val_list, os.path.join(root, "val"))
    absent = [c for c in classes if c not in val_list]
    if absent:
        warnings.warn(f"{root}/val has no folder for class(es) {', '.join(absent)}; "
                      "they are not evaluated", stacklevel=2)

    out = []
    for split, listing in (("train", train_list), ("val", val_list)):
        files = [os.path.join(split, c, f) for c, fs in listing.items() for f in fs]
        labels = [index[c] for c, fs in listing.items() for _ in fs]
        out.append(build_dataset(root, split, files, labels, None, classes, classes, size,
                                 cache_dir, on_error, train=split == "train"))
    return out[0], out[1]
