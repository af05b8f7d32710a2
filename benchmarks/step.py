"""The full training step, per impl: forward, softmax cross-entropy, backward (no gradient for
the input images, which training never uses; PyTorch's input needs none either), SGD update
(momentum 0.9, weight decay 5e-4), the paper's filter renormalization, the net in training mode
(dropout on), one fixed batch.

It runs :func:`zfraw.training.train_step`, the step train.py runs, with each impl selected
through the op registry; PyTorch's mirror of the same net, with the same renormalization, is
the peer.

Each configuration is timed in ``rounds`` rounds, each an interleaved measurement of every
candidate (:func:`benchmarks.timing.measure`); the ratio of the default impl's time to
PyTorch's is taken per round, and its median and spread (min, max) over the rounds reported.
Peak memory is measured apart, one child process per candidate (:mod:`benchmarks.memory`).
"""
from __future__ import annotations

import statistics

import numpy as np

from zfraw import backend, nets, optim
from zfraw.ops import registry
from zfraw.training import train_step

from . import memory, torch_peer
from .cases import impl_device, usable_impls
from .timing import measure

# (arch, width, batch, classes): the paper's net at 224x224 and zf-64 at full width (the rows
# the suite has always had), then the nets the reproduction trains: the gallery net (zf-64 at
# half width, batch 64, 100 classes), Tables 2-3's (quarter width, batch 32, 20 classes) and
# `make demo`'s zf-32 (quarter width, batch 32, 10 classes).
STEPS = (("zf", 1.0, 16, 1000), ("zf-64", 1.0, 64, 100),
         ("zf-64", 0.5, 64, 100), ("zf-64", 0.25, 32, 20), ("zf-32", 0.25, 32, 10))

RENORM_RADIUS = 0.1   # the paper's, train.py's default


def step_label(arch: str, width: float, batch: int) -> str:
    """'zf-64 w0.5 b64' (the width left out at 1)."""
    return f"{arch}{'' if width == 1 else f' w{width:g}'} b{batch}"


def zfraw_step(net, impl, x, labels):
    """A zero-argument training step of ``net`` under ``impl`` on one fixed batch."""
    opt = optim.SGD(net, lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step():
        with registry.use_impl(impl):
            train_step(net, opt, x, labels, RENORM_RADIUS)

    return step


def batch_for(net, batch: int, classes: int):
    """The fixed batch every candidate steps on: (x (N, C, H, W) float32, labels (N,))."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + net.input_shape, dtype=np.float32)
    return x, rng.integers(0, classes, batch)


def ratio_summary(per_round: list[float]) -> dict:
    """{'median', 'min', 'max', 'rounds'} of a ratio measured once per round."""
    return {"median": statistics.median(per_round), "min": min(per_round),
            "max": max(per_round), "rounds": len(per_round)}


def run_steps(steps, repeat: int, with_torch: bool, log=print, rounds: int = 3,
              with_memory: bool = True) -> list[dict]:
    """One row per (arch, width, batch, impl): median step time and images/s over all rounds'
    runs, the per-round ratio to PyTorch (when present) and the peak memory."""
    rows = []
    for arch, width, batch, classes in steps:
        impls = usable_impls()
        dev_nets = {}
        for impl in impls:  # one net per device; numpy and numba share the CPU one
            device = impl_device(impl)
            if device not in dev_nets:
                dev_nets[device] = nets.build(arch, num_classes=classes,
                                              width=width).train().to(device)
        x, labels = batch_for(dev_nets["cpu"], batch, classes)
        candidates = {}
        for impl in impls:
            device = impl_device(impl)
            candidates[impl] = (zfraw_step(dev_nets[device], impl, backend.to_device(x, device),
                                           backend.to_device(labels, device)), device)
        for name, dev, tdev in (torch_peer.devices() if with_torch else []):
            candidates[name] = (torch_peer.train_step(dev_nets["cpu"], x, labels, tdev,
                                                      RENORM_RADIUS), dev)
        per_round = [measure(candidates, repeat=repeat, warmup=1, budget_s=120.0, hot=False)
                     for _ in range(rounds)]
        label = step_label(arch, width, batch)
        numpy_med = statistics.median(t for times in per_round for t in times["numpy"]["runs_s"])
        for name in candidates:
            runs = [t for times in per_round for t in times[name]["runs_s"]]
            med = statistics.median(runs)
            row = {"arch": arch, "width": width, "batch": batch, "classes": classes,
                   "label": label, "impl": name, "device": candidates[name][1],
                   "median_ms": med * 1e3, "min_ms": min(runs) * 1e3, "runs": len(runs),
                   "round_medians_ms": [times[name]["median_s"] * 1e3 for times in per_round],
                   "images_per_s": batch / med, "speedup_vs_numpy": numpy_med / med}
            if "torch" in candidates and name != "torch":
                row["ratio_to_torch"] = ratio_summary(
                    [times[name]["median_s"] / times["torch"]["median_s"] for times in per_round])
            if with_memory and candidates[name][1] == "cpu":
                row["peak_memory"] = memory.step_peak(arch, width, batch, classes, name)
            rows.append(row)
        log(f"  step {label}: " + "  ".join(
            f"{r['impl']} {r['median_ms']:8.1f} ms"
            + (f" (x{r['ratio_to_torch']['median']:.2f} torch)" if "ratio_to_torch" in r else "")
            + (f" {r['peak_memory']['step_mib']:.0f} MiB" if "peak_memory" in r else "")
            for r in rows if r["label"] == label))
    return rows

