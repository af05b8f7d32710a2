"""``python -m zfraw.report`` where it used to crash or mislead: an --out or a cache it cannot
write (one line, exit 2), a full disk while writing (one line naming the file, exit 1, every
figure whole, the page last), a checkpoint of another run or a file that is no checkpoint
(named as such), and part boxes outside their image (said, or refused)."""
import errno
import io
import json
import os
import pickle
import shutil

import matplotlib.figure
import numpy as np
import pytest
from PIL import Image

from conftest import train_folder_run, write_image
from definitions import one_line_error
from zfraw import report
from zfraw.viz.datasets import load_part_source

# Only the cheap sections: the training curves and the first-layer filters.
QUICK = ["--limit", "12", "--maps", "2", "--batch-size", "32", "--skip", "rules", "top9",
         "evolution", "invariance", "occlusion", "correspondence"]


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """A one-epoch run on a folder: dataset of 3 classes of 48x40 images (so that the decode
    cache is used), its cache in its own folder."""
    return train_folder_run(tmp_path_factory.mktemp("folder_run"), per_class=4, w=48, h=40)


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name)


def test_an_out_under_a_file_is_one_line_and_exit_2(trained_run, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    rc = report.main(["--run", str(trained_run), "--out", str(a_file / "report")] + QUICK)
    one_line_error(capsys, rc, f"--out {a_file / 'report'} is under {a_file}", "is a file")
    assert a_file.read_text() == "x"


def test_a_cache_that_cannot_be_written_is_one_line_and_exit_2(folder_run, tmp_path, capsys):
    run, _ = folder_run
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    rc = report.main(["--run", str(run), "--out", str(tmp_path / "r"), "--cache-dir",
                      str(a_file / "cache")] + QUICK)
    one_line_error(capsys, rc, f"cannot write the decoded-image cache {a_file / 'cache'}",
                   "give --cache-dir a folder that can be written")
    # The run's own cache folder (from its config) gone bad: the same line.
    copy = shutil.copytree(run, tmp_path / "copy")
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps(dict(config, cache_dir=str(a_file / "c2"))))
    rc = report.main(["--run", str(copy), "--out", str(tmp_path / "r2")] + QUICK)
    one_line_error(capsys, rc, f"decoded-image cache {a_file / 'c2'}", "--cache-dir")
    # ... which --cache-dir overrides.
    assert report.main(["--run", str(copy), "--out", str(tmp_path / "r2"), "--cache-dir",
                        str(tmp_path / "cache")] + QUICK) == 0


class FullDisk:
    """A disk that fills up after ``whole`` figure files: the next one gets half its bytes,
    then ENOSPC (figures drawn into memory are not counted). Injected into Pillow's and Matplotlib's
    savers, so it hits whatever file object or path they are given."""

    def __init__(self, monkeypatch, whole: int):
        self.whole, self.written = whole, []
        pil_save, mpl_save = Image.Image.save, matplotlib.figure.Figure.savefig
        disk = self

        def pil(img, fp, format=None, **kw):
            buf = io.BytesIO()
            pil_save(img, buf, format=format or "PNG", **kw)
            disk.write(fp, buf.getvalue())

        def mpl(fig, fname, **kw):
            buf = io.BytesIO()
            mpl_save(fig, buf, **dict(kw, format="png"))
            disk.write(fname, buf.getvalue())

        monkeypatch.setattr(Image.Image, "save", pil)
        monkeypatch.setattr(matplotlib.figure.Figure, "savefig", mpl)

    def write(self, target, data: bytes):
        if isinstance(target, io.BytesIO):        # memory, not the disk
            target.write(data)
            return
        full = len(self.written) >= self.whole
        self.written.append(getattr(target, "name", target))
        part = data[: len(data) // 2] if full else data
        if isinstance(target, (str, os.PathLike)):
            with open(target, "wb") as f:
                f.write(part)
        else:
            target.write(part)
        if full:
            raise OSError(errno.ENOSPC, "No space left on device")


def whole_pngs(folder):
    """Every PNG in ``folder`` decodes completely (none is truncated)."""
    for p in folder.glob("*.png"):
        with Image.open(p) as im:
            im.load()
    return sorted(p.name for p in folder.glob("*.png"))


@pytest.mark.parametrize("before", ["no report", "a report"])
def test_a_full_disk_while_writing_the_report_leaves_whole_files(trained_run, tmp_path, capsys,
                                                                  monkeypatch, before):
    out = tmp_path / "report"
    argv = ["--run", str(trained_run), "--out", str(out)] + QUICK
    if before == "a report":
        assert report.main(argv) == 0
    old_page = (out / "index.html").read_bytes() if before == "a report" else None
    capsys.readouterr()
    disk = FullDisk(monkeypatch, whole=1)
    rc = report.main(argv)
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and lines == [err.strip().splitlines()[-1]]
    broken = os.path.basename(str(disk.written[1])).split(".tmp")[0]
    assert f"{out / broken} (No space left on device)" in lines[0]
    assert "the figures written before it are whole and no temporary file is left" in lines[0]
    if before == "a report":
        assert f"{out / 'index.html'} is still the previous report's page" in lines[0]
        assert (out / "index.html").read_bytes() == old_page
    else:
        assert f"{out / 'index.html'} was not written" in lines[0]
        assert not (out / "index.html").exists()
    assert leftovers(out) == []
    assert whole_pngs(out), disk.written  # each figure is the old one or the new one, never cut


def test_a_checkpoint_of_another_run_is_named_as_that(trained_run, folder_run, tmp_path, capsys):
    run, root = folder_run
    other = run / "last.npz"
    rc = report.main(["--run", str(trained_run), "--checkpoint", str(shutil.copy(
        other, tmp_path / "other.npz")), "--out", str(tmp_path / "r")] + QUICK)
    one_line_error(capsys, rc, f"{tmp_path / 'other.npz'} is a checkpoint of another run",
                   f"data folder:{root}", "data synthetic:96", "--checkpoint")
    assert not (tmp_path / "r").exists()


def test_a_file_that_is_no_checkpoint_is_named_as_that(trained_run, tmp_path, capsys):
    files = {"mean.npy": trained_run / "mean.npy", "config.json": trained_run / "config.json"}
    files["pickle"] = tmp_path / "net.pkl"
    files["pickle"].write_bytes(pickle.dumps({"W": [1, 2, 3]}))
    files["other npz"] = tmp_path / "other.npz"
    np.savez(files["other npz"], W=np.ones(3))
    for name, path in files.items():
        rc = report.main(["--run", str(trained_run), "--checkpoint", str(path), "--out",
                          str(tmp_path / "r")] + QUICK)
        err = capsys.readouterr().err
        assert "allow_pickle" not in err and "unsafely" not in err, (name, err)
        assert rc == 2 and "Traceback" not in err, (name, err)
        assert f"error: {path} is not a zfraw checkpoint" in err, (name, err)


def parts_dataset(tmp_path):
    """A folder: dataset of 64x48 images (stored at 36: 48x36, crop x offset 6, then the 32
    centre crop at offset 2; a net pixel is 4/3 original pixels)."""
    root = tmp_path / "ds"
    for split in ("train", "val"):
        for c in ("a", "b"):
            for k in range(3):
                write_image(str(root / split / c / f"{k}.png"), w=64, h=48, seed=k)
    return root


def test_part_boxes_outside_the_image_or_the_view_are_said_or_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("ZFRAW_CACHE", str(tmp_path / "cache"))
    root = parts_dataset(tmp_path)
    # The view covers original x in [10.7, 53.3) and y in [2.7, 45.3).
    parts = {"val/a/0.png": {"eye": [20, 10, 30, 20], "nose": [50, 10, 58, 20]},
             "val/a/1.png": {"eye": [20, 10, 30, 20], "nose": [0, 10, 4, 20],
                             "ear": [-5, -5, 20, 10]},
             "val/a/2.png": {"eye": [20, 10, 30, 20]}}
    (tmp_path / "parts.json").write_text(json.dumps(parts))
    said = []
    src = load_part_source(tmp_path / "parts.json", f"folder:{root}", crop=32, size=36,
                           mean=None, log=said.append)
    view = "the net's view (32x32 centre crop of the image stored at 36x36)"
    assert said == [
        f"--parts {tmp_path / 'parts.json'}: 1 box(es) reach outside their image, clipped to "
        "it: val/a/1.png ear [-5, -5, 20, 10] (image 64x48)",
        f"--parts {tmp_path / 'parts.json'}: 2 part box(es) reach outside {view}, clipped to "
        "it: val/a/0.png nose [50, 10, 58, 20], val/a/1.png ear [-5, -5, 20, 10]",
        f"--parts {tmp_path / 'parts.json'}: 1 part box(es) lie outside {view}, left out: "
        "val/a/1.png nose [0, 10, 4, 20]"]
    assert "nose" not in src.parts[1] and "nose" in src.parts[0] and "ear" in src.parts[1]

    parts["val/a/2.png"]["nose"] = [64, 0, 80, 10]
    parts["val/a/0.png"]["chin"] = [10, 48, 20, 60]
    (tmp_path / "parts.json").write_text(json.dumps(parts))
    with pytest.raises(ValueError, match=r"2 box\(es\) lie wholly outside their image: "
                                         r"val/a/0.png chin \[10, 48, 20, 60\] \(image 64x48\), "
                                         r"val/a/2.png nose \[64, 0, 80, 10\] \(image 64x48\)"):
        load_part_source(tmp_path / "parts.json", f"folder:{root}", crop=32, size=36,
                         mean=None, log=said.append)


def test_the_report_refuses_part_boxes_wholly_outside_their_image(folder_run, tmp_path, capsys):
    run, _ = folder_run
    parts = {"val/ant/0.png": {"eye": [10, 10, 20, 20]},
             "val/ant/1.png": {"eye": [100, 10, 120, 20]}}
    (tmp_path / "parts.json").write_text(json.dumps(parts))
    argv = ["--run", str(run), "--out", str(tmp_path / "r"), "--parts", str(tmp_path / "parts.json"),
            "--limit", "6", "--batch-size", "32", "--skip", "filters", "rules", "top9",
            "evolution", "invariance", "occlusion"]
    rc = report.main(argv)
    one_line_error(capsys, rc, "1 box(es) lie wholly outside their image: val/ant/1.png eye "
                   "[100, 10, 120, 20] (image 48x40)")
