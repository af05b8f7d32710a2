"""Data-parallel training over MPI (zfraw.distributed) and the exact merges of sharded analyses.

The MPI tests start ``mpiexec -n 2`` on the CPU (skipped when mpiexec or mpi4py is missing:
``pip install 'zfraw[mpi]'``), each rank with one thread, on zf-32 at width 1/8, 64 synthetic
images, batch 16 (4 steps an epoch), dropout off, the NumPy impl.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from zfraw import distributed
from zfraw.checkpoint import load_checkpoint
from zfraw.rundir import RunDir
from zfraw.training import TrainConfig, train
from zfraw.viz.topk import StreamingTopK, merge_topk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
needs_mpi = pytest.mark.skipif(MPIEXEC is None or importlib.util.find_spec("mpi4py") is None,
                               reason="needs mpiexec and mpi4py (pip install 'zfraw[mpi]')")
TINY = dict(arch="zf-32", width=0.125, data="synthetic:64", batch_size=16, init="he",
            input_scale=1 / 64, dropout=0.0, impl="numpy", seed=3, progress=False)
# A bound on the worst parameter's max |difference| / max |value| after 8 steps at batch 16,
# 2 ranks x 8 images against 1 process x 16: float32 rounding of the summed gradients (the
# ranks add their halves in another order). Measured: 5e-7 after 4 steps, 6.7e-7 after 8
# (weights and velocities).
RTOL = 2e-5


def cli_args(out, epochs, **kw):
    opts = dict(TINY, **kw)
    args = ["--no-progress", "--out", str(out), "--epochs", str(epochs)]
    for k, v in opts.items():
        if k != "progress":
            args += [f"--{k.replace('_', '-')}", str(v)]
    return args


def mpi_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI_", "OMPI_", "MPI_LOCAL", "HYDRA_"))}
    env.update(OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=ROOT)
    return env


def mpirun(args, n=2, timeout=120):
    return subprocess.run([MPIEXEC, "-n", str(n), sys.executable] + args, cwd=ROOT,
                          env=mpi_env(), capture_output=True, text=True, timeout=timeout)


def single(out, epochs, **kw):
    result = train(TrainConfig(out=str(out), epochs=epochs, **dict(TINY, **kw)),
                   log=lambda *a: None)
    assert result["status"] == "done"
    return load_checkpoint(os.path.join(out, "last.npz"))


def worst_difference(a, b):
    """Largest over parameters of max |a - b| / max |a| (velocities included)."""
    pairs = [(a["net"][k], b["net"][k]) for k in a["net"] if a["net"][k].size > 1]
    pairs += [(a["opt"]["velocity"][k], b["opt"]["velocity"][k]) for k in a["opt"]["velocity"]]
    return max(float(np.abs(x.astype(np.float64) - y).max() / np.abs(x).max()) for x, y in pairs)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The single-process run: 2 epochs at batch 16."""
    out = tmp_path_factory.mktemp("single")
    return str(out), single(out, 2)


@needs_mpi
def test_two_ranks_train_the_single_process_weights(tmp_path, reference):
    """2 ranks x 8 images give the weights of 1 process x 16 after 8 steps, within float32
    rounding (largest relative difference measured: 6.7e-7, asserted below RTOL = 2e-5);
    rank 0 alone wrote the folder; the summed metrics agree with the single run's."""
    out = tmp_path / "dp"
    r = mpirun(["train.py"] + cli_args(out, 2))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("epoch 2:") == 1, r.stdout          # rank 0 alone prints
    assert "data-parallel over 2 MPI ranks x 8 images" in r.stdout
    got = load_checkpoint(str(out / "last.npz"))
    diff = worst_difference(reference[1], got)
    assert diff < RTOL, f"largest relative difference {diff:.2e}"
    assert got["meta"]["epoch"] == 2 and got["meta"]["step"] == 0
    assert sorted(p.name for p in out.iterdir()) == [
        ".lock", "config.json", "epoch-001.npz", "epoch-002.npz", "last.npz", "mean.npy",
        "metrics.jsonl", "predictions"]
    assert sorted(p.name for p in (out / "predictions").iterdir()) == [
        "val-epoch-001.npz", "val-epoch-002.npz"]
    with open(os.path.join(reference[0], "metrics.jsonl")) as f:
        ref_rows = [json.loads(line) for line in f]
    with open(out / "metrics.jsonl") as f:
        rows = [json.loads(line) for line in f]
    assert len(rows) == 2
    for a, b in zip(ref_rows, rows):
        assert a["train_top1"] == b["train_top1"] and a["val_top1"] == b["val_top1"]
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-5
        assert abs(a["val_loss"] - b["val_loss"]) < 1e-5
    # every rank evaluates its shard; rank 0 keeps the whole set's per-image results, in order
    mine, theirs = RunDir(reference[0]).read_predictions(), RunDir(out).read_predictions()
    for key in ("top1", "true_rank", "labels"):
        np.testing.assert_array_equal(mine[key], theirs[key])


@needs_mpi
def test_resume_across_rank_counts(tmp_path, reference):
    """A run's epoch-1 checkpoint continued by 2 ranks (from a single process), or by a single
    process (from 2 ranks), ends at the single run's epoch-2 weights within rounding."""
    ref_dir, ref = reference
    out = tmp_path / "to-two"
    shutil.copytree(ref_dir, out)
    os.remove(out / "last.npz")
    os.remove(out / "epoch-002.npz")
    r = mpirun(["train.py", "--resume-from", str(out / "epoch-001.npz"), "--out", str(out),
                "--no-progress"])
    assert r.returncode == 0, r.stderr
    assert "resuming at epoch 2 step 0; data-parallel over 2" in r.stdout
    assert worst_difference(ref, load_checkpoint(str(out / "last.npz"))) < RTOL

    back = tmp_path / "to-one"
    shutil.copytree(out, back)     # its epoch-002.npz came from the 2 ranks: go on from it
    res = train(TrainConfig(out=str(back), epochs=3, **TINY), resume=True, log=lambda *a: None)
    assert res["status"] == "done" and res["epoch"] == 3
    three = single(tmp_path / "single3", 3)
    assert worst_difference(three, load_checkpoint(str(back / "last.npz"))) < RTOL


@needs_mpi
def test_a_killed_rank_ends_the_job_and_keeps_the_checkpoint(tmp_path):
    """Rank 1 SIGKILLs itself in epoch 2: mpiexec ends the job (no hang: bounded by the
    timeout), says so, and last.npz is epoch 1's, intact."""
    out = tmp_path / "killed"
    t0 = time.monotonic()
    r = mpirun([os.path.join("tests", "mpi_kill.py"), str(out)], timeout=120)
    assert time.monotonic() - t0 < 120
    assert r.returncode != 0
    assert "not killed?" not in r.stdout
    assert "BAD TERMINATION" in r.stdout + r.stderr
    ckpt = load_checkpoint(str(out / "last.npz"))
    assert (ckpt["meta"]["epoch"], ckpt["meta"]["step"]) == (1, 0)
    assert not [p for p in out.iterdir() if ".tmp" in p.name]


@needs_mpi
def test_a_batch_that_does_not_divide_is_refused_by_every_rank(tmp_path):
    r = mpirun(["train.py"] + cli_args(tmp_path / "odd", 1, batch_size=15), timeout=60)
    assert r.returncode == 2
    assert r.stderr.count("does not divide over 2 MPI ranks") == 1, r.stderr   # rank 0 says it


def test_no_mpi_without_a_launcher():
    """A plain process never imports mpi4py, and world() is None."""
    code = ("import sys, train; from zfraw import distributed; "
            "assert distributed.world() is None; assert 'mpi4py' not in sys.modules; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=mpi_env(), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_shards_cover_the_set_once():
    for n in (0, 1, 7, 12):
        for size in (1, 2, 3, 5):
            cuts = [distributed.shard_range(n, r, size) for r in range(size)]
            assert cuts[0][0] == 0 and cuts[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(cuts, cuts[1:]))


def _topk_single_and_shards(acts, k, shards):
    """The single streaming pass over batches of ``acts`` and the merge of passes over
    ``shards`` (lists of batch indices), each batch starting at its dataset index."""
    batch = 5
    starts = list(range(0, len(acts), batch))
    whole = StreamingTopK(k)
    for s in starts:
        whole.update(acts[s:s + batch], s)
    parts = []
    for shard in shards:
        tk = StreamingTopK(k)
        for i in shard:
            tk.update(acts[starts[i]:starts[i] + batch], starts[i])
        parts.append(tk.result())
    return whole.result(), merge_topk(parts)


@pytest.mark.parametrize("shape", [(23, 4, 3, 5), (23, 6)])
def test_sharded_topk_merge_equals_the_single_pass(shape):
    acts = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    n_batches = (shape[0] + 4) // 5
    for shards in ([list(range(0, 2)), list(range(2, n_batches))],           # two halves
                   [list(range(0, n_batches, 2)), list(range(1, n_batches, 2))]):   # dealt
        one, merged = _topk_single_and_shards(acts, 9, shards)
        for f in ("values", "image", "y", "x"):
            np.testing.assert_array_equal(getattr(one, f), getattr(merged, f), err_msg=f)


def test_topk_merge_pads_like_the_single_pass():
    """Fewer activations than k: -inf / -1 slots, as StreamingTopK.result gives them."""
    acts = np.random.default_rng(1).standard_normal((3, 2)).astype(np.float32)   # 3 per map
    one, _ = _topk_single_and_shards(acts, 9, [[0]])
    a, b = StreamingTopK(9), StreamingTopK(9)
    a.update(acts[:1], 0)
    b.update(acts[1:], 1)
    merged = merge_topk([a.result(), b.result()])
    for f in ("values", "image", "y", "x"):
        np.testing.assert_array_equal(getattr(one, f), getattr(merged, f), err_msg=f)


def test_collect_topk_sharded_without_a_team_is_the_single_pass():
    from zfraw.nets import build
    from zfraw.viz.top9 import collect_topk

    class Source:   # the two methods of an ImageSource the passes use
        def __init__(self, x):
            self.x = x

        def __len__(self):
            return len(self.x)

        def inputs(self, idx):
            return self.x[np.asarray(idx)]

        def batches(self, batch_size, limit=None, desc=""):
            n = len(self.x) if limit is None else min(limit, len(self.x))
            for s in range(0, n, batch_size):
                yield s, self.x[s:min(s + batch_size, n)]

    net = build("zf-32", 10, seed=0, width=0.125)
    src = Source(np.random.default_rng(2).standard_normal((21, 3, 32, 32)).astype(np.float32))
    for distinct in (False, True):
        want = collect_topk(net, src, ["relu2", "fc6"], k=4, batch_size=8, desc="",
                            distinct=distinct)
        got = distributed.collect_topk_sharded(net, src, ["relu2", "fc6"], None, k=4,
                                               batch_size=8, distinct=distinct)
        for name in want:
            for f in ("values", "image", "y", "x"):
                np.testing.assert_array_equal(getattr(want[name], f), getattr(got[name], f))


def test_a_plain_process_is_a_team_of_one():
    """Without a launcher, training runs in distributed.SOLO: rank 0 of 1, the root, whose
    collectives return what they are given, whose loader is the plain BatchLoader (the same
    batches), and which shares, reduces and checks nothing (weights and dropout seeds as
    they were; no gradient reducer, so train_step's gradients stay the batch's)."""
    from zfraw.data import BatchLoader, Dataset, make_synthetic, mean_image
    from zfraw.layers import Dropout
    from zfraw.nets import build

    team = distributed.team()
    assert team is distributed.SOLO
    assert (team.rank, team.size, team.root) == (0, 1, True)
    assert team.any(False) is False and team.any(True) is True
    assert team.sum([1.5, 2, 7]) == [1.5, 2.0, 7.0]
    marker = object()
    assert team.bcast(marker) is marker and team.allgather(marker) == [marker]
    assert team.from_root(lambda: marker) is marker and team.root_first(lambda: marker) is marker
    with pytest.raises(ZeroDivisionError):
        team.from_root(lambda: 1 / 0)
    assert team.sync_every("cuda", 50) == 50 and team.sync_every("cpu", 50) == 50
    team.check_batch(15)                            # any batch divides over one rank

    images, labels, _ = make_synthetic(24, seed=0, size=36)
    data = Dataset(images, labels, None, list("abcdefghij"), list("abcdefghij"))
    assert team.shard(data) is data
    mean = mean_image(images)
    mine = team.train_loader(data, mean, 32, 8, 3, False, 1 / 64)
    plain = BatchLoader(data, mean, 32, 8, 3, False, 1 / 64)
    assert type(mine) is BatchLoader
    for (x, y), (px, py) in zip(mine.train_batches(1), plain.train_batches(1), strict=True):
        np.testing.assert_array_equal(x, px)
        np.testing.assert_array_equal(y, py)

    net = build("zf-32", 10, seed=0, width=0.125)
    before = {name: p.copy() for name, p, _ in net.params_and_grads()}
    seeds = [layer.seed for layer in net.layers if isinstance(layer, Dropout)]
    team.share_net(net)
    team.check_in_step(net)
    assert team.grad_reducer(net) is None
    for name, p, _ in net.params_and_grads():
        np.testing.assert_array_equal(p, before[name], err_msg=name)
    assert [layer.seed for layer in net.layers if isinstance(layer, Dropout)] == seeds


def test_the_team_of_one_answers_everything_the_training_loop_asks_a_team():
    """Every ``team.<name>`` that zfraw/training.py (its stop flag in zfraw/stopping.py) and
    the atlas's pass use exists on Team and on Solo, so the one training path and the one pass
    run under mpiexec and in a plain process alike."""
    import re

    import zfraw.atlas.scan
    import zfraw.stopping
    import zfraw.training

    asked = set()
    for module in (zfraw.training, zfraw.stopping, zfraw.atlas.scan):
        with open(module.__file__) as f:
            asked |= set(re.findall(r"\bteam\.(\w+)", f.read()))
    assert {"root", "any", "sum", "allgather", "from_root", "share_net", "rank"} <= asked
    for cls in (distributed.Team, distributed.Solo):
        missing = sorted(name for name in asked if not hasattr(cls, name)
                         and name not in ("rank", "size", "root", "local_rank", "nccl"))
        assert not missing, f"{cls.__name__} lacks {missing}"
    for name in ("rank", "size", "root"):
        assert hasattr(distributed.SOLO, name)


def test_a_stop_is_agreed_and_never_withdrawn():
    """The stop flag takes any rank's stop, and an exchange that says no stop (a Ctrl-C landing
    while the ranks exchanged their flags) leaves a stop already asked in place."""
    from zfraw.stopping import StopFlag

    class Says:
        def __init__(self, answer):
            self.answer = answer

        def any(self, flag):
            return self.answer

    flag = StopFlag()
    flag.agree(distributed.SOLO)
    assert flag.requested is False
    flag.agree(Says(True))                          # another rank was stopped
    assert flag.requested is True
    flag.agree(Says(False))
    assert flag.requested is True
