"""The benchmark suite's own pieces on tiny nets: what is timed and measured, not how fast."""
import os

import numpy as np
import pytest

from benchmarks import memory, report
from benchmarks.occlusion import captum_boxes
from benchmarks.step import ratio_summary, run_steps, step_label


def test_the_small_net_squares_tile_the_image_once():
    boxes = captum_boxes(32, 4, 4)
    assert len(boxes) == 64
    cover = np.zeros((32, 32), int)
    for y0, x0, y1, x1 in boxes:
        cover[y0:y1, x0:x1] += 1
    assert (cover == 1).all()
    assert len(captum_boxes(64, 8, 8)) == 64


def test_ratio_summary_is_the_median_and_spread_of_the_rounds():
    assert ratio_summary([0.9, 0.7, 0.8]) == {"median": 0.8, "min": 0.7, "max": 0.9, "rounds": 3}


def test_step_rows_carry_every_round_and_render():
    rows = run_steps([("zf-32", 0.125, 2, 10)], repeat=1, with_torch=False, log=lambda m: None,
                     rounds=2, with_memory=False)
    assert {r["impl"] for r in rows} >= {"numpy"}
    for r in rows:
        assert r["label"] == step_label("zf-32", 0.125, 2) == "zf-32 w0.125 b2"
        assert len(r["round_medians_ms"]) == 2 and r["runs"] == 2
        assert "ratio_to_torch" not in r        # no peer: no ratio is made up
    fake_torch = dict(rows[0], impl="torch")
    rows = [dict(r, ratio_to_torch=ratio_summary([0.5, 0.75])) for r in rows] + [fake_torch]
    md = report.markdown({"name": "t", "quick": True, "ceilings": {},
                          "machine": {"cpu_model": "c", "cpus": 2, "numpy": "n", "numba": "b",
                                      "torch": None, "date_utc": "d", "loadavg_start": (0, 0, 0)},
                          "steps": rows})
    assert "zf-32 w0.125 b2" in md and "0.62 [0.50, 0.75] of torch's time" in md


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="Linux /proc only")
def test_peak_memory_of_a_step_is_measured_in_a_child():
    small = memory.step_peak("zf-32", 0.125, 4, 10, "numpy")
    large = memory.step_peak("zf-32", 0.125, 64, 10, "numpy")
    assert small is not None and large is not None
    assert 0 <= small["step_mib"] <= small["peak_mib"] - small["base_mib"] + 1e-9
    assert large["step_mib"] > small["step_mib"]    # activations grow with the batch
