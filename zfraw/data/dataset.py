"""The in-memory dataset record and the decode-once cache behind every real loader.

A loader lists its files (path, label, box in original pixels); :func:`build_dataset` decodes
them once with a thread pool into a uint8 ``.npy`` under the cache directory and memory-maps it
on later runs. The cache key is the dataset root, the stored size, and the list of files with
their sizes and modification times, so editing the folder makes a fresh cache.

Unreadable files are never dropped silently: with ``on_error='warn'`` they are skipped with a
warning naming every one (again on every cached load); with ``on_error='raise'`` a
:class:`DataError` names them in one line. Unreadable includes a symbolic link to a missing file
or one that loops, and an image whose aspect ratio is beyond ``images.MAX_ASPECT``. A class left
with no readable image is a :class:`DataError` in a training split (it would train with no
examples) and a warning in an evaluation split (it is just not evaluated, as for a class folder
missing from ``val/``).

The cache is written to ``<name>.tmp<pid>`` files that are renamed into place when complete, and
removed on any failure (a decoder crash, Ctrl-C) (:mod:`zfraw.atomic`); a temporary left by a
killed process is never read, and is removed by the next load that finds its process gone. The
images' file is reserved on disk before it is filled through its memory map, so a full disk is
an ``OSError`` that says how much room the cache needs (not a SIGBUS that kills the process).
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..atomic import atomic_open, atomic_path, remove_stale_temporaries, reserve
from .images import DataError, load_rgb, map_box

CACHE_VERSION = 2  # bump when the decoding changes, so old caches are not reused


@dataclass
class Dataset:
    """One split of a dataset, decoded to a common size.

    images: uint8 (N, S, S, 3) RGB, possibly a read-only memory map.
    labels: int64 (N,) class indices into ``classes``.
    boxes: int64 (N, 4) half-open (x0, y0, x1, y1) in stored-image pixels, -1 rows where the
        dataset has no box for an image; None when it has none at all.
    classes: class ids (wnid or folder name), index = label. names: readable class names.
    files: source paths relative to the dataset root (empty for generated data).
    """

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray | None
    classes: list
    names: list
    files: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def size(self) -> int:
        """Side S of the stored square images."""
        return self.images.shape[1]


def first_classes(ds: Dataset, n: int) -> Dataset:
    """The images of ``ds``'s first ``n`` classes (labels 0..n-1 keep their indices)."""
    keep = np.flatnonzero(ds.labels < n)
    return Dataset(images=ds.images[keep], labels=ds.labels[keep],
                   boxes=None if ds.boxes is None else ds.boxes[keep],
                   classes=list(ds.classes[:n]), names=list(ds.names[:n]),
                   files=[ds.files[i] for i in keep] if ds.files else [])


def subset(ds: Dataset, keep: np.ndarray) -> Dataset:
    """The images ``keep`` (indices, in that order) of ``ds``, with every class kept."""
    return Dataset(images=ds.images[keep], labels=ds.labels[keep],
                   boxes=None if ds.boxes is None else ds.boxes[keep], classes=list(ds.classes),
                   names=list(ds.names), files=[ds.files[i] for i in keep] if ds.files else [])


def hold_out(ds: Dataset, per_class: int) -> tuple[Dataset, Dataset]:
    """Split a training set into (the images trained on, ``per_class`` held-out images of each
    class): the last ``per_class`` images of each class in the set's order, so the split is a
    function of the files alone. Recipe and schedule decisions are made on the held-out part,
    never on the validation set that results report. A class with no more than ``per_class``
    images is a :class:`DataError` (nothing would be left to train on)."""
    held = []
    for c in range(ds.num_classes):
        idx = np.flatnonzero(ds.labels == c)
        if len(idx) <= per_class:
            raise DataError(f"--holdout {per_class}: class {ds.classes[c]} has only {len(idx)} "
                            "training images; hold out fewer")
        held.append(idx[len(idx) - per_class:])
    held = np.sort(np.concatenate(held))
    rest = np.setdiff1d(np.arange(len(ds)), held)
    return subset(ds, rest), subset(ds, held)


def concatenate(a: Dataset, b: Dataset) -> Dataset:
    """``a``'s images then ``b``'s (the same classes, size and box convention), in memory."""
    if a.classes != b.classes or a.size != b.size or (a.boxes is None) != (b.boxes is None):
        raise DataError("cannot join two sets with different classes, image sizes or boxes")
    return Dataset(images=np.concatenate([a.images, b.images]),
                   labels=np.concatenate([a.labels, b.labels]),
                   boxes=None if a.boxes is None else np.concatenate([a.boxes, b.boxes]),
                   classes=list(a.classes), names=list(a.names),
                   files=list(a.files) + list(b.files) if a.files and b.files else [])


def default_cache_dir() -> str:
    """$ZFRAW_CACHE, else ~/.cache/zfraw."""
    return os.environ.get("ZFRAW_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "zfraw")


# The cache's file names (cache_stem + .npy or .json), for removing the stale temporaries.
CACHE_FILE = re.compile(r".+-\d+-[0-9a-f]{16}\.(npy|json)")


def _cache_key(root: str, tag: str, size: int, rel_files: list) -> str:
    h = hashlib.sha1()
    h.update(json.dumps([CACHE_VERSION, os.path.abspath(root), tag, size]).encode())
    for rel in rel_files:
        try:
            st = os.stat(os.path.join(root, rel))
        except OSError as e:   # a dangling or looping link: decoded as unreadable, named
            h.update(f"{rel}\0unreadable {e.errno}\n".encode())
            continue
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _why_unreadable(path: str, e: Exception) -> str:
    """The reason a file could not be decoded, in words (one line)."""
    if os.path.islink(path) and not os.path.exists(path):
        try:
            os.stat(path)
        except OSError as s:
            if s.errno == errno.ELOOP:
                return "a symbolic link that loops"
        return f"a symbolic link to a missing file, {os.readlink(path)}"
    return " ".join(f"{type(e).__name__}: {e}".split())


def _decode_all(root: str, rel_files: list, size: int, out: np.ndarray) -> dict:
    """Decode every file into ``out`` (N,S,S,3); returns {index: (error text, (w, h))}."""
    dims, bad = {}, {}

    def work(i):
        path = os.path.join(root, rel_files[i])
        try:
            out[i], dims[i] = load_rgb(path, size)
        except Exception as e:  # noqa: BLE001 - any decoder failure is a bad file, reported below
            bad[i] = _why_unreadable(path, e)
            out[i] = 0

    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
    try:
        list(pool.map(work, range(len(rel_files))))
    finally:
        # On Ctrl-C, drop the queued files instead of decoding them all before stopping.
        pool.shutdown(wait=True, cancel_futures=True)
    return {"dims": dims, "bad": bad}


def _write_cache(root: str, rel_files: list, size: int, npy: str, meta_path: str):
    """Decode every file into ``npy`` (uint8 (N, S, S, 3)) and ``meta_path`` (dims, bad files).

    Both are written under temporary names and renamed into place, the .npy last: its presence
    means the cache is complete. The .npy temporary is reserved on disk before the first image
    is written into its memory map. On any failure, KeyboardInterrupt included, the temporaries
    (the .npy one is the size of the whole split) are removed before the error goes on; a full
    disk is an OSError that says how much room the cache needs.
    """
    need = 0
    try:
        with atomic_path(npy) as tmp_npy:
            out = np.lib.format.open_memmap(tmp_npy, mode="w+", dtype=np.uint8,
                                            shape=(len(rel_files), size, size, 3))
            need = os.path.getsize(tmp_npy)
            with reserve(tmp_npy):
                res = _decode_all(root, rel_files, size, out)
                out.flush()
                del out
            meta = {"dims": {str(i): d for i, d in res["dims"].items()},
                    "bad": {str(i): m for i, m in res["bad"].items()}}
            with atomic_open(meta_path, "w") as f:  # renamed first, the .npy when this block ends
                json.dump(meta, f)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _no_room(e, npy, need) from e
        raise


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def _no_room(e: OSError, npy: str, need: int) -> OSError:
    """A full disk while writing the cache ``npy``, in one line: what it needs, what is free."""
    folder = os.path.dirname(npy) or "."
    try:
        st = os.statvfs(folder)
        free = f" and {folder} has {_mb(st.f_bavail * st.f_frsize)} free"
    except OSError:
        free = ""
    needs = f" needs {_mb(need)}" if need else ""
    return OSError(e.errno, f"{e.strerror} for the decode cache {npy}: it{needs}{free}; nothing "
                   "was kept (free some space, or give another --cache-dir)")


MAX_NAMED = 20   # unreadable files named in the one-line error (the warning names every one)


def _report_bad(bad: dict, rel_files: list, on_error: str, what: str):
    if not bad:
        return
    if on_error == "raise":                      # one line, for a command line's "error: ..."
        named = [f"{rel_files[i]} ({msg})" for i, msg in sorted(bad.items())[:MAX_NAMED]]
        more = f"; and {len(bad) - MAX_NAMED} more" if len(bad) > MAX_NAMED else ""
        raise DataError(f"{what}: {len(bad)} unreadable image file(s): {'; '.join(named)}{more} "
                        "(--on-error warn, or on_error='warn', skips them)")
    lines = [f"  {rel_files[i]}: {msg}" for i, msg in sorted(bad.items())]
    text = f"{what}: {len(bad)} unreadable image file(s):\n" + "\n".join(lines)
    warnings.warn(text + "\n(skipped; pass on_error='raise' to stop instead)", stacklevel=3)


def _check_classes(labels: np.ndarray, keep: np.ndarray, classes: list, what: str, train: bool):
    """Refuse (train) or warn about (evaluation) classes whose every listed file is unreadable.

    labels: int64 (N,) of all listed files; keep: indices of the readable ones.
    """
    listed = np.bincount(labels, minlength=len(classes))
    readable = np.bincount(labels[keep], minlength=len(classes))
    lost = [str(classes[k]) for k in np.flatnonzero((listed > 0) & (readable == 0))]
    if not lost:
        return
    if train:
        raise DataError(f"{what}: every image file of class(es) {', '.join(lost)} is unreadable, "
                        "so they would train with no images (fix or remove those files)")
    warnings.warn(f"{what}: every image file of class(es) {', '.join(lost)} is unreadable; "
                  "they are not evaluated", stacklevel=3)


def cache_stem(root: str, tag: str, size: int, rel_files: list, cache_dir: str) -> str:
    """Path of one split's cache files without the extension (``.npy`` images, ``.json`` meta)."""
    key = _cache_key(root, tag, size, rel_files)
    return os.path.join(cache_dir, f"{os.path.basename(os.path.normpath(root))}-{tag}-{size}-{key}")


def build_dataset(root: str, tag: str, rel_files: list, labels, boxes, classes, names, size: int,
                  cache_dir: str | None = None, on_error: str = "warn",
                  train: bool = True) -> Dataset:
    """Decode (or load from cache) the listed files of one split into a :class:`Dataset`.

    rel_files: N paths relative to ``root``; labels: N ints; boxes: None or (N, 4) half-open
    boxes in original pixels (-1 rows where unknown); tag: split name for the cache file.
    train: whether the split is trained on, so that a class whose files are all unreadable is a
    :class:`DataError` (True) or only a warning (False, an evaluation split).
    """
    if on_error not in ("warn", "raise"):
        raise ValueError(f"on_error must be 'warn' or 'raise', got {on_error!r}")
    cache_dir = cache_dir or default_cache_dir()
    os.makedirs(cache_dir, exist_ok=True)
    stem = cache_stem(root, tag, size, rel_files, cache_dir)
    npy, meta_path = stem + ".npy", stem + ".json"

    stale = remove_stale_temporaries(cache_dir, CACHE_FILE)
    if stale:
        warnings.warn(f"{cache_dir}: removed {len(stale)} temporary file(s) of the decode cache "
                      f"({_mb(sum(n for _, n in stale))}) left by processes that no longer run: "
                      + ", ".join(os.path.basename(p) for p, _ in stale), stacklevel=2)
    if not (os.path.exists(npy) and os.path.exists(meta_path)):
        _write_cache(root, rel_files, size, npy, meta_path)
    with open(meta_path) as f:
        meta = json.load(f)
    bad = {int(i): m for i, m in meta["bad"].items()}
    what = f"{root} [{tag}]"
    _report_bad(bad, rel_files, on_error, what)

    images = np.load(npy, mmap_mode="r")
    keep = np.array([i for i in range(len(rel_files)) if i not in bad], dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    _check_classes(labels, keep, classes, what, train)
    mapped = None
    if boxes is not None:
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        mapped = np.full((len(rel_files), 4), -1, np.int64)
        for i in keep:
            if boxes[i, 0] >= 0:
                w, h = meta["dims"][str(i)]
                mapped[i] = map_box(boxes[i], w, h, size)
        mapped = mapped[keep]
    if len(keep) < len(rel_files):
        images = images[keep]  # a copy in memory without the bad rows; rare, so acceptable
    return Dataset(images=images, labels=labels[keep], boxes=mapped, classes=list(classes),
                   names=list(names), files=[rel_files[i] for i in keep])
