"""Occlusion sweeps: zfraw's plain sweep (a forward of every occluded copy), its incremental
sweep (zfraw.viz.incremental: only what each square changes), and Captum's Occlusion on the
PyTorch mirror of the same net, on the same image and the same squares.

The squares are Captum's sliding windows: side ``size``, top-left corners at multiples of the
stride that fit in the image (the first rows: size = 2 x stride, overlapping; the small-net
rows: size = stride, 64 squares that tile the image). All three compute the class probability (softmax) under every square; the
check compares Captum's attribution map with the same map computed from zfraw's probabilities
(each pixel: the mean, over the squares covering it, of p(unoccluded) - p(occluded)).

"MAC bound": a full forward's multiply-adds per image over the incremental sweep's per
occluded copy (conv and fc layers, counted on the windows it ran): the speed-up over the plain
sweep that the incremental one would reach if its products ran as fast as the full forward's.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

from zfraw import nets
from zfraw.viz.forward import probs_and_map
from zfraw.viz.incremental import IncrementalOcclusion

from .timing import measure, threads

# (arch, width, classes, size, stride): zf-64 and zf at 224 with squares of twice the stride;
# then the small nets, one image, 64 non-overlapping squares: zf-32 at quarter width (32 px,
# 4 px squares) and zf-64 at full width (64 px, 8 px squares).
CASES = (("zf-64", 1.0, 100, 8, 4), ("zf", 1.0, 1000, 16, 8),
         ("zf-32", 0.25, 10, 4, 4), ("zf-64", 1.0, 100, 8, 8))
# The one-thread rows run in a child process with these set, before any library starts its
# threads (BLAS, Numba and PyTorch read them at start-up; torch_peer.devices() too).
ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                  "NUMBA_NUM_THREADS": "1"}
LAYER = "relu5"
BATCH = 64


def captum_boxes(side: int, size: int, stride: int):
    """Captum's sliding windows over a side x side image: (y0, x0, y1, x1), row-major."""
    starts = range(0, side - size + 1, stride)
    return [(y, x, y + size, x + size) for y in starts for x in starts]


def attribution(p0: float, p: np.ndarray, boxes, side: int) -> np.ndarray:
    """Captum's occlusion map from probabilities: per pixel, the mean over the squares covering
    it of p0 - p_k (0 where none covers it). p: (len(boxes),)."""
    total, count = np.zeros((side, side)), np.zeros((side, side))
    for (y0, x0, y1, x1), pk in zip(boxes, p):
        total[y0:y1, x0:x1] += p0 - pk
        count[y0:y1, x0:x1] += 1
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def run_occlusion(repeat: int, with_torch: bool, log=print,
                  one_thread: bool = True) -> list[dict]:
    """One row per case and thread setting: median seconds per sweep of each method and the
    ratios. The default threads run here; with ``one_thread``, a child process runs every case
    again at one thread."""
    rows = run_cases(repeat, with_torch, log)
    if one_thread:
        rows += _one_thread_rows(repeat, with_torch, log)
    return rows


def _one_thread_rows(repeat: int, with_torch: bool, log) -> list[dict]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cmd = [sys.executable, "-m", "benchmarks.occlusion", "--repeat", str(repeat)]
    proc = subprocess.run(cmd + ([] if with_torch else ["--no-torch"]), cwd=root, text=True,
                          env={**os.environ, **ONE_THREAD_ENV}, capture_output=True)
    if proc.returncode != 0:
        log(f"  occlusion at one thread: the child failed: {proc.stderr.strip()[-300:]}")
        return []
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    for row in rows:
        log("  occlusion " + _row_text(row))
    return rows


def _row_text(row: dict) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in row.items())


def run_cases(repeat: int, with_torch: bool, log=print) -> list[dict]:
    """Every case of CASES at this process's thread count (``OMP_NUM_THREADS``, else every
    core)."""
    rows = []
    for arch, width, classes, size, stride in CASES:
        net = nets.build(arch, num_classes=classes, init="he", seed=0, width=width).eval()
        side = net.input_shape[1]
        image = np.random.default_rng(0).standard_normal(net.input_shape).astype(np.float32)
        boxes = captum_boxes(side, size, stride)
        forward = probs_and_map(net, LAYER, BATCH)
        p0 = forward(image[None])[0][0]
        label = int(p0.argmax())
        results = {}

        def plain():
            from zfraw.viz.occlusion import occlude
            results["plain"] = np.concatenate([forward(occlude(image, boxes[i:i + BATCH]))[0]
                                               for i in range(0, len(boxes), BATCH)])

        def incremental():
            occ = IncrementalOcclusion(net, image, LAYER)   # its base forward is timed too
            probs, macs = [], 0
            for i in range(0, len(boxes), BATCH):
                probs.append(occ(boxes[i:i + BATCH])[0])
                macs += occ.last_macs
            results["incremental"] = np.concatenate(probs)
            results["mac bound"] = occ.full_macs_per_image * len(boxes) / macs

        candidates = {"zfraw plain": (plain, "cpu"), "zfraw incremental": (incremental, "cpu")}
        if with_torch:
            captum_fn = _captum_sweep(net, image, label, size, stride, results)
            if captum_fn is not None:
                candidates["captum"] = (captum_fn, "cpu")
        times = measure(candidates, repeat=repeat, warmup=1, budget_s=180.0, hot=False)
        row = {"arch": arch, "width": width, "threads": threads(), "squares": len(boxes),
               "size": size, "stride": stride,
               **{f"{n} s": t["median_s"] for n, t in times.items()},
               "incremental vs plain": times["zfraw plain"]["median_s"]
               / times["zfraw incremental"]["median_s"],
               "MAC bound": results["mac bound"],
               "max abs diff of p, incremental vs plain": float(np.abs(
                   results["incremental"][:, label] - results["plain"][:, label]).max())}
        if "captum" in times:
            ours = attribution(float(p0[label]), results["incremental"][:, label], boxes, side)
            row["incremental vs captum"] = times["captum"]["median_s"] / \
                times["zfraw incremental"]["median_s"]
            row["max abs diff of the attribution, vs captum"] = float(np.abs(ours - results["captum"]).max())
        rows.append(row)
        log("  occlusion " + _row_text(row))
    return rows


def _captum_sweep(net, image, label, size, stride, results):
    """Captum's Occlusion on the PyTorch mirror (weights copied), or None without Captum."""
    try:
        import torch
        from captum.attr import Occlusion
    except ImportError:
        return None
    from .torch_peer import mirror

    model = mirror(net, "cpu").eval()
    with torch.no_grad():
        for layer in net.layers:
            for key, p in layer.params.items():
                getattr(getattr(model, layer.name), {"W": "weight", "b": "bias"}[key]).copy_(
                    torch.from_numpy(np.asarray(p)))
    occlusion = Occlusion(lambda x: torch.softmax(model(x), dim=1))
    x = torch.from_numpy(image[None])

    def sweep():
        with torch.no_grad():
            attr = occlusion.attribute(x, sliding_window_shapes=(3, size, size),
                                       strides=(3, stride, stride), baselines=0.0, target=label,
                                       perturbations_per_eval=BATCH)
        results["captum"] = attr[0, 0].numpy()   # the same map in every channel

    return sweep


def main(argv=None) -> int:
    """The child of :func:`run_occlusion`'s one-thread rows: prints them as one JSON line."""
    ap = argparse.ArgumentParser(description="occlusion sweeps at this process's threads")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args(argv)
    from . import torch_peer

    rows = run_cases(args.repeat, torch_peer.available() and not args.no_torch,
                     log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(json.dumps(rows, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
