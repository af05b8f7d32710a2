"""An imported net's forward pass against onnxruntime's, on the same ONNX file, in the same run.

    python -m benchmarks.onnx_forward [--arch zf] [--batch 16] [--repeat 7] [--json PATH]

Builds zfraw's ``zf`` (Fig. 3, 1000 classes: 62M parameters, a 250 MB file), writes it with
``save_onnx``, reads it back with ``load_onnx`` (so the timed net is an *imported* one) and
times, at batch 16 in eval mode, the imported net's ``forward`` with each CPU impl (numpy,
numba) against ``onnxruntime.InferenceSession.run`` with its CPU provider (default threads, all
graph optimizations). Timing is :func:`benchmarks.timing.measure`'s: one warm-up, interleaved
repetitions, the median. The logits are compared once before timing. The target is zfraw no
slower than 1.5x onnxruntime; the ratio is printed per impl.

Not a test: run it on a quiet machine (another process's load skews both sides differently,
onnxruntime's thread pool especially).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile

from zfraw import host, nets  # before NumPy loads OpenBLAS: zfraw sets its thread timeout

import numpy as np  # noqa: E402

from zfraw.ops import registry  # noqa: E402

from .cases import impl_device, usable_impls
from .timing import measure

TARGET = 1.5   # zfraw's forward no slower than TARGET x onnxruntime's


def run(arch: str = "zf", batch: int = 16, classes: int = 1000, width: float = 1.0,
        repeat: int = 7, impls=None, log=print) -> dict:
    import onnxruntime as ort

    from zfraw.nets.onnx import load_onnx, save_onnx

    impls = [i for i in (impls or usable_impls()) if impl_device(i) == "cpu"]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{arch}.onnx")
        save_onnx(nets.build(arch, classes, seed=0, width=width), path)
        net = load_onnx(path)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        size_mb = os.path.getsize(path) / 1e6
    x = np.random.default_rng(0).standard_normal((batch,) + net.input_shape, dtype=np.float32)
    feed = {net.onnx_info["input_name"]: x}
    want = sess.run(None, feed)[0]
    agree = {}
    for impl in impls:
        with registry.use_impl(impl):
            got = net.forward(x)
        agree[impl] = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))

    def zfraw_forward(impl):
        def fn():
            with registry.use_impl(impl):
                net.forward(x)
        return fn

    candidates = {"onnxruntime": (lambda: sess.run(None, feed), "cpu")}
    candidates.update({f"zfraw:{impl}": (zfraw_forward(impl), "cpu") for impl in impls})
    times = measure(candidates, repeat=repeat, warmup=1, budget_s=300.0)
    ref = times["onnxruntime"]["median_s"]
    rows = []
    for name, t in times.items():
        impl = name.split(":", 1)[1] if ":" in name else None
        rows.append({"name": name, "median_s": t["median_s"], "min_s": t["min_s"],
                     "runs": t["runs"], "images_per_s": batch / t["median_s"],
                     "ratio_to_onnxruntime": t["median_s"] / ref,
                     "max_rel_diff": agree.get(impl, 0.0),
                     "meets_target": None if impl is None else t["median_s"] / ref <= TARGET})
    result = {"arch": arch, "batch": batch, "classes": classes, "width": width,
              "file_mb": size_mb, "onnxruntime": ort.__version__, "target_ratio": TARGET,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "loadavg": os.getloadavg()},
              "rows": rows}
    log(f"{arch} (width {width}, {classes} classes, {size_mb:.0f} MB) forward, batch {batch}, "
        f"eval mode; median of {rows[0]['runs']} runs; load average "
        f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    log(f"{'':16} {'median ms':>10} {'img/s':>8} {'x onnxruntime':>14} {'max rel diff':>13}")
    for r in rows:
        verdict = "" if r["meets_target"] is None else \
            ("  ok" if r["meets_target"] else f"  over the {TARGET}x target")
        log(f"{r['name']:16} {1e3 * r['median_s']:10.1f} {r['images_per_s']:8.1f} "
            f"{r['ratio_to_onnxruntime']:14.2f} {r['max_rel_diff']:13.1e}{verdict}")
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="zf")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--width", type=float, default=1.0, help="a smoke run: e.g. 0.25")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--impl", nargs="*", default=None, help="CPU impls (default: all usable)")
    ap.add_argument("--json", default=None, help="write the result as JSON here")
    args = ap.parse_args(argv)
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("error: the benchmark needs onnx and onnxruntime: pip install -e '.[onnx]'",
              file=sys.stderr)
        return 2
    # The process setting train.py, the report and the suite make (zfraw/host.py): every
    # forward's large arrays reuse the last one's pages, for zfraw and onnxruntime alike.
    host.keep_freed_memory()
    result = run(args.arch, args.batch, args.classes, args.width, args.repeat, args.impl)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
