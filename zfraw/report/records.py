"""The report's numbers as small JSON files beside its page (``occlusion_stats.json``,
``correspondence.json``), so that they can be committed and compared without the figures:
one top-level field a line, a list of rows or records one row a line; NaN becomes null."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..viz.images import write_file


def plain(value):
    """``value`` with numpy scalars and arrays made Python ones and NaN made None (JSON has no
    NaN), recursively through dicts, lists and tuples."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return None if math.isnan(value) else value
    return value


def record_text(record: dict) -> str:
    """``record`` (a dict) as JSON text: one top-level field a line, except a list of lists or
    dicts, written one element a line."""
    lines = []
    for key, value in plain(record).items():
        if isinstance(value, list) and value and isinstance(value[0], (list, dict)):
            rows = ",\n".join("    " + json.dumps(v) for v in value)
            lines.append(f"  {json.dumps(key)}: [\n{rows}\n  ]")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write_record(path, record: dict) -> Path:
    """Write ``record`` as :func:`record_text` to ``path``, atomically; returns the path."""
    text = record_text(record).encode("utf-8")
    return write_file(path, lambda f: f.write(text))
