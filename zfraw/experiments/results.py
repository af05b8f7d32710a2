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
        header = ["row", "arch", "epochs"] + [h for _, h in cols] + [f"paper {h}" for _, h in cols]
        header += ["train time (min)", "status"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in result["rows"]:
            paper = row.get("paper") or {}
            cells = [row["row"], f"`{row['arch']}`", _fmt(row.get("epochs"))]
            cells += [_fmt(row.get(k)) for k, _ in cols] + [_fmt(paper.get(k)) for k, _ in cols]
            minutes = row.get("train_time_s")
            cells += [_fmt(None if minutes is None else minutes / 60), row.get("status", "")]
            lines.append("| " + " | ".join(cells) + " |")
    if result.get("orderings"):
        lines += ["", "The paper's orderings at this scale:", ""]
        for o in result["orderings"]:
            verdict = {True: "holds", False: "does not hold", None: "not measured yet"}[o["holds"]]
            lines.append(f"- {o['claim']}: **{verdict}** ({o['detail']})")
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
