"""The paper's ImageNet experiments as sets of ordinary run folders: Table 2 (zf against the
Krizhevsky replication, with the Fig. 6 first-layer and aliasing diagnostics of both) and
Table 3 (the architecture ablations, as variants of one base net).

Every row is one training, ``OUT/<arch>/`` (e.g. ``OUT/zf-64+no-fc67``), a run folder like any
other: re-running the command resumes an interrupted row, skips a finished one and extends it
when ``--epochs`` grew; the report (``python -m zfraw.report --run OUT/<arch>``) works on each. The table is rewritten after
every row, so an interrupted experiment still shows what it has.
"""
from __future__ import annotations

import dataclasses
import platform
import time

import numpy as np

from ..data import stored_size
from ..rundir import RunDir
from ..nets import get_spec
from ..training import TrainConfig, train
from . import paper

# zf and the paper's Krizhevsky replication at each input size that has both.
ALEXNET_OF = {"zf": "alexnet", "zf-64": "alexnet-64"}


def train_row(cfg: TrainConfig, log) -> dict:
    """Bring the run ``cfg.out`` to ``cfg.epochs`` epochs: start it, resume it, or leave it
    when done. Returns train()'s result ('done' or 'interrupted')."""
    run = RunDir(cfg.out)
    if run.has_checkpoint():
        return train(cfg, resume=True, log=log)
    return train(cfg, log=log)


def _row_metrics(cfg: TrainConfig) -> dict:
    """The measured numbers of a row from its run folder (errors in percent); the train error
    is the running one of the last epoch (dropout on, random crops), as the paper's is."""
    records = RunDir(cfg.out).read_metrics()
    if not records:
        return {"epochs": 0, "status": "not trained"}
    last = records[-1]
    return {"epochs": last["epoch"], "train_top1_err": 100 * (1 - last["train_top1"]),
            "val_top1_err": 100 * (1 - last["val_top1"]),
            "val_top5_err": 100 * (1 - last["val_top5"]),
            "train_time_s": sum(r.get("train_time_s", 0.0) for r in records),
            "status": "done" if last["epoch"] >= cfg.epochs else "partial"}


def scale_text(base: TrainConfig, arch: str) -> str:
    """The scale the rows were measured at, stated in one line."""
    crop = get_spec(arch)["input"][1]
    size = stored_size(crop, base.resize)
    return (f"data `{base.data}`, {crop}x{crop} crops of {size}x{size} images, width "
            f"{base.width}, {base.epochs} epochs, batch {base.batch_size}, lr {base.lr} "
            f"({base.schedule}), init {base.init}, input scale {base.input_scale:g}, dropout "
            f"{0.5 if base.dropout is None else base.dropout}; measured on {platform.node() or 'this machine'} "
            f"({platform.machine()}, impl {base.impl or 'default'}, device {base.device})")


def _ordering(claim: str, a, b, paper_says: str) -> dict:
    """A claim 'a < b' about two measured errors (None when either is missing)."""
    holds = None if a is None or b is None else bool(a < b)
    measured = "" if holds is None else f"measured {a:.1f} vs {b:.1f}; "
    return {"claim": claim, "holds": holds, "a": a, "b": b, "detail": measured + paper_says}


def _err(rows: dict, name: str, key: str = "val_top1_err"):
    return rows.get(name, {}).get(key)


def run_rows(name: str, title: str, base: TrainConfig, rows: list, out, log, finish) -> dict:
    """Train each (row name, arch, paper numbers) as OUT/<row>, rewriting the results after
    each; ``finish(result, configs)`` adds the experiment's orderings and extras."""
    from .results import write_results

    configs = {r: dataclasses.replace(base, arch=arch, out=f"{out}/{arch}")
               for r, arch, _ in rows}
    result = {"experiment": name, "title": title, "scale": scale_text(base, rows[0][1]),
              "rows": [], "orderings": [], "notes": []}

    def refresh():
        result["rows"] = [dict(row=r, arch=arch, run=configs[r].out, paper=p,
                               **_row_metrics(configs[r])) for r, arch, p in rows]
        finish(result, configs)
        write_results(out, result)

    refresh()
    for r, arch, _ in rows:
        log(f"{name}: row {r} ({arch}) -> {configs[r].out}")
        t0 = time.perf_counter()
        status = train_row(configs[r], log)["status"]
        refresh()
        if status == "interrupted":
            log(f"{name}: interrupted in row {r}; run the same command again to continue")
            result["interrupted"] = True
            return result
        log(f"{name}: row {r} done in {time.perf_counter() - t0:.0f} s")
    return result


def table2(base: TrainConfig, out, log) -> dict:
    """Table 2 at the scale of ``base`` (its arch: zf or zf-64), plus Fig. 6's diagnostics."""
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
    rows = [("alexnet", ALEXNET_OF[zf], paper.TABLE2["alexnet"]),
            ("zf", zf, paper.TABLE2["zf"]),
            ("zf conv3-5 512/1024/512", zf + "+conv345-wide", paper.TABLE2["zf+conv345-wide"])]

    def finish(result, configs):
        by = {r["row"]: r for r in result["rows"]}
        result["columns"] = [("val_top1_err", "val top-1 err"), ("val_top5_err", "val top-5 err")]
        result["orderings"] = [
            _ordering("zf beats the Krizhevsky replication (val top-1)", _err(by, "zf"),
                      _err(by, "alexnet"), "the paper: 38.4 vs 40.5"),
            _ordering("wider conv3-5 beats zf (val top-1)", _err(by, "zf conv3-5 512/1024/512"),
                      _err(by, "zf"), "the paper: 37.5 vs 38.4")]
        result["diagnostics"] = {r: diagnosed(configs[r]) for r in ("alexnet", "zf")
                                 if by[r].get("epochs")}
        result["notes"] = [_diagnostics_text(result["diagnostics"])] if result["diagnostics"] else []

    return run_rows("table2", "Table 2: zf against the Krizhevsky replication", base, rows, out,
                    log, finish)


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
            "mean_mid_share": d["mean_mid_share"], "conv2_nyquist_share": d["conv2_nyquist_share"],
            "conv2_shift_sensitivity": float(np.mean(d["shift_sensitivity"]))}


def _diagnostics_text(diag: dict) -> str:
    lines = ["Fig. 6 diagnostics of the final nets (conv1 filters: dead = positive at < 1% of "
             "positions, dominated = > 80% of the power in one frequency band; conv2: share of "
             "energy near Nyquist and change under sub-stride shifts, the paper's aliasing):", "",
             "| net | conv1 filters | dead | low-dominated | high-dominated | mid-band share | "
             "conv2 Nyquist share | conv2 shift sensitivity |", "|---|---|---|---|---|---|---|---|"]
    for name, d in diag.items():
        lines.append(f"| {name} | {d['filters']} | {d['dead']} | {d['low_dominated']} | "
                     f"{d['high_dominated']} | {d['mean_mid_share']:.3f} | "
                     f"{d['conv2_nyquist_share']:.3f} | {d['conv2_shift_sensitivity']:.3f} |")
    return "\n".join(lines)


def table3(base: TrainConfig, out, log) -> dict:
    """Table 3's ablations of ``base.arch`` at the scale of ``base``."""
    arch = base.arch
    rows = [("base", arch, paper.TABLE3[""]),
            ("removed conv3, conv4", arch + "+no-conv34", paper.TABLE3["+no-conv34"]),
            ("removed fc6, fc7", arch + "+no-fc67", paper.TABLE3["+no-fc67"]),
            ("removed conv3, conv4, fc6, fc7", arch + "+no-conv34+no-fc67",
             paper.TABLE3["+no-conv34+no-fc67"]),
            ("fc6, fc7 at half width", arch + "+fc-half", None),
            ("fc6, fc7 at double width", arch + "+fc-double", None),
            ("conv3-5 at 512/1024/512", arch + "+conv345-wide", paper.TABLE3["+conv345-wide"])]

    def finish(result, configs):
        by = {r["row"]: r for r in result["rows"]}
        both = _err(by, "removed conv3, conv4, fc6, fc7")
        result["orderings"] = [
            _ordering("removing conv3+conv4 and fc6+fc7 together costs more than conv3+conv4 alone",
                      _err(by, "removed conv3, conv4"), both, "the paper: 71.3 vs 45.4"),
            _ordering("... and more than fc6+fc7 alone", _err(by, "removed fc6, fc7"), both,
                      "the paper: 71.3 vs 44.8"),
            _ordering("the base beats the net without fc6+fc7", _err(by, "base"),
                      _err(by, "removed fc6, fc7"), "the paper: 38.4 (zf) / 40.5 (replication) vs 44.8"),
            _ordering("wider conv3-5 beats the base", _err(by, "conv3-5 at 512/1024/512"),
                      _err(by, "base"), "the paper: 37.5 vs 38.4")]
        result["notes"] = ["The paper made its removals on its Krizhevsky replication (val top-1 "
                           "40.5); its fc6-7 width rows (2048 and 8192 units) are not quoted here. "
                           "Train error: the running error of the last epoch (dropout on, random "
                           "crops and flips)."]

    return run_rows("table3", f"Table 3: ablations of {arch}", base, rows, out, log, finish)


TRAINING_EXPERIMENTS = {"table2": table2, "table3": table3}
