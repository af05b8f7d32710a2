"""Fig. 6's pair of comparisons from three trained runs, as numbers (fig6.json) and pictures.

    python docs/results/fig6/make_fig6.py ZF_RUN ALEXNET_RUN NORENORM_RUN

ZF_RUN and ALEXNET_RUN: zf-64 and alexnet-64s4 trained alike (the paper's (b)-(e): Krizhevsky's
11x11/4 first layer against zf's small filter and stride); NORENORM_RUN: the ZF run's recipe
with --renorm-radius 0 (the paper's (a)). For each run: the final net's diagnostics of
zfraw.viz.filters.diagnostics on the first 256 validation images (dead and band-dominated
conv1 filters, conv1's structure, conv2's energy near Nyquist and its shift sensitivity) and
the spread of conv1's filter sizes (RMS of each filter: the paper's (a) has a few filters that
dominate). The pictures come from the report: `python -m zfraw.report --run A --compare B
--skip rules top9 evolution invariance occlusion correspondence` draws conv1 side by side,
the layer-2 projections side by side and the diagnostics' bars.
"""
import json
import sys
from pathlib import Path

import numpy as np

from zfraw.backend import to_host
from zfraw.rundir import RunDir
from zfraw.viz.datasets import load_source
from zfraw.viz.filters import diagnostics


def numbers(path: str) -> dict:
    """The Fig. 6 numbers of one run's final net."""
    run = RunDir(path)
    config = run.read_config()
    net, ckpt, _ = run.load_net()
    source = load_source(config, ckpt["mean"], net.input_shape[1], limit=256,
                         classes=ckpt["meta"].get("classes"))
    d = diagnostics(net, source, limit=256)
    w = to_host(net.layer("conv1").params["W"])
    rms = np.sqrt((w.reshape(len(w), -1) ** 2).mean(axis=1))
    last = run.read_metrics()[-1]
    return {"run": path, "arch": config["arch"], "width": config.get("width", 1.0),
            "renorm_radius": config.get("renorm_radius"), "epoch": last["epoch"],
            "val_top1": last.get("val_top1"), "filters": d["filters"], "dead": len(d["dead"]),
            "low_dominated": len(d["low_dominated"]), "high_dominated": len(d["high_dominated"]),
            "mean_mid_share": d["mean_mid_share"], "conv1_structure": d["mean_structure"],
            "conv2_nyquist_share": d["conv2_nyquist_share"],
            "conv2_shift_sensitivity": float(np.mean(d["shift_sensitivity"])),
            "conv1_rms_max": float(rms.max()), "conv1_rms_median": float(np.median(rms)),
            "conv1_rms_max_over_median": float(rms.max() / np.median(rms))}


def main(argv) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    out = {name: numbers(path) for name, path in zip(("zf", "alexnet", "no-renorm"), argv)}
    target = Path(__file__).with_name("fig6.json")
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    tmp.replace(target)
    for name, d in out.items():
        print(name, {k: (round(v, 3) if isinstance(v, float) else v) for k, v in d.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
