"""The full training step, per impl: forward, softmax cross-entropy, backward (no gradient for
the input images, which training never uses; PyTorch's input needs none either), SGD update
(momentum 0.9, weight decay 5e-4), the paper's filter renormalization, the net in training mode
(dropout on), one fixed batch.

It runs :func:`zfraw.training.train_step`, the step train.py runs, with each impl selected
through the op registry; PyTorch's mirror of the same net, with the same renormalization, is
the peer.
"""
from __future__ import annotations

import numpy as np

from zfraw import backend, nets, optim
from zfraw.ops import registry
from zfraw.training import train_step

from . import torch_peer
from .cases import impl_device, usable_impls
from .timing import measure

# (arch, batch, classes): the paper's net at 224x224, and the 64x64 variant used for training.
STEPS = (("zf", 16, 1000), ("zf-64", 64, 100))


RENORM_RADIUS = 0.1   # the paper's, train.py's default


def _zfraw_step(net, impl, x, labels):
    opt = optim.SGD(net, lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step():
        with registry.use_impl(impl):
            train_step(net, opt, x, labels, RENORM_RADIUS)

    return step


def run_steps(steps, repeat: int, with_torch: bool, log=print) -> list[dict]:
    """One row per (arch, batch, impl): median step time and images/s."""
    rows = []
    for arch, batch, classes in steps:
        rng = np.random.default_rng(0)
        impls = usable_impls()
        dev_nets = {}
        for impl in impls:  # one net per device; numpy and numba share the CPU one
            device = impl_device(impl)
            if device not in dev_nets:
                dev_nets[device] = nets.build(arch, num_classes=classes).train().to(device)
        x = rng.standard_normal((batch,) + dev_nets["cpu"].input_shape, dtype=np.float32)
        labels = rng.integers(0, classes, batch)
        candidates = {}
        for impl in impls:
            device = impl_device(impl)
            candidates[impl] = (_zfraw_step(dev_nets[device], impl, backend.to_device(x, device),
                                            backend.to_device(labels, device)), device)
        for name, dev, tdev in (torch_peer.devices() if with_torch else []):
            candidates[name] = (torch_peer.train_step(dev_nets["cpu"], x, labels, tdev,
                                                             RENORM_RADIUS), dev)
        times = measure(candidates, repeat=repeat, warmup=1, budget_s=120.0, hot=False)
        for name, t in times.items():
            rows.append({"arch": arch, "batch": batch, "impl": name,
                         "device": candidates[name][1], "median_ms": t["median_s"] * 1e3,
                         "min_ms": t["min_s"] * 1e3, "runs": t["runs"],
                         "images_per_s": batch / t["median_s"],
                         "speedup_vs_numpy": times["numpy"]["median_s"] / t["median_s"]})
        log(f"  step {arch} b{batch}: " + "  ".join(
            f"{n} {t['median_s'] * 1e3:8.1f} ms ({batch / t['median_s']:6.1f} img/s)"
            for n, t in times.items()))
    return rows
