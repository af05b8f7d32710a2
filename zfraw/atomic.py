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

A killed process (SIGKILL, a power cut) runs no clean-up and leaves its temporary behind; it is
never read. :func:`remove_stale_temporaries` removes those whose writer no longer runs.

A writer that fills its temporary through a memory map first reserves its disk blocks
(:func:`reserve`): writing a page of a sparse file on a full disk kills the process (SIGBUS)
instead of raising an error.
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
from contextlib import contextmanager

TEMPORARY = re.compile(r"\.tmp\d*$")


def temporary_path(path) -> str:
    """This process's temporary name for ``path``: ``<path>.tmp<pid>``."""
    return f"{os.fspath(path)}.tmp{os.getpid()}"


def writer_pid(name) -> int | None:
    """The pid in a temporary's name (``<name>.tmp<pid>``), or None for another name."""
    m = re.search(r"\.tmp(\d+)$", os.fspath(name))
    return int(m.group(1)) if m else None


def _runs(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (one of another user's too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:              # EPERM: it exists, under another user
        return True
    return True


def _locked(path: str) -> bool:
    """Whether some process holds the lock that :func:`reserve` takes (a writer on another
    machine that shares the folder, whose pid means nothing here)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return True              # gone already, or not ours to judge
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)             # releases the lock, if it was taken


def remove_stale_temporaries(folder, names: re.Pattern | None = None) -> list:
    """Remove the temporaries in ``folder`` (those whose name, without ``.tmp<pid>``, matches
    ``names``, when given) left by processes that no longer run: their pid is no process here
    and no process holds their lock. Returns ``[(path, bytes freed on disk)]`` of those removed.

    A pid reused by an unrelated process keeps its temporary (removed by a later call); a
    writer's own temporary under its own pid is cleared by :func:`atomic_path`."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        pid = writer_pid(entry.name)
        if pid is None or not entry.is_file(follow_symlinks=False):
            continue
        if names is not None and not names.fullmatch(entry.name[:entry.name.rindex(".tmp")]):
            continue
        if pid == os.getpid() or _runs(pid) or _locked(entry.path):
            continue
        try:
            size = entry.stat(follow_symlinks=False).st_blocks * 512   # a sparse file's real size
            os.remove(entry.path)
        except OSError:
            continue
        removed.append((entry.path, size))
    return removed


@contextmanager
def reserve(path):
    """``with reserve(tmp):`` every byte of the file ``tmp`` (created at its full size, e.g.
    by a memory map, and not yet written) is backed by disk blocks, and the file is locked
    against :func:`remove_stale_temporaries` while the block runs.

    A full disk raises OSError (ENOSPC) here, before any write. Where the platform has no
    ``posix_fallocate`` nothing is reserved (glibc itself emulates it on file systems that
    lack it)."""
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:          # no locks on this file system: the pid alone guards it
            pass
        size = os.fstat(fd).st_size
        if size and hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
        yield
    finally:
        os.close(fd)


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
           "remove_stale_temporaries", "reserve", "temporary_path", "writer_pid"]
