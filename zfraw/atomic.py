"""Replacing a file so that a reader sees the old file or the new one, never half of either.

Every zfraw writer that replaces a file goes through here (the run folder's config, metrics, mean
image and kept epochs, checkpoints, the dataset cache, cached features), so the rule is written
once:

1. write a temporary file beside the target, ``<name>.tmp<pid>`` (the same folder, so the
   rename stays on one file system; :data:`TEMPORARY` matches the names, for clean-ups);
2. flush it and fsync it to disk, so a crash after step 3 cannot leave a renamed but empty file;
3. ``os.replace`` it onto the target, which is atomic on POSIX.

On any failure before the rename (a full disk, an interrupt, a writer's own error,
KeyboardInterrupt included) the temporary is removed and the error goes on: the target keeps its
previous content, or stays absent.
"""
from __future__ import annotations

import os
import re
from contextlib import contextmanager

TEMPORARY = re.compile(r"\.tmp\d*$")


def temporary_path(path) -> str:
    """This process's temporary name for ``path``: ``<path>.tmp<pid>``."""
    return f"{os.fspath(path)}.tmp{os.getpid()}"


def remove_quietly(path) -> None:
    """Remove ``path`` if it exists (cleanup on a failure path must not raise a second error)."""
    try:
        os.remove(path)
    except OSError:
        pass


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path):
    """``with atomic_path(path) as tmp:`` the body creates the file named ``tmp`` (a str) and
    closes it; on a clean exit it is fsynced and renamed onto ``path``, on any failure removed.
    For writers that need a file name (a memory map, a hard link); :func:`atomic_open` is the
    same for writers that take an open file."""
    tmp = temporary_path(path)
    remove_quietly(tmp)      # left by a killed process that had this pid (os.link would refuse it)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise


@contextmanager
def atomic_open(path, mode: str = "wb"):
    """``with atomic_open(path, 'wb') as f:`` write ``f``; ``path`` is replaced when the block
    ends without an error and left as it was otherwise (:func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f


def atomic_write_text(path, text: str) -> None:
    """Replace ``path`` by ``text`` atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)


__all__ = ["TEMPORARY", "atomic_open", "atomic_path", "atomic_write_text", "remove_quietly",
           "temporary_path"]
