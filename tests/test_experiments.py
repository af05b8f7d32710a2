"""Architecture variants (Tables 2, 3) and the experiments command at toy scale."""
import json
import os
import shutil

import numpy as np
import pytest

from zfraw import ops
from zfraw.experiments import __main__ as experiments_cli
from zfraw.experiments import tables
from zfraw.nets import build, get_spec
from zfraw.nets.variants import VARIANTS
from zfraw.rundir import RunDir

from gradcheck import tie_free

COMBINATIONS = [f"+{v}" for v in VARIANTS] + ["+no-conv34+no-fc67", "+fc-double+conv345-wide"]


@pytest.mark.parametrize("suffix", COMBINATIONS)
def test_every_variant_builds_as_its_definition_says(suffix):
    base, net = get_spec("zf-32"), build("zf-32" + suffix, 10, width=0.25)
    names = [layer.name for layer in net.layers]
    base_names = [name for name, _, _ in base["layers"]]
    if "no-conv34" in suffix:
        assert not {"conv3", "relu3", "conv4", "relu4"} & set(names)
        assert net.layer("conv5").in_ch == net.layer("conv2").out_ch   # inferred, no change needed
    if "no-fc67" in suffix:
        assert not {"fc6", "fc7", "drop6", "drop7"} & set(names)
        assert net.layer("fc8").params["W"].shape[1] == int(np.prod(net.output_shape("flatten")))
    if not any(v in suffix for v in ("no-conv34", "no-fc67")):
        assert names == base_names
    fc = {"+fc-half": 128, "+fc-double": 512}.get(suffix.split("+conv")[0], 256)
    if "fc6" in names:
        assert net.layer("fc6").params["W"].shape[0] == fc and net.layer("fc7").params["W"].shape[0] == fc
    if "conv345-wide" in suffix:
        assert [net.layer(c).out_ch for c in ("conv3", "conv4", "conv5")] == [128, 256, 128]
    assert get_spec("zf-32" + suffix)["note"].count(";") == suffix.count("+")


@pytest.mark.parametrize("suffix", COMBINATIONS)
def test_every_variant_gradient_checks_at_small_size(suffix):
    """Sampled float64 central differences of the loss for every parameter of the variant."""
    net = build("zf-32" + suffix, 4, width=0.04, init="he", seed=1, dtype=np.float64).eval()
    x = tie_free((2, 3, 32, 32), seed=2, scale=2.0)
    labels = np.array([1, 3])

    def loss():
        return float(ops.softmax_xent(net.forward(x), labels)[0])

    _, probs = ops.softmax_xent(net.forward(x), labels)
    net.backward(ops.softmax_xent_bwd(probs, labels))
    rng = np.random.default_rng(0)
    for name, p, g in net.params_and_grads():
        for i in rng.choice(p.size, size=min(4, p.size), replace=False):
            idx = np.unravel_index(i, p.shape)
            old = p[idx]
            p[idx] = old + 1e-6
            up = loss()
            p[idx] = old - 1e-6
            down = loss()
            p[idx] = old
            numeric = (up - down) / 2e-6
            assert abs(g[idx] - numeric) <= 1e-7 + 1e-4 * abs(numeric), (name, idx, g[idx], numeric)


def test_an_unknown_or_inapplicable_variant_is_refused():
    with pytest.raises(ValueError, match="unknown variant 'nope'.*no-conv34"):
        get_spec("zf-64+nope")
    with pytest.raises(ValueError, match="'no-conv34' does not apply to zf-64: it has no layer conv3"):
        get_spec("zf-64+no-conv34+no-conv34")


TOY = ["--data", "synthetic:64", "--arch", "zf-32", "--width", "0.125", "--epochs", "1",
       "--batch-size", "32", "--init", "he", "--input-scale", "0.015625", "--impl", "numpy",
       "--no-progress"]


def test_table3_runs_end_to_end_and_resumes_after_a_kill(tmp_path, monkeypatch, capsys):
    out = tmp_path / "exp"
    real_train = tables.train
    rows = [f"{arch}/seed-0" for arch in ("zf-32", "zf-32+no-conv34")]

    def killed_in_the_third_row(cfg, **kw):
        if cfg.arch == "zf-32+no-fc67":
            def hook(epoch, step, net):
                raise RuntimeError("killed")
            kw["step_hook"] = hook
        return real_train(cfg, **kw)

    monkeypatch.setattr(tables, "train", killed_in_the_third_row)
    with pytest.raises(RuntimeError, match="killed"):
        experiments_cli.main(["table3", "--out", str(out)] + TOY)
    first = {run: os.stat(out / run / "last.npz").st_mtime_ns for run in rows}
    partial = json.loads((out / "table3.json").read_text())
    assert [r["status"] for r in partial["rows"][:3]] == ["done", "done", "not trained"]

    monkeypatch.setattr(tables, "train", real_train)
    assert experiments_cli.main(["table3", "--out", str(out)] + TOY) == 0
    assert {run: os.stat(out / run / "last.npz").st_mtime_ns for run in rows} == first
    result = json.loads((out / "table3.json").read_text())
    assert [r["status"] for r in result["rows"]] == ["done"] * 7
    for r in result["rows"]:
        assert r["epochs"] == 1 and 0 <= r["val_top1_err"] <= 100 and r["seeds"] == [0]
        record = RunDir(f"{r['run']}/seed-0").read_metrics()[-1]
        assert r["val_top1_err"] == pytest.approx(100 * (1 - record["val_top1"]))
        assert r["ci95"][0] <= r["val_top1_err"] <= r["ci95"][1]
        assert r["val_images"] == 12            # synthetic:64 -> 12 validation images
        assert RunDir(f"{r['run']}/seed-0").read_config()["arch"] == r["arch"]
    assert all(o["verdict"] in ("holds", "reversed", "not resolved")
               for o in result["orderings"])
    assert {o["margin"] for o in result["orderings"]} == {None, tables.LITTLE}
    md = (out / "table3.md").read_text()
    assert "| removed fc6, fc7 | `zf-32+no-fc67` | 1 | 0 | 12 |" in md and "44.8" in md
    # the fc6-7 width rows stand beside the paper's own-model rows (2048 / 8192 units)
    assert "halving fc6-7 makes little difference" in md and "the paper: 40.2 vs 38.4" in md
    assert "width 0.125, 1 epochs" in md and "95% interval" in md


def test_seeds_train_every_row_first_then_the_next_seed_and_pair_the_orderings(tmp_path,
                                                                             monkeypatch):
    order = []
    real_train = tables.train

    def recording(cfg, **kw):
        order.append((cfg.arch, cfg.seed))
        return real_train(cfg, **kw)

    monkeypatch.setattr(tables, "train", recording)
    monkeypatch.setattr(tables, "ALEXNET_OF", {"zf-32": "zf-32+fc-half"})
    out = tmp_path / "exp"
    assert experiments_cli.main(["table2", "--out", str(out), "--seeds", "2", "--seed", "5"]
                                + TOY) == 0
    archs = ["zf-32+fc-half", "zf-32", "zf-32+conv345-wide"]
    assert order == [(a, 5) for a in archs] + [(a, 6) for a in archs]
    result = json.loads((out / "table2.json").read_text())
    for row in result["rows"]:
        assert row["seeds"] == [5, 6] and len(row["per_seed_val_top1_err"]) == 2
        assert row["val_top1_err"] == pytest.approx(np.mean(row["per_seed_val_top1_err"]))
    o = result["orderings"][0]
    assert o["seeds"] == [5, 6] and o["val_images"] == 12
    by = {r["row"]: r for r in result["rows"]}
    assert o["difference"] == pytest.approx(by["zf"]["val_top1_err"] - by["alexnet"]["val_top1_err"])
    assert "diagnostics" in result and set(result["diagnostics"]) == {"alexnet", "zf"}


def test_the_replication_trains_with_its_own_per_layer_rates(tmp_path, monkeypatch, capsys):
    """--replication-lr-mult: the alexnet row's runs take it, every other row --lr-mult; the
    table says that the rows differ in it; other experiments refuse it."""
    seen = {}
    real_train = tables.train

    def recording(cfg, **kw):
        seen[cfg.arch] = cfg.lr_mult
        return real_train(cfg, **kw)

    monkeypatch.setattr(tables, "train", recording)
    monkeypatch.setattr(tables, "ALEXNET_OF", {"zf-32": "zf-32+fc-half"})
    out = tmp_path / "exp"
    assert experiments_cli.main(["table2", "--out", str(out), "--lr-mult", "conv1=10",
                                 "--replication-lr-mult", "conv1=1"] + TOY) == 0
    assert seen == {"zf-32+fc-half": {"conv1": 1.0}, "zf-32": {"conv1": 10.0},
                    "zf-32+conv345-wide": {"conv1": 10.0}}
    saved = json.loads((out / "zf-32+fc-half" / "seed-0" / "config.json").read_text())
    assert saved["lr_mult"] == {"conv1": 1.0}
    md = (out / "table2.md").read_text()
    assert "per-layer rates {'conv1': 1.0} (--replication-lr-mult)" in md
    assert experiments_cli.main(["table3", "--out", str(tmp_path / "t3"),
                                 "--replication-lr-mult", "conv1=1"] + TOY) == 2
    assert "for table2 only" in capsys.readouterr().err


def test_experiments_sharing_a_folder_keep_their_own_results(tmp_path):
    """table2 and table3 share rows when given one --out: each writes its own files."""
    from zfraw.experiments.results import write_results
    for name in ("table2", "table3"):
        write_results(tmp_path, {"experiment": name, "title": name.upper(), "scale": "toy",
                                 "rows": [], "orderings": [], "notes": []})
    for name in ("table2", "table3"):
        assert json.loads((tmp_path / f"{name}.json").read_text())["title"] == name.upper()
        assert name.upper() in (tmp_path / f"{name}.md").read_text()


def test_table2_needs_a_base_with_an_alexnet_twin(tmp_path, capsys):
    assert experiments_cli.main(["table2", "--out", str(tmp_path)] + TOY) == 2
    assert "table2 compares zf with alexnet" in capsys.readouterr().err


def test_a_row_finished_without_per_image_predictions_is_named_not_fatal(tmp_path):
    out = tmp_path / "exp"
    assert experiments_cli.main(["table3", "--out", str(out)] + TOY) == 0
    shutil.rmtree(out / "zf-32" / "seed-0" / "predictions")     # as a run from older code
    assert experiments_cli.main(["table3", "--out", str(out)] + TOY) == 0
    base = json.loads((out / "table3.json").read_text())["rows"][0]
    assert base["seeds"] == [] and "seeds 0 finished without per-image predictions" in \
        base["status"]
    assert "ci95" not in base


def test_a_rows_train_time_leaves_out_the_time_a_run_spent_stopped():
    """A paused epoch records the wall-clock of the pause; the median epoch does not."""
    records = [{"epoch": e, "train_time_s": t} for e, t in enumerate([22.0, 12.0, 2600.0, 11.0], 1)]
    assert tables.compute_time_s(records) == pytest.approx(4 * 17.0)
    assert tables.compute_time_s([{"epoch": 1}]) == 0.0
