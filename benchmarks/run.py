"""Run the benchmark suite: ``python3 -m benchmarks.run [--quick] [--only ...]`` from the repo
root. Writes benchmarks/results/<machine>.json and .md (``--quick`` adds a '-quick' suffix)."""
from __future__ import annotations

import argparse
import os
import sys
import time

from zfraw import backend, host

from . import report, torch_peer
from .cases import run_primitives, usable_impls
from .ceiling import measure_ceiling
from .layers import run_layers
from .occlusion import run_occlusion
from .step import STEPS, run_steps

# The per-layer tables: the paper's zf at the suite's batch, and the gallery net's configuration
# (zf-64 at half width, batch 64, 100 classes), where the layers are small. (arch, width,
# batch or None for the suite's, classes)
LAYER_TABLES = (("zf", 1.0, None, 1000), ("zf-64", 0.5, 64, 100))

PARTS = ("primitives", "layers", "step", "occlusion")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: batch 2 (zf-64 step: 8), fewer repetitions, ~1-2 minutes")
    ap.add_argument("--only", default=",".join(PARTS),
                    help=f"comma-separated parts to run, from {', '.join(PARTS)}")
    ap.add_argument("--no-torch", action="store_true", help="leave out the PyTorch peer column")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"),
                    help="results directory")
    args = ap.parse_args(argv)
    parts = [p for p in args.only.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        ap.error(f"unknown part(s) {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    with_torch = torch_peer.available() and not args.no_torch
    batch = 2 if args.quick else 16
    repeat = 3 if args.quick else 7

    def log(msg):
        print(msg, flush=True)

    t_start = time.perf_counter()
    info = report.machine_info()
    # The same process settings as train.py, for every impl and the PyTorch peer alike.
    info["host_memory_kept"] = host.keep_freed_memory()
    info["openblas_thread_timeout"] = os.environ.get("OPENBLAS_THREAD_TIMEOUT")
    name = report.machine_name(info) + ("-quick" if args.quick else "")
    log(f"zfraw benchmarks on {name}: impls {usable_impls()}"
        f"{', torch ' + torch_peer.version() if with_torch else ' (no torch peer)'}")
    devices = ["cpu"] + (["cuda"] if backend.cuda_available() else [])
    ceilings = {d: measure_ceiling(d, args.quick) for d in devices}
    for d, c in ceilings.items():
        log(f"ceiling {d}: matmul {c['matmul_gflops']:.0f} GFLOP/s, copy {c['copy_gbs']:.1f} GB/s")
    results = {"name": name, "quick": args.quick, "machine": info, "ceilings": ceilings,
               "batch": batch, "impls": usable_impls()}
    if "primitives" in parts:
        log(f"primitives (zf shapes, batch {batch}):")
        results["primitives"] = run_primitives(batch, repeat, ceilings, with_torch, log)
    if "layers" in parts:
        results["layer_tables"] = []
        for arch, width, b, classes in LAYER_TABLES:
            b = batch if b is None or args.quick else b
            log(f"layers ({arch}, width {width:g}, batch {b}):")
            results["layer_tables"].append({
                "arch": arch, "width": width, "batch": b, "classes": classes,
                "rows": run_layers(arch, b, max(3, repeat - 2), ceilings, with_torch, log,
                                   width=width, classes=classes)})
    if "step" in parts:
        log("training step (rounds of interleaved runs; peak memory in child processes):")
        steps = [(arch, w, 2 if args.quick and arch == "zf" else (8 if args.quick else b), k)
                 for arch, w, b, k in STEPS]
        results["steps"] = run_steps(steps, 2 if args.quick else 3, with_torch, log,
                                     rounds=2 if args.quick else 3)
    if "occlusion" in parts:
        log("occlusion sweeps (Captum in the peer column when importable):")
        results["occlusion"] = run_occlusion(2 if args.quick else 3, with_torch, log,
                                             one_thread=not args.quick)
    info["loadavg_end"] = os.getloadavg()
    if info.get("numba"):
        import numba

        info["numba_threading_layer"] = numba.threading_layer()  # the one actually used
    info["suite_seconds"] = time.perf_counter() - t_start
    paths = report.write(results, args.out, name)
    log(f"wrote {', '.join(paths)} in {info['suite_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
