"""An experiment's results table: rows of measured numbers beside the paper's, the scale they
were measured at, and whether the paper's orderings hold; written as JSON and markdown."""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..atomic import atomic_write_text

# Columns of a table: (key, header); errors in percent.
ERROR_COLUMNS = (("train_top1_err", "train top-1 err"), ("val_top1_err", "val top-1 err"),
                 ("val_top5_err", "val top-5 err"))


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _pm(mean, std) -> str:
    return _fmt(mean) + ("" if std is None else f" ± {std:.1f}")


def _interval(row: dict, key: str) -> str:
    """A row's value, with its 95% interval when it has one (the validation error)."""
    if key == "val_top1_err" and row.get("ci95"):
        lo, hi = row["ci95"]
        return f"{_fmt(row.get(key))} [{lo:.1f}, {hi:.1f}]"
    return _fmt(row.get(key))


def _verdict_text(o: dict) -> str:
    """One ordering: its verdict, then the measured difference, its interval and margin."""
    if "holds" in o:            # results written before the verdict rule (a bare a < b)
        verdict = {True: "holds", False: "does not hold", None: "not measured yet"}[o["holds"]]
        return f"**{verdict}** ({o['detail']})"
    if "difference" not in o:
        return f"**{o['verdict']}** ({o['paper']})"
    margin = "" if o.get("margin") is None else f", margin ±{o['margin']:g}"
    lo, hi = o["ci95"]
    return (f"**{o['verdict']}** (difference {o['difference']:+.1f} points, 95% interval "
            f"[{lo:+.1f}, {hi:+.1f}]{margin}; seeds {', '.join(map(str, o['seeds']))}, "
            f"{o['val_images']} validation images; {o['paper']})")


def markdown(result: dict, accuracy: bool = False) -> str:
    """The table as markdown: title, scale, rows (measured | paper), orderings, notes. With
    ``accuracy``, rows hold an 'accuracy' and 'std' over splits and 'paper' is (mean, std)."""
    lines = [f"# {result['title']}", "", f"Scale: {result['scale']}", ""]
    if accuracy:
        header = ["row", "arch", "train images per class", "accuracy (mean ± std over splits)",
                  "paper", "status"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in result["rows"]:
            paper = row.get("paper") or (None, None)
            lines.append("| " + " | ".join([
                row["row"], f"`{row['arch']}`", str(row["train_per_class"]),
                _pm(row.get("accuracy"), row.get("std")), _pm(*paper),
                row.get("status", "done" if row.get("accuracy") is not None else "")]) + " |")
    else:
        cols = result.get("columns", ERROR_COLUMNS)
        seeded = any("ci95" in row for row in result["rows"])
        header = ["row", "arch", "epochs"] + (["seeds", "val images"] if seeded else [])
        header += [h for _, h in cols] + [f"paper {h}" for _, h in cols]
        header += ["train time (min)", "status"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in result["rows"]:
            paper = row.get("paper") or {}
            cells = [row["row"], f"`{row['arch']}`", _fmt(row.get("epochs"))]
            if seeded:
                cells += [", ".join(map(str, row.get("seeds", []))) or "—",
                          _fmt(row.get("val_images"))]
            cells += [_interval(row, k) for k, _ in cols] + [_fmt(paper.get(k)) for k, _ in cols]
            minutes = row.get("train_time_s")
            cells += [_fmt(None if minutes is None else minutes / 60), row.get("status", "")]
            lines.append("| " + " | ".join(cells) + " |")
        if seeded:
            lines += ["", "Train time: each seed's median epoch time times its epochs, summed "
                      "over the row's seeds (the time a run spent stopped does not count)."]
    if result.get("orderings"):
        lines += ["", "The paper's orderings at this scale:", ""]
        if any("difference" in o for o in result["orderings"]):
            lines[-1:] = ["", "Differences are err(first) - err(second) in points of top-1 error, "
                          "paired on the same seeds and images, with a two-level bootstrap 95% "
                          "interval (seeds, then images). An ordering holds when its interval "
                          "lies below 0, is reversed above 0, and is not resolved otherwise; a "
                          "claim of little difference holds when its interval lies within the "
                          "margin, is reversed when wholly outside (zfraw/experiments/stats.py).",
                          ""]
        for o in result["orderings"]:
            lines.append(f"- {o['claim']}: " + _verdict_text(o))
    for note in result.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def write_results(out, result: dict, accuracy: bool = False) -> tuple[Path, Path]:
    """Write ``out/<experiment>.json`` and ``out/<experiment>.md`` (atomically; e.g.
    ``table3.md``), so experiments sharing a folder (table2 and table3 share rows) keep their
    own results; returns both paths. ``accuracy``: see :func:`markdown`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = result["experiment"]
    js, md = out / f"{name}.json", out / f"{name}.md"
    atomic_write_text(js, json.dumps(result, indent=1) + "\n")
    atomic_write_text(md, markdown(result, accuracy))
    return js, md
