"""The atlas (python -m zfraw.atlas) on the tiny trained run of conftest.py: it lists exactly the
maps of every conv layer, every file it names and every link of its pages exist, its top-9 is
the report's, an interrupted pass resumes and gives the same atlas, a pass shared by ranks
gives the single pass's result, and bad input is one line and exit 2."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from definitions import one_line_error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--evolution-images", "8", "--lossless", "--batch-size", "8"]   # 19 images: 3 batches


def build(run, out, *extra):
    from zfraw.atlas import build_atlas, parse_args

    return build_atlas(parse_args(["--run", str(run), "--out", str(out)] + SMALL + list(extra)))


@pytest.fixture(scope="module")
def atlas(trained_run, tmp_path_factory):
    """The atlas of the tiny run, lossless (its pictures are the exact pixels)."""
    out = tmp_path_factory.mktemp("atlas") / "atlas"
    build(trained_run, out)
    return out


def read_index(out):
    return json.loads((out / "atlas.json").read_text())


def pixels(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def links(page: Path):
    """Every href and src of a page."""
    return re.findall(r"""(?:href|src)=['"]([^'"]+)['"]""", page.read_text())


def test_atlas_lists_exactly_the_maps_of_every_conv_layer(atlas, trained_run):
    from zfraw.layers import Conv2d
    from zfraw.rundir import RunDir

    net = RunDir(trained_run).load_net()[0]
    convs = [ly for ly in net.layers if isinstance(ly, Conv2d)]
    index = read_index(atlas)
    assert [ly["name"] for ly in index["layers"]] == [f"relu{c.name[4:]}" for c in convs]
    for ly, conv in zip(index["layers"], convs):
        out = conv.params["W"].shape[0]
        assert ly["maps"] == out and [m["map"] for m in ly["map_list"]] == list(range(out))
        assert ly["dead"] == sum(m["dead"] for m in ly["map_list"])
        for m in ly["map_list"]:
            assert m["dead"] == (m["fired"] == 0) == (m["firing_rate"] == 0)
            # a map that fired has its pictures, a dead one only its page
            want = {"page", "thumb", "top9", "patches"} if not m["dead"] else {"page"}
            assert want <= set(m["files"]) and (m["dead"] or len(m["top9"]) == 9)
    assert index["images"] == 19 and index["epochs"] == [1]


def test_every_file_named_and_every_link_exists(atlas):
    index = read_index(atlas)
    named = [index["index"], index["style"]]
    for ly in index["layers"]:
        named.append(ly["page"])
        for m in ly["map_list"]:
            named += list(m["files"].values())
    assert len(named) == len(set(named))
    for rel in named:
        assert (atlas / rel).is_file() and (atlas / rel).stat().st_size > 0, rel
    pages = sorted(atlas.rglob("*.html"))
    assert {p.relative_to(atlas).as_posix() for p in pages} == {
        n for n in named if n.endswith(".html")}
    root = atlas.resolve()
    for page in pages:
        found = links(page)
        assert found, page
        for link in found:
            assert "://" not in link and not link.startswith("/"), (page, link)
            target = (page.parent / link).resolve()
            assert target.is_file(), (page, link)
            assert root in target.parents, (page, link)      # inside the atlas


def test_layer_page_sorts_by_firing_rate_and_flags(atlas):
    index = read_index(atlas)
    for ly in index["layers"]:
        text = (atlas / ly["page"]).read_text()
        shown = [int(m) for m in re.findall(r"href='map-(\d{4})\.html'", text)]
        rates = {m["map"]: m["firing_rate"] for m in ly["map_list"]}
        assert sorted(shown) == list(range(ly["maps"]))
        assert [rates[m] for m in shown] == sorted(rates.values(), reverse=True)
        assert text.count("loading='lazy'") == ly["maps"] - ly["dead"]
        assert f"</span> {ly['dead']} (never above zero)" in text
        assert f"{ly['near_duplicates']} near-duplicates in {ly['duplicate_pairs']} pairs" in text


def test_top9_is_the_reports(atlas, trained_run, tmp_path):
    """The atlas's top-9 of every map is the report's: the same images, positions and values
    as the report's top-9 pass, the same projection and patch blocks (exact pixels: lossless),
    and for a layer, the report's own Fig. 2 figure of all its maps."""
    from zfraw.report import build_report, parse_args
    from zfraw.report.subject import subject_of
    from zfraw.viz.html import PAGE_WIDTH
    from zfraw.viz.top9 import collect_topk, layer_figure, map_blocks, project_topk

    index = read_index(atlas)
    subject = subject_of(parse_args(["--run", str(trained_run), "--limit", "19"]))
    layers = [ly["name"] for ly in index["layers"]]
    best = collect_topk(subject.net, subject.source, layers, k=9, batch_size=8, distinct=True,
                        desc="")
    for ly in index["layers"]:
        tk = best[ly["name"]]
        live = [m["map"] for m in ly["map_list"] if not m["dead"]]
        assert live == [m for m in range(ly["maps"]) if tk.values[m, 0] > 0]
        items = project_topk(subject.net, subject.source, ly["name"], tk, live, batch_size=8)
        for m in ly["map_list"]:
            if m["dead"]:
                continue
            j = m["map"]
            got = [(t["image"], t["y"], t["x"]) for t in m["top9"]]
            assert got == list(zip(tk.image[j].tolist(), tk.y[j].tolist(), tk.x[j].tolist()))
            np.testing.assert_array_equal([t["value"] for t in m["top9"]], tk.values[j])
            proj, patch = map_blocks(items[j])
            np.testing.assert_array_equal(pixels(atlas / m["files"]["top9"]), proj)
            np.testing.assert_array_equal(pixels(atlas / m["files"]["patches"]), patch)
            page = (atlas / m["files"]["page"]).read_text()
            cells = re.findall(r"<tr><td class='n'>(\d+)</td><td class='n'>(\d+)</td>", page)
            assert [int(n) for _, n in cells] == [t["image"] for t in m["top9"]]
    # The report itself, every map of a layer without dead maps: its figure is the atlas's
    # blocks laid out as Fig. 2.
    ly = next(ly for ly in index["layers"] if ly["dead"] == 0)
    others = [s for s in ("filters", "rules", "evolution", "invariance", "occlusion",
                          "correspondence")]
    page = build_report(parse_args(["--run", str(trained_run), "--limit", "19", "--batch-size",
                                    "8", "--top9-layers", ly["name"], "--all-maps", ly["name"],
                                    "--out", str(tmp_path / "report"), "--skip"] + others))
    blocks = [(pixels(atlas / m["files"]["top9"]), pixels(atlas / m["files"]["patches"]))
              for m in ly["map_list"]]
    np.testing.assert_array_equal(pixels(page.parent / f"top9_{ly['name']}.png"),
                                  layer_figure(blocks, max_width=PAGE_WIDTH))


def test_map_page_shows_its_numbers(atlas):
    index = read_index(atlas)
    ly = index["layers"][1]
    m = next(m for m in ly["map_list"] if not m["dead"])
    text = (atlas / m["files"]["page"]).read_text()
    assert f"Fires on {m['fired']} of 19 images" in text
    assert "<svg class='hist'" in text and "Top-9 (Fig. 2)" in text
    names = ", ".join(f"{c} x{n}" for c, n in m["classes"])
    assert f"Classes of its top images (the true class): {names}." in text
    assert sum(n for _, n in m["classes"]) == sum(t["value"] > 0 for t in m["top9"])
    assert "-evolution.webp" in text and "At each saved epoch (1; labelled above)" in text
    nav = re.findall(r"href='(map-\d{4}\.html)'>(?:&larr;|&rarr;)", text)
    assert nav == [f"map-{j:04d}.html" for j in (m["map"] - 1, m["map"] + 1)
                   if 0 <= j < ly["maps"]]


def test_stats_of_constructed_maxima():
    from zfraw.atlas.stats import class_counts, firing_rates, histogram, near_duplicates

    rng = np.random.default_rng(0)
    a = rng.random(200)
    maxima = np.stack([a, 2 * a + 0.01 * rng.random(200), rng.random(200), np.zeros(200),
                       np.where(a > 0.5, a, 0)], axis=1)
    np.testing.assert_allclose(firing_rates(maxima), [1, 1, 1, 0, np.mean(a > 0.5)])
    dups = near_duplicates(maxima)
    assert [o for o, _ in dups[0]] == [1] and [o for o, _ in dups[1]] == [0]
    assert dups[2] == [] and dups[3] == [] and all(o != 3 for o, _ in dups[4])
    assert dups[0][0][1] > 0.99
    zeros, counts, edges = histogram(maxima[:, 4], bins=10)
    assert zeros == np.sum(a <= 0.5) and counts.sum() == np.sum(a > 0.5)
    assert edges[-1] == a.max()
    assert histogram(np.zeros(5))[0] == 5
    assert class_counts([2, 0, 2, 1, 0, 2], ["a", "b", "c"]) == [("c", 3), ("a", 2), ("b", 1)]


def _same_atlas(a, b):
    """Two atlases hold the same files with the same bytes, but for how the pass went (its
    time, where it resumed), which atlas.json and the index page say."""
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        if rel.name in ("atlas.json", "index.html") and rel.parent == Path("."):
            continue
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    ia, ib = read_index(a), read_index(b)
    ia.pop("pass"), ib.pop("pass")
    assert ia == ib


def test_an_interrupted_pass_resumes_and_gives_the_same_atlas(atlas, trained_run, tmp_path,
                                                            monkeypatch, capsys):
    """Ctrl-C during the pass: it stops at the batch boundary, saves, exits 130; a process
    killed later keeps the last periodic save; each re-run goes on from the saved batch (the
    batches before it are not forwarded again) and the atlas is the uninterrupted one's."""
    from zfraw.atlas import main, scan

    out = tmp_path / "atlas"
    calls = []
    real = scan.per_image_max

    def ctrl_c_at_batch_2(act):
        calls.append(1)
        if len(calls) == 2 * 5:              # the second batch (5 layers per batch)
            os.kill(os.getpid(), signal.SIGINT)
        return real(act)

    monkeypatch.setattr(scan, "per_image_max", ctrl_c_at_batch_2)
    argv = ["--run", str(trained_run), "--out", str(out), "--save-every", "100"] + SMALL
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "stopped by Ctrl-C after 16 of 19 images" in err and "run the same command" in err
    assert not (out / "atlas.json").exists()
    state = out / scan.STATE_DIR / "rank-0-of-1.npz"
    with np.load(state) as z:
        assert int(z["done"]) == 2

    class Killed(Exception):
        pass

    def killed_at_batch_3(act):                # a crash, not Ctrl-C: nothing saved at it
        raise Killed()

    monkeypatch.setattr(scan, "per_image_max", killed_at_batch_3)
    with pytest.raises(Killed):
        build(trained_run, out, "--save-every", "100")
    assert "resuming the pass after image 16 of 19" in capsys.readouterr().err

    calls.clear()
    monkeypatch.setattr(scan, "per_image_max", lambda act: (calls.append(1), real(act))[1])
    assert main(argv) == 0
    assert "resuming the pass after image 16 of 19" in capsys.readouterr().err
    assert len(calls) == 5                   # one batch of 5 layers: the rest of the pass
    assert read_index(out)["pass"]["resumed_at_image"] == 16
    assert not (out / scan.STATE_DIR).exists()
    _same_atlas(atlas, out)


def test_a_saved_pass_of_other_inputs_is_not_used(trained_run, tmp_path, capsys):
    from zfraw.atlas import scan
    from zfraw.report import parse_args
    from zfraw.report.subject import subject_of

    s = subject_of(parse_args(["--run", str(trained_run), "--limit", "19"]))
    layers = s.layers["top9"]
    state = tmp_path / "state"
    first = scan.scan(s.net, s.source, layers, state, batch_size=8, progress=False)
    assert first.resumed_at == 0 and (state / "rank-0-of-1.npz").is_file()
    again = scan.scan(s.net, s.source, layers, state, batch_size=8, progress=False)
    assert again.resumed_at == 19                       # complete: nothing forwarded again
    for name in layers:
        np.testing.assert_array_equal(again.maxima[name], first.maxima[name])
        np.testing.assert_array_equal(again.topk[name].image, first.topk[name].image)
    capsys.readouterr()
    other = scan.scan(s.net, s.source, layers, state, batch_size=4, progress=False)
    assert other.resumed_at == 0 and "starting the pass over" in capsys.readouterr().err
    (state / "rank-0-of-4.npz").write_bytes(b"not a state")
    # a damaged file is named and set aside
    assert scan.MapState.load(state / "rank-0-of-4.npz", "x", layers, 9) is None
    assert "is damaged" in capsys.readouterr().err
    maxima = first.maxima["relu2"]
    assert maxima.shape == (19, s.net.output_shape("relu2")[0])
    act = s.net.eval().forward(s.source.inputs(np.arange(19)), until="relu2")
    np.testing.assert_allclose(maxima, act.reshape(19, act.shape[1], -1).max(axis=2),
                               rtol=1e-5, atol=1e-6)


class ThreadTeam:
    """Ranks as threads of one process: what the pass asks of an MPI team."""

    def __init__(self, rank, size, board):
        self.rank, self.size, self.root, self.board = rank, size, rank == 0, board

    def allgather(self, obj):
        self.board["slots"][self.rank] = obj
        self.board["barrier"].wait()
        out = list(self.board["slots"])
        self.board["barrier"].wait()
        return out

    def any(self, flag):
        return any(self.allgather(bool(flag)))

    def barrier(self):
        self.board["barrier"].wait()


def test_a_pass_shared_by_ranks_is_the_single_pass(trained_run, tmp_path):
    """Three ranks (threads, each with its own net) deal the batches round-robin, one of them
    with a batch fewer; the merged top-9 and maxima are the single pass's."""
    from zfraw.atlas import scan
    from zfraw.report import parse_args
    from zfraw.report.subject import subject_of

    from zfraw.ops.registry import use_impl

    s = subject_of(parse_args(["--run", str(trained_run), "--limit", "19"]))
    layers = s.layers["top9"]
    with use_impl("numpy"):                    # the reference: safe in threads
        one = scan.scan(s.net, s.source, layers, tmp_path / "one", batch_size=4,
                        progress=False)
    size = 3                                   # 5 batches: ranks 0, 1 take 2, rank 2 takes 1
    board = {"slots": [None] * size, "barrier": threading.Barrier(size)}
    results = [None] * size

    def rank(r):
        net = subject_of(parse_args(["--run", str(trained_run), "--limit", "19"])).net
        results[r] = scan.scan(net, s.source, layers, tmp_path / "shared", batch_size=4,
                               team=ThreadTeam(r, size, board), progress=False)

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(size)]
    with use_impl("numpy"):
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    assert all(r is not None for r in results)
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == [
        f"rank-{r}-of-3.npz" for r in range(3)]
    for res in results:
        assert res.ranks == 3 and res.images == 19
        for name in layers:
            np.testing.assert_array_equal(res.maxima[name], one.maxima[name])
            np.testing.assert_array_equal(res.topk[name].values, one.topk[name].values)
            pos = one.topk[name].values > 0          # zero-valued slots may tie
            for f in ("image", "y", "x"):
                np.testing.assert_array_equal(getattr(res.topk[name], f)[pos],
                                              getattr(one.topk[name], f)[pos])


MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")


@pytest.mark.skipif(MPIEXEC is None or __import__("importlib").util.find_spec("mpi4py") is None,
                    reason="needs mpiexec and mpi4py (pip install 'zfraw[mpi]')")
def test_the_atlas_under_mpiexec_is_the_single_process_one(atlas, trained_run, tmp_path):
    out = tmp_path / "atlas"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI_", "OMPI_", "MPI_LOCAL", "HYDRA_"))}
    env.update(OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=ROOT)
    p = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-m", "zfraw.atlas", "--run",
                        str(trained_run), "--out", str(out)] + SMALL, cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    one, two = read_index(atlas), read_index(out)
    assert two["pass"]["ranks"] == 2 and one["pass"]["ranks"] == 1
    # The ranks forward the single process's batches (with other thread counts, so values
    # may differ in the last bits): the same maps, top-9 images and positions, files.
    for a, b in zip(one["layers"], two["layers"]):
        assert (a["name"], a["maps"], a["dead"]) == (b["name"], b["maps"], b["dead"])
        for ma, mb in zip(a["map_list"], b["map_list"]):
            assert ma["files"] == mb["files"] and ma["fired"] == mb["fired"]
            live = [t for t in ma["top9"] if t["value"] > 0]
            assert [(t["image"], t["y"], t["x"]) for t in live] == \
                [(t["image"], t["y"], t["x"]) for t in mb["top9"][:len(live)]]
            np.testing.assert_allclose([t["value"] for t in ma["top9"]],
                                       [t["value"] for t in mb["top9"]], rtol=1e-4, atol=1e-6)
    for rel in (m["files"]["page"] for ly in two["layers"] for m in ly["map_list"]):
        assert (out / rel).is_file()


def test_an_imported_net_has_its_atlas_without_evolution(trained_run, tmp_path):
    pytest.importorskip("onnx")
    from zfraw.atlas import main
    from zfraw.nets.onnx import save_onnx
    from zfraw.report import parse_args
    from zfraw.report.subject import subject_of

    s = subject_of(parse_args(["--run", str(trained_run), "--limit", "4"]))
    save_onnx(s.net, tmp_path / "net.onnx", input_spec=s.source.spec)
    assert main(["--model", str(tmp_path / "net.onnx"), "--data", "synthetic:20", "--lossless",
                 "--batch-size", "8"]) == 0
    out = tmp_path / "atlas-net"
    index = read_index(out)
    assert [ly["name"] for ly in index["layers"]] == s.layers["top9"]
    assert index["epochs"] == [] and index["images"] == 4
    m = index["layers"][0]["map_list"][0]
    assert "evolution" not in m["files"]
    assert "an imported net has no training checkpoints" in (out / m["files"]["page"]).read_text()


def test_bad_input_is_one_line_and_exit_2(trained_run, tmp_path, capsys):
    from zfraw.atlas import main

    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    r = ["--run", str(trained_run)]
    cases = {
        "no such run": (["--run", str(tmp_path / "nonexistent")], ["no such run folder"]),
        "not a run": (["--run", str(tmp_path)], ["not a training run folder"]),
        "neither": ([], ["give --run DIR"]),
        "model without data": (["--model", str(a_file)], ["--model needs --data"]),
        "run with preprocess": (r + ["--preprocess", "caffe"], ["--preprocess goes with"]),
        "no such model": (["--model", str(tmp_path / "x.onnx"), "--data", "synthetic"],
                          ["no such file"]),
        "limit 0": (r + ["--limit", "0"], ["--limit must be at least 1"]),
        "save-every 0": (r + ["--save-every", "0"], ["--save-every must be at least 1"]),
        "quality 0": (r + ["--quality", "0"], ["--quality must be in 1..100"]),
        "missing checkpoint": (r + ["--checkpoint", str(tmp_path / "x.npz")],
                               ["no checkpoint at"]),
        "out is a file": (r + ["--out", str(a_file)], ["is a file"]),
    }
    for name, (argv, words) in cases.items():
        if "--out" not in argv:
            argv = argv + ["--out", str(tmp_path / "atlas")]
        rc = main(argv)
        one_line_error(capsys, rc, *words)
    assert not (tmp_path / "atlas").exists() and not (trained_run / "atlas").exists()
    p = subprocess.run([sys.executable, "-m", "zfraw.atlas", "--run", "/nonexistent"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("error: ")


def test_the_report_links_to_the_atlas_where_it_is(trained_run, tmp_path):
    """RUN/atlas/index.html, the atlas's default place: linked from the report's page when it
    is there, the command that builds it named when it is not."""
    import shutil

    from zfraw.report import build_report, parse_args

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    skip = ["--skip", "filters", "rules", "top9", "evolution", "invariance", "occlusion",
            "correspondence"]

    def page():
        return build_report(parse_args(["--run", str(run), "--limit", "8"] + skip)).read_text()

    assert "python -m zfraw.atlas" in page() and "its atlas</a>" not in page()
    build(run, run / "atlas")
    text = page()
    assert '<a href="../atlas/index.html">its atlas</a>' in text
    assert (run / "report" / "../atlas/index.html").exists()
