import errno
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import write_corrupt, write_image
from PIL import Image

from zfraw.data import dataset
from zfraw.data import (DataError, load_caltech101, load_folder, load_rgb, load_tiny_imagenet,
                        mean_per_class_accuracy)
from zfraw.data.images import map_box

WNIDS = ["n001", "n002", "n003"]


def make_tiny(root, n_train=3, n_val=2, corrupt=False):
    """A Tiny-ImageNet-layout folder with 16x16 images and boxes; returns the val pixels."""
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "wnids.txt"), "w") as f:
        f.write("\n".join(WNIDS) + "\n")
    with open(os.path.join(root, "words.txt"), "w") as f:
        f.write("n001\tcat\nn002\tdog\nn003\tbird, avian\nn999\tunused\n")
    for k, w in enumerate(WNIDS):
        lines = []
        for i in range(n_train):
            name = f"{w}_{i}.JPEG"
            write_image(os.path.join(root, "train", w, "images", name), 16, 16,
                        mode="L" if (k, i) == (1, 0) else "RGB", seed=10 * k + i, fmt="PNG")
            lines.append(f"{name}\t{i}\t{k}\t{8 + i}\t{9 + k}\n")
        with open(os.path.join(root, "train", w, f"{w}_boxes.txt"), "w") as f:
            f.writelines(lines)
    if corrupt:
        write_corrupt(os.path.join(root, "train", "n002", "images", "n002_bad.JPEG"))
    ann, pixels = [], []
    for j in range(n_val * len(WNIDS)):
        name = f"val_{j}.JPEG"
        pixels.append(write_image(os.path.join(root, "val", "images", name), 16, 16, seed=100 + j,
                                  fmt="PNG"))
        ann.append(f"{name}\t{WNIDS[j % 3]}\t0\t0\t15\t{j}\n")
    with open(os.path.join(root, "val", "val_annotations.txt"), "w") as f:
        f.writelines(ann)
    return pixels


def test_tiny_imagenet_layout(tmp_path):
    root = str(tmp_path / "tiny")
    val_pixels = make_tiny(root)
    train, val = load_tiny_imagenet(root, size=16, cache_dir=str(tmp_path / "cache"))
    assert len(train) == 9 and len(val) == 6
    assert train.classes == WNIDS and train.names == ["cat", "dog", "bird, avian"]
    np.testing.assert_array_equal(train.labels, [0, 0, 0, 1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(val.labels, [0, 1, 2, 0, 1, 2])
    # size == original size: pixels unchanged (PNG is lossless)
    np.testing.assert_array_equal(val.images, np.stack(val_pixels))
    # grayscale file came back as RGB with three equal channels
    gray = train.images[3]
    assert gray.shape == (16, 16, 3) and np.array_equal(gray[..., 0], gray[..., 2])
    # inclusive boxes -> half-open
    np.testing.assert_array_equal(train.boxes[4], [1, 1, 10, 11])
    np.testing.assert_array_equal(val.boxes[5], [0, 0, 16, 6])


def test_tiny_imagenet_first_classes_spec(tmp_path):
    """tiny-imagenet-N:PATH keeps the first N classes' images, labels, boxes and files, in
    order; N outside 1..classes is a DataError naming the count."""
    from zfraw.data import load_spec
    root = str(tmp_path / "tiny")
    make_tiny(root)
    cache = str(tmp_path / "cache")
    full_train, full_val = load_spec(f"tiny-imagenet:{root}", 16, cache_dir=cache)
    train, val = load_spec(f"tiny-imagenet-2:{root}", 16, cache_dir=cache)
    assert train.classes == WNIDS[:2] and train.names == ["cat", "dog"]
    for part, full in ((train, full_train), (val, full_val)):
        keep = full.labels < 2
        np.testing.assert_array_equal(part.labels, full.labels[keep])
        np.testing.assert_array_equal(part.images, full.images[keep])
        np.testing.assert_array_equal(part.boxes, full.boxes[keep])
        assert part.files == [f for f, k in zip(full.files, keep) if k]
    assert len(train) == 6 and len(val) == 4
    for bad in ("tiny-imagenet-0", "tiny-imagenet-4"):
        with pytest.raises(DataError, match="between 1 and the dataset's 3 classes"):
            load_spec(f"{bad}:{root}", 16, cache_dir=cache)


def test_tiny_imagenet_upsampled_boxes_map(tmp_path):
    root = str(tmp_path / "tiny")
    make_tiny(root)
    train, val = load_tiny_imagenet(root, size=32, cache_dir=str(tmp_path / "cache"))
    assert train.images.shape == (9, 32, 32, 3)
    np.testing.assert_array_equal(train.boxes[4], [2, 2, 20, 22])


def test_cache_is_reused_and_memory_mapped(tmp_path):
    root, cache = str(tmp_path / "tiny"), str(tmp_path / "cache")
    make_tiny(root)
    a, _ = load_tiny_imagenet(root, size=16, cache_dir=cache)
    files = sorted(os.listdir(cache))
    b, _ = load_tiny_imagenet(root, size=16, cache_dir=cache)
    assert sorted(os.listdir(cache)) == files
    assert isinstance(b.images, np.memmap)
    np.testing.assert_array_equal(a.images, b.images)
    load_tiny_imagenet(root, size=20, cache_dir=cache)      # another size: another cache entry
    assert len(os.listdir(cache)) == len(files) + 4


def test_corrupt_file_is_reported_by_name(tmp_path):
    root, cache = str(tmp_path / "tiny"), str(tmp_path / "cache")
    make_tiny(root, corrupt=True)
    with pytest.warns(UserWarning, match="n002_bad.JPEG"):
        train, _ = load_tiny_imagenet(root, size=16, cache_dir=cache)
    assert len(train) == 9 and not any("bad" in f for f in train.files)
    with pytest.warns(UserWarning, match="n002_bad.JPEG"):          # again from the cache
        load_tiny_imagenet(root, size=16, cache_dir=cache)
    with pytest.raises(DataError, match="n002_bad.JPEG"):
        load_tiny_imagenet(root, size=16, cache_dir=cache, on_error="raise")


def test_wnid_without_folder_is_an_error(tmp_path):
    root = str(tmp_path / "tiny")
    make_tiny(root)
    with open(os.path.join(root, "wnids.txt"), "a") as f:
        f.write("n004\n")
    with pytest.raises(DataError, match="n004"):
        load_tiny_imagenet(root, size=16, cache_dir=str(tmp_path / "cache"))


def make_folders(root, counts=None):
    counts = counts or {"train": {"apple": 3, "pear": 2}, "val": {"apple": 1, "pear": 2}}
    for split, cls_counts in counts.items():
        for c, n in cls_counts.items():
            os.makedirs(os.path.join(root, split, c), exist_ok=True)
            for i in range(n):
                write_image(os.path.join(root, split, c, f"{i}.jpg"), 30, 20, seed=i)


def test_folder_layout_modes_and_resize(tmp_path):
    root = str(tmp_path / "f")
    make_folders(root)
    write_image(os.path.join(root, "train", "pear", "p.png"), 24, 40, mode="P", fmt="PNG")
    write_image(os.path.join(root, "train", "pear", "c.jpg"), 24, 40, mode="CMYK")
    with open(os.path.join(root, "train", "pear", "notes.txt"), "w") as f:
        f.write("not an image")
    train, val = load_folder(root, size=12, cache_dir=str(tmp_path / "c"))
    assert train.classes == ["apple", "pear"] and len(train) == 7 and len(val) == 3
    assert train.images.shape == (7, 12, 12, 3) and train.boxes is None
    np.testing.assert_array_equal(train.labels, [0, 0, 0, 1, 1, 1, 1])


def test_empty_class_folder_is_an_error(tmp_path):
    root = str(tmp_path / "f")
    make_folders(root)
    os.makedirs(os.path.join(root, "train", "plum"))
    with pytest.raises(DataError, match="plum"):
        load_folder(root, size=12, cache_dir=str(tmp_path / "c"))


def test_load_rgb_resize_and_centre_crop(tmp_path):
    path = str(tmp_path / "wide.png")
    pix = write_image(path, 40, 20, fmt="PNG")   # w=40, h=20 -> shorter side 20
    arr, dims = load_rgb(path, 20)
    assert dims == (40, 20)
    np.testing.assert_array_equal(arr, pix[:, 10:30])
    # a box in original pixels follows the same map: scale 0.5, then crop offset 5
    np.testing.assert_array_equal(map_box([10, 4, 30, 12], 40, 20, 10), [0, 2, 10, 6])


def test_caltech101_protocol(tmp_path):
    root = str(tmp_path / "cal")
    cats = os.path.join(root, "101_ObjectCategories")
    for c, n in (("ant", 8), ("bee", 5), ("BACKGROUND_Google", 4)):
        for i in range(n):
            write_image(os.path.join(cats, c, f"image_{i:04d}.jpg"), 20, 26, seed=i,
                        mode="L" if i == 0 else "RGB")
    train, test = load_caltech101(root, size=16, n_train=3, n_test=4, seed=1,
                                  cache_dir=str(tmp_path / "c"))
    assert train.classes == ["ant", "bee"]
    np.testing.assert_array_equal(np.bincount(train.labels), [3, 3])
    np.testing.assert_array_equal(np.bincount(test.labels), [4, 2])
    assert not set(train.files) & set(test.files)
    other, _ = load_caltech101(root, size=16, n_train=3, n_test=4, seed=2,
                               cache_dir=str(tmp_path / "c"))
    same, _ = load_caltech101(root, size=16, n_train=3, n_test=4, seed=1,
                              cache_dir=str(tmp_path / "c"))
    assert same.files == train.files and other.files != train.files
    with pytest.raises(DataError, match="bee"):
        load_caltech101(root, size=16, n_train=5, cache_dir=str(tmp_path / "c"))


def test_caltech256_protocol_and_specs(tmp_path):
    """The Caltech-256 layout (NNN.name folders, clutter excluded), N per class by spec, splits
    from the seed: disjoint train/test, every class with N train and up to 25 test images."""
    from zfraw.data import load_caltech256, load_spec

    root = str(tmp_path / "c256")
    cats = os.path.join(root, "256_ObjectCategories")
    for c, n in (("001.ak47", 40), ("002.bat", 20), ("257.clutter", 6)):
        for i in range(n):
            write_image(os.path.join(cats, c, f"{c[:3]}_{i:04d}.jpg"), 20, 18, seed=i)
    cache = str(tmp_path / "cache")
    train, test = load_caltech256(root, size=16, n_train=15, seed=3, cache_dir=cache)
    assert train.classes == ["001.ak47", "002.bat"] and train.names == ["ak47", "bat"]
    np.testing.assert_array_equal(np.bincount(train.labels), [15, 15])
    np.testing.assert_array_equal(np.bincount(test.labels), [25, 5])
    assert not set(train.files) & set(test.files)
    splits = [load_spec(f"caltech256-15:{root}", 16, seed=s, cache_dir=cache)[0].files
              for s in range(5)]
    assert splits[3] == train.files and len({tuple(f) for f in splits}) == 5
    with pytest.raises(DataError, match="fewer than n_train .* 31 images: 002.bat"):
        load_spec(f"caltech256:{root}", 16, cache_dir=cache)  # 30 per class by default
    with pytest.raises(DataError, match="unknown dataset kind"):
        load_spec(f"caltech256-x:{root}", 16)


def test_mean_per_class_accuracy():
    labels = np.array([0, 0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 0, 1, 0, 1, 2])
    # class accuracies 3/4, 1/2, 1 -> mean 0.75 (overall accuracy would be 5/7)
    assert mean_per_class_accuracy(pred, labels, 4) == pytest.approx(0.75)


def test_real_tiny_imagenet(zfraw_data, tmp_path):
    root = os.path.join(zfraw_data, "tiny-imagenet-100")
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # the real data has no bad files
        train, val = load_tiny_imagenet(root, size=72)
    assert len(train) == 14000 and len(val) == 3000 and train.num_classes == 100
    np.testing.assert_array_equal(np.bincount(train.labels), np.full(100, 140))
    np.testing.assert_array_equal(np.bincount(val.labels), np.full(100, 30))
    for b in (train.boxes, val.boxes):
        assert b.min() >= 0 and b.max() <= 72
        assert np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1])


def test_real_caltech101(zfraw_data):
    train, test = load_caltech101(os.path.join(zfraw_data, "caltech101-mini"), size=72)
    assert train.num_classes == 101 and "BACKGROUND_Google" not in train.classes
    # the mini copy keeps at most 50 images per folder (4,772 in all, 50 in BACKGROUND_Google)
    np.testing.assert_array_equal(np.bincount(train.labels), np.full(101, 30))
    assert len(test) == 4772 - 50 - 101 * 30 and np.bincount(test.labels).min() >= 1


def test_16bit_and_float_images_are_scaled_not_clipped(tmp_path):
    # Pillow's convert("RGB") clips 16-bit values at 255, so this gradient came out ~all white.
    v16 = np.linspace(0, 65535, 16 * 16).round().astype(np.uint16).reshape(16, 16)
    path = str(tmp_path / "deep.png")
    Image.fromarray(v16).save(path)
    assert Image.open(path).mode == "I;16"
    arr, _ = load_rgb(path, 16)
    expected = np.round(v16 / 257)                      # 0 -> 0, 65535 -> 255
    assert np.abs(arr[..., 0].astype(int) - expected).max() <= 1
    assert np.array_equal(arr[..., 0], arr[..., 2]) and arr.max() == 255 and arr.min() == 0
    # big-endian 16-bit TIFF and float TIFF (read as 0..1 intensities)
    Image.fromarray(v16.astype(">u2")).save(str(tmp_path / "be.tif"))
    arr, _ = load_rgb(str(tmp_path / "be.tif"), 16)
    assert np.abs(arr[..., 1].astype(int) - expected).max() <= 1
    Image.fromarray((v16 / 65535).astype(np.float32)).save(str(tmp_path / "f.tif"))
    arr, _ = load_rgb(str(tmp_path / "f.tif"), 16)
    assert np.abs(arr[..., 1].astype(int) - expected).max() <= 1


def test_class_with_only_unreadable_files_is_an_error(tmp_path):
    root = str(tmp_path / "f")
    make_folders(root)
    for i in range(2):
        write_corrupt(os.path.join(root, "train", "plum", f"{i}.jpg"))
    with pytest.warns(UserWarning, match="plum"), pytest.raises(DataError, match="plum.*unreadable"):
        load_folder(root, size=12, cache_dir=str(tmp_path / "c"))


def test_val_class_with_only_unreadable_files_is_a_warning(tmp_path):
    root = str(tmp_path / "f")
    make_folders(root)
    for name in os.listdir(os.path.join(root, "val", "pear")):
        write_corrupt(os.path.join(root, "val", "pear", name))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train, val = load_folder(root, size=12, cache_dir=str(tmp_path / "c"))
    text = "\n".join(str(w.message) for w in caught)
    assert "val/pear/0.jpg" in text and re.search("pear.*not evaluated", text)
    assert len(train) == 5 and val.labels.tolist() == [0]


def _tmp_files(cache):
    return [f for f in os.listdir(cache) if ".tmp" in f] if os.path.isdir(cache) else []


@pytest.mark.parametrize("where", ["decode", "meta"])
def test_interrupted_first_decode_leaves_no_temporaries(tmp_path, monkeypatch, where):
    root, cache = str(tmp_path / "f"), str(tmp_path / "c")
    make_folders(root)
    if where == "decode":                    # Ctrl-C partway through the images
        calls = []

        def flaky(path, size):
            calls.append(path)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return load_rgb(path, size)

        monkeypatch.setattr(dataset, "load_rgb", flaky)
        with pytest.raises(KeyboardInterrupt):
            load_folder(root, size=12, cache_dir=cache)
    else:                                    # disk full while writing the meta file
        def full(obj, f):
            f.write("{")
            raise OSError("No space left on device")

        monkeypatch.setattr(dataset.json, "dump", full)
        with pytest.raises(OSError, match="No space"):
            load_folder(root, size=12, cache_dir=cache)
    assert _tmp_files(cache) == [] and not any(f.endswith(".npy") for f in os.listdir(cache))
    monkeypatch.undo()
    train, _ = load_folder(root, size=12, cache_dir=cache)     # a later run builds it properly
    ref, _ = load_folder(root, size=12, cache_dir=str(tmp_path / "fresh"))
    np.testing.assert_array_equal(train.images, ref.images)
    assert _tmp_files(cache) == []


def dead_pid():
    """The pid of a process that has ended (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporaries_of_a_dead_process_are_removed(tmp_path):
    """A killed first fill leaves its temporaries behind (a .npy the size of the split); the
    next load removes those whose process is gone, says so, and leaves every other file."""
    root, cache = str(tmp_path / "f"), str(tmp_path / "c")
    make_folders(root)
    files = sorted(os.path.join("train", c, f) for c in ("apple", "pear")
                   for f in os.listdir(os.path.join(root, "train", c)))
    os.makedirs(cache)
    stem = dataset.cache_stem(root, "train", 12, files, cache)
    other = os.path.join(cache, "other-val-64-0123456789abcdef.npy")   # another cache's
    dead, alive = dead_pid(), os.getppid()
    stale = [f"{stem}.npy.tmp{dead}", f"{stem}.json.tmp{dead}", f"{other}.tmp{dead}"]
    kept = [f"{stem}.npy.tmp{alive}",                         # a live writer's
            os.path.join(cache, f"notes.txt.tmp{dead}")]      # not a cache file: not ours
    # garbage under our own pid too (pids are reused, e.g. in containers)
    for path in stale + kept + [f"{stem}.npy.tmp{os.getpid()}"]:
        with open(path, "wb") as f:
            f.write(b"half-written garbage")
    with pytest.warns(UserWarning, match=r"removed 3 temporary file\(s\).*no longer run"):
        train, _ = load_folder(root, size=12, cache_dir=cache)
    ref, _ = load_folder(root, size=12, cache_dir=str(tmp_path / "fresh"))
    np.testing.assert_array_equal(train.images, ref.images)
    assert os.path.exists(stem + ".npy")     # the cache the loader used is the one we predicted
    assert not any(os.path.exists(p) for p in stale) and all(os.path.exists(p) for p in kept)
    assert not os.path.exists(f"{stem}.npy.tmp{os.getpid()}")


def test_hold_out_takes_the_last_images_of_each_class():
    labels = np.array([0, 1, 0, 2, 1, 0, 2, 1, 2, 0])
    ds = dataset.Dataset(images=np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1).repeat(3, 3),
                         labels=labels, boxes=np.arange(40).reshape(10, 4), classes=["a", "b", "c"],
                         names=["A", "B", "C"], files=[f"f{i}" for i in range(10)])
    rest, held = dataset.hold_out(ds, 1)
    assert held.files == ["f7", "f8", "f9"]   # the last of class 1, 2 and 0, in the set's order
    assert list(held.labels) == [1, 2, 0]
    assert rest.files == [f"f{i}" for i in range(7)]
    np.testing.assert_array_equal(rest.boxes, ds.boxes[:7])
    np.testing.assert_array_equal(held.images[:, 0, 0, 0], [7, 8, 9])
    assert rest.classes == held.classes == ds.classes
    rest2, held2 = dataset.hold_out(ds, 2)
    assert held2.files == ["f4", "f5", "f6", "f7", "f8", "f9"]
    assert rest2.files == ["f0", "f1", "f2", "f3"]
    with pytest.raises(DataError, match="class a has only 4"):
        dataset.hold_out(ds, 4)


# -- a full disk during the cache's first fill -----------------------------------------------

def full_disk(monkeypatch):
    """Make every reservation of disk space fail as on a full disk; returns the decode calls
    made (none may happen: an image written into an unreserved memory map on a full disk is
    a SIGBUS that kills the process)."""
    from zfraw import atomic
    decoded = []

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def spy(path, size):
        decoded.append(path)
        return load_rgb(path, size)

    monkeypatch.setattr(atomic.os, "posix_fallocate", no_space)
    monkeypatch.setattr(dataset, "load_rgb", spy)
    return decoded


def test_a_full_disk_is_an_error_before_any_image_is_written(tmp_path, monkeypatch):
    root, cache = str(tmp_path / "f"), str(tmp_path / "c")
    make_folders(root)
    load_folder(root, size=12, cache_dir=cache)                # a complete cache, kept
    before = {n: open(os.path.join(cache, n), "rb").read() for n in os.listdir(cache)}
    decoded = full_disk(monkeypatch)
    with pytest.raises(OSError) as caught:
        load_folder(root, size=16, cache_dir=cache)
    msg = str(caught.value)
    assert caught.value.errno == errno.ENOSPC and "\n" not in msg
    assert re.search(r"No space left on device for the decode cache .*-train-16-.*\.npy: it "
                     r"needs [\d.]+ MB and .* free; nothing was kept", msg), msg
    assert decoded == []
    assert {n: open(os.path.join(cache, n), "rb").read() for n in os.listdir(cache)} == before
    monkeypatch.undo()
    train, _ = load_folder(root, size=16, cache_dir=cache)     # room again: it fills
    ref, _ = load_folder(root, size=16, cache_dir=str(tmp_path / "fresh"))
    np.testing.assert_array_equal(train.images, ref.images)
    assert _tmp_files(cache) == []


def test_the_cache_file_is_reserved_before_it_is_filled(tmp_path, monkeypatch):
    from zfraw import atomic
    reserved, fallocate = [], os.posix_fallocate

    def recording(fd, offset, length):
        fallocate(fd, offset, length)
        st = os.fstat(fd)
        reserved.append((offset, length, st.st_size, st.st_blocks * 512))

    monkeypatch.setattr(atomic.os, "posix_fallocate", recording)
    root, cache = str(tmp_path / "f"), str(tmp_path / "c")
    make_folders(root)
    load_folder(root, size=64, cache_dir=cache)
    n_train = 5
    assert len(reserved) == 2                                  # train, val
    offset, length, size, on_disk = reserved[0]
    assert offset == 0 and length == size > n_train * 64 * 64 * 3 and on_disk >= size


def small_run(tmp_path, data, *extra):
    return ["--arch", "zf-32", "--width", "0.125", "--data", f"folder:{data}", "--epochs", "1",
            "--batch-size", "2", "--init", "he", "--input-scale", "0.015625", "--impl", "numpy",
            "--no-progress", "--out", str(tmp_path / "run"), *extra]


def last_line_error(capsys, rc, code, *words):
    """Exit ``code``, no traceback, and the last line of stderr 'error: ...' with ``words``."""
    err = capsys.readouterr().err
    assert rc == code and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and sum(x.startswith("error") for x in lines) == 1, err
    for w in words:
        assert w in lines[-1], (w, lines[-1])
    return err


def test_train_on_a_full_disk_ends_in_one_line_and_loses_nothing(tmp_path, monkeypatch, capsys):
    """train.py --resume whose cache must be filled again on a full disk: exit 1, one line,
    the run's files byte for byte as they were, no temporary anywhere."""
    import train as train_cli
    data = tmp_path / "f"
    make_folders(str(data))
    assert train_cli.main(small_run(tmp_path, data, "--cache-dir", str(tmp_path / "c1"))) == 0
    run = tmp_path / "run"
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    capsys.readouterr()
    cache = tmp_path / "c2"                     # a cache that is not there yet
    decoded = full_disk(monkeypatch)
    rc = train_cli.main(["--resume", "--epochs", "2", "--out", str(run), "--cache-dir", str(cache)])
    last_line_error(capsys, rc, 1, "No space left on device for the decode cache",
                    "nothing was kept")
    assert decoded == []
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    assert _tmp_files(str(cache)) == [] and _tmp_files(str(run)) == []


# -- images of extreme aspect ratios ------------------------------------------------------------

def decode_as_before(path, size):
    """load_rgb as it was before the work was bounded by the crop (a frozen copy): the whole
    image resized, then cropped."""
    from zfraw.data.images import resize_crop_geometry, to_8bit
    with Image.open(path) as img:
        width, height = img.size
        new_w, new_h, _, _, ox, oy = resize_crop_geometry(width, height, size)
        img.draft("RGB", (new_w, new_h))
        img = to_8bit(img)
        if img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")
        img = img.convert("RGB")
        if img.size != (new_w, new_h):
            img = img.resize((new_w, new_h), Image.BILINEAR)
        img = img.crop((ox, oy, ox + size, oy + size))
        arr = np.asarray(img, dtype=np.uint8)
    return arr, (width, height)


def random_image(path, rng, w, h):
    """A random image of w x h in a random mode and format (JPEG too, whose draft mode the
    decoder uses), with smooth and noisy parts."""
    yy, xx = np.mgrid[0:h, 0:w]
    smooth = (np.stack([xx * 255 / max(w - 1, 1), yy * 255 / max(h - 1, 1),
                        (xx + yy) % 256], -1)).astype(np.uint8)
    noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    pix = np.where(rng.random((h, w, 1)) < 0.5, smooth, noise)
    img = Image.fromarray(pix)
    kind = rng.integers(5)
    if kind == 1:
        img = img.convert("L")
    elif kind == 2:
        img = img.convert("P")
    elif kind == 3:
        img = img.convert("RGBA")
    fmt = "JPEG" if kind == 4 else "PNG"
    img.save(path, format=fmt)
    return path


def test_ordinary_images_decode_bit_identically_to_before(tmp_path):
    """Bounding the work changed no ordinary image (aspect ratios up to EXACT_ASPECT): the
    caches, boxes and results made before stay valid. Random sizes, shapes, modes, formats."""
    from zfraw.data.images import EXACT_ASPECT
    rng = np.random.default_rng(23)
    for k in range(300):
        size = int(rng.choice([8, 12, 16, 36, 56, 64, 72, 96, 128, 227, 256]))
        short = int(rng.integers(1, 160))
        aspect = float(np.exp(rng.uniform(0, np.log(EXACT_ASPECT)))) if k % 3 else 1 + rng.random()
        long = max(short, min(int(round(short * aspect)), EXACT_ASPECT * short, 1200))
        w, h = (long, short) if rng.random() < 0.5 else (short, long)
        path = random_image(str(tmp_path / f"{k}.img"), rng, w, h)
        new, dims = load_rgb(path, size)
        old, old_dims = decode_as_before(path, size)
        assert dims == old_dims and new.dtype == np.uint8
        np.testing.assert_array_equal(new, old, err_msg=f"{w}x{h} at {size}")


def test_beyond_the_ordinary_only_the_crop_is_resized(tmp_path, monkeypatch):
    """Aspect ratios between EXACT_ASPECT and MAX_ASPECT: no resize makes more than
    EXACT_ASPECT crops' worth of pixels (it made ratio crops' worth: gigabytes for a 94-byte
    1x5000 PNG at 256), and the pixels are the whole-image way's within one grey level."""
    from zfraw.data.images import EXACT_ASPECT, MAX_ASPECT
    made, resize = [], Image.Image.resize

    def bounded(img, out_size, *args, **kw):
        made.append(out_size[0] * out_size[1])
        if made[-1] > EXACT_ASPECT * bounded.size ** 2:    # fail before allocating it
            raise AssertionError(f"resize of {img.size} to {out_size} at size {bounded.size}")
        return resize(img, out_size, *args, **kw)

    rng = np.random.default_rng(5)
    cases = [(1, MAX_ASPECT, 64), (MAX_ASPECT, 1, 16), (3, 290, 32), (200, 5, 12), (7, 700, 48)]
    for k, (w, h, size) in enumerate(cases):
        path = random_image(str(tmp_path / f"{k}.img"), rng, w, h)
        old, _ = decode_as_before(path, size)
        monkeypatch.setattr(Image.Image, "resize", bounded)
        bounded.size = size
        new, dims = load_rgb(path, size)
        monkeypatch.undo()
        assert dims == (w, h) and new.shape == (size, size, 3)
        assert np.abs(new.astype(int) - old).max() <= 1, (w, h, size)
    assert made and max(made) <= EXACT_ASPECT * 64 ** 2


def write_thin(path, w=1, h=5000):
    """A tiny PNG (~100 bytes) of an absurd aspect ratio."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 7, np.uint8)).save(path)


def test_absurd_aspect_ratios_are_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setattr(Image.Image, "resize", lambda *a, **k: pytest.fail("resized"))
    path = str(tmp_path / "thin.png")
    write_thin(path)
    with pytest.raises(DataError, match="1x5000 pixels, an aspect ratio beyond 100:1"):
        load_rgb(path, 256)
    write_thin(path, 300000, 1)
    with pytest.raises(DataError, match="300000x1 pixels"):
        load_rgb(path, 256)
    monkeypatch.undo()
    root, cache = str(tmp_path / "f"), str(tmp_path / "c")
    make_folders(root)
    write_thin(os.path.join(root, "train", "apple", "thin.png"))
    with pytest.warns(UserWarning, match=r"train/apple/thin.png: DataError: 1x5000 pixels"):
        train, _ = load_folder(root, size=12, cache_dir=cache)
    assert len(train) == 5 and "train/apple/thin.png" not in train.files
    with pytest.raises(DataError) as caught:
        load_folder(root, size=12, cache_dir=cache, on_error="raise")
    assert "\n" not in str(caught.value) and "train/apple/thin.png (DataError: 1x5000" in str(
        caught.value)


# -- dangling and looping symbolic links ----------------------------------------------------

def add_broken_links(root):
    """A dangling link and a link that loops among a folder dataset's images."""
    os.symlink(os.path.join(root, "nowhere.jpg"), os.path.join(root, "train", "apple", "gone.jpg"))
    os.symlink("loop.jpg", os.path.join(root, "train", "pear", "loop.jpg"))


def test_broken_links_are_named_and_skipped(tmp_path):
    root, cache = str(tmp_path / "f"), str(tmp_path / "c")
    make_folders(root)
    add_broken_links(root)
    for _ in range(2):                                  # the first fill, then from the cache
        with pytest.warns(UserWarning) as caught:
            train, val = load_folder(root, size=12, cache_dir=cache)
        text = "\n".join(str(w.message) for w in caught)
        assert "train/apple/gone.jpg: a symbolic link to a missing file" in text
        assert "train/pear/loop.jpg: a symbolic link that loops" in text
        assert len(train) == 5
        assert not any(f.endswith(("gone.jpg", "loop.jpg")) for f in train.files)
    with pytest.raises(DataError) as caught:
        load_folder(root, size=12, cache_dir=cache, on_error="raise")
    msg = str(caught.value)
    assert "\n" not in msg and "2 unreadable" in msg and "gone.jpg" in msg and "loop.jpg" in msg
    os.remove(os.path.join(root, "train", "apple", "gone.jpg"))     # mended: a fresh cache
    write_image(os.path.join(root, "train", "apple", "gone.jpg"), 30, 20, seed=9)
    with pytest.warns(UserWarning, match="loop.jpg"):
        train, _ = load_folder(root, size=12, cache_dir=cache)
    assert len(train) == 6


def test_broken_links_in_tiny_imagenet_val_are_skipped(tmp_path):
    root = str(tmp_path / "tiny")
    make_tiny(root)
    target = os.path.join(root, "val", "images", "val_4.JPEG")
    os.remove(target)
    os.symlink("/nonexistent/val_4.JPEG", target)
    with pytest.warns(UserWarning, match="val/images/val_4.JPEG: a symbolic link to a missing"):
        _, val = load_tiny_imagenet(root, size=16, cache_dir=str(tmp_path / "c"))
    assert len(val) == 5


def test_a_class_folder_that_cannot_be_read_is_an_error(tmp_path):
    root = str(tmp_path / "f")
    make_folders(root)
    os.symlink(str(tmp_path / "unmounted"), os.path.join(root, "train", "plum"))
    with pytest.raises(DataError, match="cannot be read: plum .a symbolic link to a missing"):
        load_folder(root, size=12, cache_dir=str(tmp_path / "c"))


def test_train_skips_or_names_unreadable_files(tmp_path, capsys):
    """train.py on a dataset with a dangling link, a looping link and an absurd image:
    --on-error warn trains on the rest and names all three; --on-error raise stops with one
    line that names them (exit 2)."""
    import train as train_cli
    data = tmp_path / "f"
    make_folders(str(data))
    add_broken_links(str(data))
    write_thin(str(data / "train" / "pear" / "thin.png"))
    cache = str(tmp_path / "c")
    with pytest.warns(UserWarning) as caught:
        assert train_cli.main(small_run(tmp_path, data, "--cache-dir", cache,
                                        "--on-error", "warn")) == 0
    text = "\n".join(str(w.message) for w in caught)
    for name in ("gone.jpg", "loop.jpg", "thin.png"):
        assert name in text
    assert "error" not in capsys.readouterr().err
    rc = train_cli.main(small_run(tmp_path, data, "--cache-dir", cache, "--on-error", "raise",
                                  "--overwrite"))
    last_line_error(capsys, rc, 2, "3 unreadable image file(s)", "train/apple/gone.jpg",
                    "train/pear/loop.jpg", "train/pear/thin.png", "--on-error warn")


def test_the_report_skips_broken_links(trained_run, tmp_path, monkeypatch, capsys):
    """python -m zfraw.report --data with broken links: they are named and skipped (here the
    report then refuses the other dataset's classes, in one line)."""
    from zfraw import report
    monkeypatch.setenv("ZFRAW_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "f"
    make_folders(str(data))
    add_broken_links(str(data))
    with pytest.warns(UserWarning) as caught:
        rc = report.main(["--run", str(trained_run), "--data", f"folder:{data}",
                          "--out", str(tmp_path / "report")])
    last_line_error(capsys, rc, 2, "2 classes")
    text = "\n".join(str(w.message) for w in caught)
    assert "gone.jpg: a symbolic link to a missing file" in text and "loop.jpg" in text
