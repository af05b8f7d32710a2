"""Replacing files atomically (zfraw.atomic): after a failure mid-write the target is complete
(the old file) or absent, the temporary is gone, and the data is on disk before the rename;
every writer of zfraw goes through it."""
import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from zfraw import atomic
from zfraw.atomic import TEMPORARY, atomic_open, atomic_path, atomic_write_text, temporary_path

OLD = "the old file, complete\n"


def leftovers(folder):
    return [n for n in os.listdir(folder) if TEMPORARY.search(n)]


class Boom(Exception):
    pass


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write_text(path, "one\n")
    atomic_write_text(path, "two\n")
    assert path.read_text() == "two\n" and os.listdir(tmp_path) == ["f.txt"]
    with atomic_open(str(tmp_path / "g.bin"), "wb") as f:     # str paths as well as Paths
        f.write(b"\x00\x01")
    assert (tmp_path / "g.bin").read_bytes() == b"\x00\x01" and leftovers(tmp_path) == []


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
@pytest.mark.parametrize("existed", [True, False])
def test_a_failure_mid_write_leaves_the_old_file_or_none(tmp_path, error, existed):
    path = tmp_path / "f.txt"
    if existed:
        path.write_text(OLD)
    with pytest.raises(error):
        with atomic_open(path, "w") as f:
            f.write("half of the new")
            f.flush()                                 # the half is on disk, in the temporary
            assert os.path.getsize(temporary_path(path)) > 0
            raise error()
    assert (path.read_text() == OLD) if existed else not path.exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("step", ["fsync", "replace"])
def test_a_failing_fsync_or_rename_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch,
                                                                       step):
    path = tmp_path / "f.txt"
    path.write_text(OLD)

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, step, full_disk)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(path, "new\n")
    monkeypatch.undo()
    assert path.read_text() == OLD and leftovers(tmp_path) == []


def test_the_temporary_is_fsynced_before_it_is_renamed(tmp_path, monkeypatch):
    events = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(fd):
        events.append(("fsync", os.fstat(fd).st_ino))
        fsync(fd)

    def recording_replace(src, dst):
        events.append(("replace", os.stat(src).st_ino))
        replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", recording_fsync)
    monkeypatch.setattr(atomic.os, "replace", recording_replace)
    atomic_write_text(tmp_path / "f.txt", "x")
    inode = os.stat(tmp_path / "f.txt").st_ino
    assert events == [("fsync", inode), ("replace", inode)]


def test_a_path_writer_and_a_stale_temporary_of_the_same_pid(tmp_path):
    """atomic_path hands a file name to writers that need one (a memory map, a hard link);
    a temporary left by a killed process with this pid is cleared first."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(b"data")
    open(temporary_path(dst), "w").close()
    with atomic_path(dst) as tmp:
        os.link(src, tmp)
    assert dst.read_bytes() == b"data" and os.path.samefile(src, dst)
    assert leftovers(tmp_path) == []


def test_temporary_names_are_matched_for_clean_ups(tmp_path):
    name = os.path.basename(temporary_path(tmp_path / "last.npz"))
    assert name == f"last.npz.tmp{os.getpid()}" and TEMPORARY.search(name)
    assert not TEMPORARY.search("last.npz") and not TEMPORARY.search("tmp.json")


def test_a_killed_writer_leaves_the_old_file_complete(tmp_path):
    """SIGKILL mid-write: no clean-up runs, yet the target is the old file, whole (the
    temporary stays behind for RunDir.remove_temporaries and is never read)."""
    path = tmp_path / "f.bin"
    path.write_text(OLD)
    code = ("import sys, time; from zfraw.atomic import atomic_open\n"
            "with atomic_open(sys.argv[1], 'wb') as f:\n"
            "    f.write(b'x' * 1000000); f.flush(); print('writing', flush=True); time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout.readline().strip() == "writing"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
        p.stdout.close()
    assert path.read_text() == OLD
    assert leftovers(tmp_path) == [f"f.bin.tmp{p.pid}"]


def test_every_writer_fsyncs_and_renames_through_the_helper(tmp_path, monkeypatch):
    """The run folder's files (config, metrics, the mean image: it once skipped the fsync),
    a checkpoint, cached features, an experiment's results: each is fsynced, then renamed."""
    from zfraw.checkpoint import save_checkpoint
    from zfraw.experiments.features import cached_features
    from zfraw.experiments.results import write_results
    from zfraw.nets import build
    from zfraw.optim import SGD
    from zfraw.rundir import RunDir

    synced, replaced = [], []
    fsync, replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (synced.append(fd), fsync(fd)))
    monkeypatch.setattr(atomic.os, "replace",
                        lambda s, d: (replaced.append(os.path.basename(d)), replace(s, d)))
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_config({"arch": "zf-32"})
    run.clear_metrics()
    run.save_mean(np.zeros((4, 4, 3), np.float32))
    net = build("zf-32", 3, width=0.125)
    save_checkpoint(str(run.last_path), net, SGD(net, 0.01), np.zeros((4, 4, 3)), {"epoch": 1})
    run.keep_epoch(1, 1)
    cached_features(tmp_path / "cache", {"k": 1}, lambda: {"relu1": np.ones((2, 3))})
    write_results(tmp_path / "results", {"experiment": "t", "title": "T", "scale": "s",
                                         "rows": []})
    names = ["config.json", "metrics.jsonl", "mean.npy", "last.npz", "epoch-001.npz"]
    assert replaced[:5] == names and replaced[6:] == ["t.json", "t.md"]
    assert replaced[5].startswith("features-") and len(synced) == len(replaced)
    assert np.load(run.mean_path).shape == (4, 4, 3)
    assert json.loads(run.config_path.read_text()) == {"arch": "zf-32"}
    assert os.path.samefile(run.last_path, run.epoch_path(1))
    assert leftovers(run.path) == []


def test_a_failed_dataset_cache_leaves_no_files(tmp_path, monkeypatch):
    """The decode-once cache: interrupted while decoding, neither the .npy (the size of the
    split) nor its meta file is left, under any name."""
    from zfraw.data import dataset

    def ctrl_c(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(dataset, "_decode_all", ctrl_c)
    npy, meta = str(tmp_path / "c.npy"), str(tmp_path / "c.json")
    with pytest.raises(KeyboardInterrupt):
        dataset._write_cache(str(tmp_path), ["a.png"], 8, npy, meta)
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()
    from PIL import Image
    Image.new("RGB", (10, 12), (9, 8, 7)).save(tmp_path / "a.png")
    dataset._write_cache(str(tmp_path), ["a.png"], 8, npy, meta)
    assert np.load(npy).shape == (1, 8, 8, 3) and json.load(open(meta))["bad"] == {}
    assert leftovers(tmp_path) == []


def test_reserve_backs_every_byte_before_a_memory_map_writes(tmp_path, monkeypatch):
    """A sparse file written through a memory map on a full disk is a SIGBUS; reserve() backs
    every byte first (keeping what is written, e.g. a .npy header), so a full disk is an
    OSError before any write."""
    from zfraw.atomic import reserve
    path = tmp_path / "big.tmp1"
    with open(path, "wb") as f:
        f.write(b"header")
        f.truncate(1 << 20)                                  # sparse: no blocks behind it
    assert os.stat(path).st_blocks * 512 < 1 << 20
    with reserve(path):
        assert os.stat(path).st_blocks * 512 >= 1 << 20
    assert path.read_bytes()[:6] == b"header" and os.path.getsize(path) == 1 << 20

    def fallocate_fails(code):
        def f(fd, offset, length):
            raise OSError(code, os.strerror(code))
        return f

    monkeypatch.setattr(atomic.os, "posix_fallocate", fallocate_fails(28))
    with pytest.raises(OSError, match="No space left"):
        with reserve(path):
            pytest.fail("the block ran on a full disk")
    import errno
    monkeypatch.setattr(atomic.os, "posix_fallocate", fallocate_fails(errno.EOPNOTSUPP))
    with reserve(path):                                       # nothing to reserve with: go on
        pass


def finished_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporaries_are_those_whose_writer_is_gone(tmp_path):
    """Removed: a temporary whose pid is no process and whose lock nobody holds. Kept: a live
    process's, a locked one (a writer on another machine sharing the folder), this process's
    own, names that are not temporaries, and names outside the pattern given."""
    from zfraw.atomic import remove_stale_temporaries, reserve, writer_pid
    dead = finished_pid()
    names = {"a.npz": dead, "b.npz": os.getppid(), "c.npz": dead, "d.npy": os.getpid(),
             "e.json": dead}
    for name, pid in names.items():
        (tmp_path / f"{name}.tmp{pid}").write_bytes(b"x" * 10000)
    (tmp_path / "f.txt").write_text("not a temporary")
    (tmp_path / "g.npz.tmp").write_text("no pid")
    assert writer_pid(f"a.npz.tmp{dead}") == dead and writer_pid("g.npz.tmp") is None
    with reserve(tmp_path / f"c.npz.tmp{dead}"):
        removed = remove_stale_temporaries(tmp_path, re.compile(r".*\.npz"))
    assert [os.path.basename(p) for p, _ in removed] == [f"a.npz.tmp{dead}"]
    assert removed[0][1] >= 10000                                  # bytes freed on disk
    assert sorted(os.path.basename(p) for p, _ in remove_stale_temporaries(tmp_path)) == \
        sorted([f"c.npz.tmp{dead}", f"e.json.tmp{dead}"])            # unlocked, any name
    left = sorted(os.listdir(tmp_path))
    assert left == sorted([f"b.npz.tmp{os.getppid()}", f"d.npy.tmp{os.getpid()}", "f.txt",
                           "g.npz.tmp"])
