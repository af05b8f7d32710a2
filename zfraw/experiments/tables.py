"""The paper's ImageNet experiments as sets of ordinary run folders: Table 2 (zf against the
Krizhevsky replication, with the Fig. 6 first-layer and aliasing diagnostics of both) and
Table 3 (the architecture ablations, as variants of one base net).

Every row is one training per seed, ``OUT/<arch>/seed-S`` (e.g. ``OUT/zf-64+no-fc67/seed-0``),
a run folder like any other: re-running the command resumes an interrupted run, skips a
finished one and extends it when ``--epochs`` grew; the report (``python -m zfraw.report --run
OUT/<arch>/seed-S``) works on each. Each row's error is the mean over its seeds and validation
images with a 95% interval, and each of the paper's orderings is decided by the rule of
:mod:`zfraw.experiments.stats`, written before any seeded run. The table is rewritten after
every run, so an interrupted experiment still shows what it has.
"""
from __future__ import annotations

import dataclasses
import platform
import time

import numpy as np

from ..data import stored_size
from ..rundir import RunDir, RunError
from ..nets import get_spec
from ..training import TrainConfig, train
from . import paper, stats

# zf and the paper's Krizhevsky replication at each input size that has both.
ALEXNET_OF = {"zf": "alexnet", "zf-64": "alexnet-64s4"}


def train_row(cfg: TrainConfig, log) -> dict:
    """Bring the run ``cfg.out`` to ``cfg.epochs`` epochs: start it, resume it, or leave it
    when done. Returns train()'s result ('done' or 'interrupted')."""
    run = RunDir(cfg.out)
    if run.has_checkpoint():
        return train(cfg, resume=True, log=log)
    return train(cfg, log=log)


def seed_runs(base: TrainConfig, arch: str, out, seeds: int) -> list:
    """The run configs of one row: ``arch`` trained with seeds base.seed .. base.seed+seeds-1,
    each its own run folder ``OUT/<arch>/seed-S``."""
    return [dataclasses.replace(base, arch=arch, seed=base.seed + i,
                                out=f"{out}/{arch}/seed-{base.seed + i}") for i in range(seeds)]


def compute_time_s(records: list) -> float:
    """A run's training time from its per-epoch records, without the time it spent stopped:
    its median epoch time times its epochs (an epoch that was paused or killed and resumed
    records the wall-clock of the pause, and the median ignores it)."""
    times = [r["train_time_s"] for r in records if "train_time_s" in r]
    return float(np.median(times)) * len(records) if times else 0.0


def _row_metrics(cfgs: list) -> dict:
    """The measured numbers of a row from its seeds' run folders (errors in percent): the mean
    validation top-1 error over the finished seeds and images with its 95% interval
    (:mod:`zfraw.experiments.stats`), the per-image errors it came from (``errors``, kept in
    memory for the orderings, not written), the training time of all its seeds
    (:func:`compute_time_s`), the running train error of the last epoch (dropout
    on, random crops, as the paper's) and the evaluation-mode train error on a fixed sample
    (``train_eval_top1_err``: no dropout, centre crop, which tells underfitting from
    convergence)."""
    done, records, errors, unpaired = [], [], [], []
    for cfg in cfgs:
        run = RunDir(cfg.out)
        rows = run.read_metrics()
        if rows and rows[-1]["epoch"] >= cfg.epochs:
            try:
                p = run.read_predictions(rows[-1]["epoch"])
            except RunError:         # trained before runs kept them: no interval possible
                unpaired.append(cfg.seed)
                continue
            done.append(cfg.seed)
            records.append(rows[-1])
            errors.append(p["top1"] != p["labels"])
    trained = sum(bool(RunDir(c.out).read_metrics()) for c in cfgs)
    out = {"seeds": done, "epochs": cfgs[0].epochs,
           "status": "done" if len(done) == len(cfgs) else
           "not trained" if not trained else f"{len(done)} of {len(cfgs)} seeds"
           + (f" (seeds {', '.join(map(str, unpaired))} finished without per-image "
              "predictions: retrain them into a new --out)" if unpaired else "")}
    if not done:
        return out
    interval = stats.error_interval(errors)
    mean = lambda key: float(np.mean([r[key] for r in records])) if all(  # noqa: E731
        key in r for r in records) else None
    train_eval = mean("train_eval_top1")
    out.update(val_images=interval["images"], val_top1_err=100 * interval["mean"],
               ci95=[100 * v for v in interval["ci95"]],
               per_seed_val_top1_err=[100 * float(e.mean()) for e in errors],
               train_top1_err=100 * (1 - mean("train_top1")),
               train_eval_top1_err=None if train_eval is None else 100 * (1 - train_eval),
               train_time_s=sum(compute_time_s(RunDir(c.out).read_metrics()) for c in cfgs),
               errors=dict(zip(done, errors)))
    return out


def scale_text(base: TrainConfig, arch: str, seeds: int = 1) -> str:
    """The scale the rows were measured at, stated in one line."""
    crop = get_spec(arch)["input"][1]
    size = stored_size(crop, base.resize)
    split = (f", {base.holdout} training images per class held out for decisions"
             if base.holdout else "")
    split += (f", {base.val_from_train} more per class moved to validation"
              if base.val_from_train else "")
    return (f"data `{base.data}`{split}, {crop}x{crop} crops of {size}x{size} images, width "
            f"{base.width}, {base.epochs} epochs, batch {base.batch_size}, lr {base.lr} "
            f"({base.schedule}{'' if base.lr_step is None else f', step {base.lr_step}'}), "
            f"init {base.init}, input scale {base.input_scale:g}, dropout "
            f"{0.5 if base.dropout is None else base.dropout}"
            + (f", init scale {base.init_scale}" if base.init_scale else "")
            + (f", lr mult {base.lr_mult}" if base.lr_mult else "")
            + (f", init bias {base.init_bias}" if base.init_bias else "")
            + f"; seeds {base.seed}..{base.seed + seeds - 1}; measured on "
            f"{platform.node() or 'this machine'} ({platform.machine()}, impl "
            f"{base.impl or 'default'}, device {base.device})")


# Claims of little or no difference are decided with this equivalence margin (in points of
# top-1 error), fixed before any seeded run: the paper calls its own differences of 4.3 and
# 4.9 points "slight" / "relatively small" (removing fc6-7, conv3-4) against 30.8 points for
# removing both, so a difference within 5 points is what "costs little" means there.
LITTLE = 5.0


def _ordering(claim: str, rows: dict, a: str, b: str, paper_says: str,
              margin: float | None = None) -> dict:
    """The claim "row a beats row b" (``margin`` None) or "a and b differ by at most
    ``margin`` points", decided on the paired difference of their per-image errors over the
    seeds both have (:func:`zfraw.experiments.stats.verdict`)."""
    ra, rb = rows.get(a, {}), rows.get(b, {})
    both = sorted(set(ra.get("seeds", [])) & set(rb.get("seeds", [])))
    out = {"claim": claim, "a": a, "b": b, "margin": margin, "paper": paper_says}
    if not both:
        return dict(out, verdict="not measured yet")
    d = stats.difference_interval([ra["errors"][s] for s in both], [rb["errors"][s] for s in both])
    ci = [100 * v for v in d["ci95"]]
    return dict(out, seeds=both, val_images=d["images"], difference=100 * d["difference"],
                ci95=ci, verdict=stats.verdict(ci, margin))


def _err(rows: dict, name: str, key: str = "val_top1_err"):
    return rows.get(name, {}).get(key)


def run_rows(name: str, title: str, base: TrainConfig, rows: list, out, log, finish,
             seeds: int = 1, bases: dict | None = None) -> dict:
    """Train each (row name, arch, paper numbers) for ``seeds`` seeds as OUT/<arch>/seed-S
    (seed by seed: every row's first seed before any row's second, so a partial experiment
    already compares every row), rewriting the results after each run; ``finish(result, by)``
    adds the experiment's orderings and extras (``by``: row name -> row with its per-image
    errors). Rows without the paper's numbers (zfraw's extras) train their first seed only.
    ``bases``: row name -> the settings that row trains with where they differ from ``base``."""
    from .results import write_results

    bases = bases or {}
    configs = {r: seed_runs(bases.get(r, base), arch, out, seeds if p is not None else 1)
               for r, arch, p in rows}
    result = {"experiment": name, "title": title, "scale": scale_text(base, rows[0][1], seeds),
              "rows": [], "orderings": [], "notes": []}

    def refresh():
        measured = {r: _row_metrics(configs[r]) for r, _, _ in rows}
        by = {r: dict(row=r, arch=arch, run=f"{out}/{arch}", paper=p, **measured[r])
              for r, arch, p in rows}
        finish(result, by)
        result["rows"] = [{k: v for k, v in by[r].items() if k != "errors"} for r, _, _ in rows]
        write_results(out, result)

    refresh()
    for i in range(seeds):
        for r, arch, _ in rows:
            if i >= len(configs[r]):
                continue
            cfg = configs[r][i]
            log(f"{name}: row {r} ({arch}), seed {cfg.seed} -> {cfg.out}")
            t0 = time.perf_counter()
            status = train_row(cfg, log)["status"]
            if status == "interrupted":         # said in the results files too
                result["interrupted"] = True
            refresh()
            if status == "interrupted":
                log(f"{name}: interrupted in row {r}; run the same command again to continue")
                return result
            log(f"{name}: row {r} seed {cfg.seed} done in {time.perf_counter() - t0:.0f} s")
    return result


def table2(base: TrainConfig, out, log, seeds: int = 1, replication_lr_mult=None) -> dict:
    """Table 2 at the scale of ``base`` (its arch: zf or zf-64), plus Fig. 6's diagnostics.
    ``replication_lr_mult`` ({layer: factor}): the replication's own per-layer rates in place
    of ``base.lr_mult`` (a conv1 rate found for zf's small first layer can kill the 11x11/4
    one: docs/reproduction.md, Fig. 6)."""
    cache = {}

    def diagnosed(cfg):
        """Fig. 6's numbers of a row, computed once per checkpoint (the table is rewritten after
        every row, and a finished row's checkpoint does not change)."""
        st = RunDir(cfg.out).last_path.stat()
        key = (cfg.out, st.st_mtime_ns, st.st_size)
        if key not in cache:
            cache[key] = _diagnostics(cfg)
        return cache[key]

    zf = base.arch
    if zf not in ALEXNET_OF:
        raise ValueError(f"table2 compares zf with alexnet at one input size: --arch must be one "
                         f"of {', '.join(ALEXNET_OF)}, got {zf!r}")
    bases = {} if replication_lr_mult is None else {
        "alexnet": dataclasses.replace(base, lr_mult=replication_lr_mult)}
    rows = [("alexnet", ALEXNET_OF[zf], paper.TABLE2["alexnet"]),
            ("zf", zf, paper.TABLE2["zf"]),
            ("zf conv3-5 512/1024/512", zf + "+conv345-wide", paper.TABLE2["zf+conv345-wide"])]

    def finish(result, by):
        result["columns"] = [("val_top1_err", "val top-1 err")]
        result["orderings"] = [
            _ordering("zf beats the Krizhevsky replication", by, "zf", "alexnet",
                      "the paper: 38.4 vs 40.5"),
            _ordering("wider conv3-5 beats zf", by, "zf conv3-5 512/1024/512", "zf",
                      "the paper: 37.5 vs 38.4")]
        first = {r: seed_runs(bases.get(r, base), by[r]["arch"], out, 1)[0]
                 for r in ("alexnet", "zf")}
        result["diagnostics"] = {r: diagnosed(cfg) for r, cfg in first.items()
                                 if base.seed in by[r].get("seeds", [])}
        result["notes"] = [_diagnostics_text(result["diagnostics"])] if result["diagnostics"] else []
        if bases:
            result["notes"].insert(0, f"The replication trains with per-layer rates "
                                   f"{replication_lr_mult} (--replication-lr-mult), the other "
                                   f"rows with {base.lr_mult or 'none'}: the rows differ in "
                                   "that as well as in their first layers.")

    return run_rows("table2", "Table 2: zf against the Krizhevsky replication", base, rows, out,
                    log, finish, seeds, bases)


def _diagnostics(cfg: TrainConfig, limit: int = 128) -> dict:
    """Fig. 6's first-layer and aliasing numbers of a row's final net."""
    from ..viz.datasets import load_source
    from ..viz.filters import diagnostics

    run = RunDir(cfg.out)
    net, ckpt, _ = run.load_net()
    source = load_source(run.read_config(), ckpt["mean"], net.input_shape[1], limit=limit)
    d = diagnostics(net, source, limit=limit)
    return {"filters": d["filters"], "dead": len(d["dead"]),
            "low_dominated": len(d["low_dominated"]), "high_dominated": len(d["high_dominated"]),
            "mean_mid_share": d["mean_mid_share"], "conv1_structure": d["mean_structure"],
            "conv2_nyquist_share": d["conv2_nyquist_share"],
            "conv2_shift_sensitivity": float(np.mean(d["shift_sensitivity"]))}


def _diagnostics_text(diag: dict) -> str:
    lines = ["Fig. 6 diagnostics of the final nets (conv1 filters: dead = positive at < 1% of "
             "positions, dominated = > 80% of the power in one frequency band; conv2: share of "
             "energy near Nyquist and change under sub-stride shifts, the paper's aliasing):", "",
             "| net | conv1 filters | dead | low-dominated | high-dominated | mid-band share | "
             "conv1 structure | conv2 Nyquist share | conv2 shift sensitivity |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, d in diag.items():
        structure = d.get("conv1_structure")    # absent from results written before it
        lines.append(f"| {name} | {d['filters']} | {d['dead']} | {d['low_dominated']} | "
                     f"{d['high_dominated']} | {d['mean_mid_share']:.3f} | "
                     + ("—" if structure is None else f"{structure:.3f}") + " | "
                     f"{d['conv2_nyquist_share']:.3f} | {d['conv2_shift_sensitivity']:.3f} |")
    return "\n".join(lines)


def table3(base: TrainConfig, out, log, seeds: int = 1) -> dict:
    """Table 3's ablations of ``base.arch`` at the scale of ``base``."""
    arch = base.arch
    rows = [("base", arch, paper.TABLE3[""]),
            ("removed conv3, conv4", arch + "+no-conv34", paper.TABLE3["+no-conv34"]),
            ("removed fc6, fc7", arch + "+no-fc67", paper.TABLE3["+no-fc67"]),
            ("removed conv3, conv4, fc6, fc7", arch + "+no-conv34+no-fc67",
             paper.TABLE3["+no-conv34+no-fc67"]),
            ("fc6, fc7 at half width", arch + "+fc-half", paper.TABLE3["+fc-half"]),
            ("fc6, fc7 at double width", arch + "+fc-double", paper.TABLE3["+fc-double"]),
            ("conv3-5 at 512/1024/512", arch + "+conv345-wide", paper.TABLE3["+conv345-wide"])]
    both = "removed conv3, conv4, fc6, fc7"

    def finish(result, by):
        result["columns"] = [("train_top1_err", "train top-1 err"),
                             ("train_eval_top1_err", "train top-1 err (eval mode)"),
                             ("val_top1_err", "val top-1 err")]
        result["orderings"] = [
            _ordering("removing conv3+conv4 and fc6+fc7 together costs more than conv3+conv4 "
                      "alone", by, "removed conv3, conv4", both, "the paper: 45.4 vs 71.3"),
            _ordering("... and more than fc6+fc7 alone", by, "removed fc6, fc7", both,
                      "the paper: 44.8 vs 71.3"),
            _ordering("the base beats the net without fc6+fc7", by, "base", "removed fc6, fc7",
                      "the paper: 40.5 (its replication) vs 44.8"),
            _ordering("wider conv3-5 beats the base", by, "conv3-5 at 512/1024/512", "base",
                      "the paper: 37.5 vs 38.4"),
            _ordering("removing conv3+conv4 costs little", by, "removed conv3, conv4", "base",
                      "the paper: 45.4 vs 40.5", margin=LITTLE),
            _ordering("removing fc6+fc7 costs little", by, "removed fc6, fc7", "base",
                      "the paper: 44.8 vs 40.5", margin=LITTLE),
            _ordering("halving fc6-7 makes little difference", by, "fc6, fc7 at half width",
                      "base", "the paper: 40.2 vs 38.4", margin=LITTLE),
            _ordering("doubling fc6-7 makes little difference", by,
                      "fc6, fc7 at double width", "base", "the paper: 38.8 vs 38.4",
                      margin=LITTLE)]
        result["notes"] = [
            "The paper made its removals on its Krizhevsky replication (val top-1 40.5), its "
            "fc6-7 and conv3-5 widths on its own model (fc6-7 at 2048 and 8192 units, half and "
            "double its 4096). Train error: the running "
            "error of the last epoch (dropout on, random crops and flips), as the paper's; in "
            "evaluation mode: the final net on a fixed sample of 2,000 training images, centre "
            "crop, no dropout."]

    return run_rows("table3", f"Table 3: ablations of {arch}", base, rows, out, log, finish,
                    seeds)


TRAINING_EXPERIMENTS = {"table2": table2, "table3": table3}
