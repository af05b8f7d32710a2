"""Peak memory of one training step, one child process per candidate.

A child process imports only what its candidate needs (zfraw alone, or PyTorch), builds the
net and the batch, takes the same process settings as train.py (:func:`zfraw.host.keep_freed_memory`),
runs one step on a batch of one image (Numba compiles per dtype and layout, not per shape, so
this loads every kernel; PyTorch's peer warms up alike), records its resident memory, runs
``STEPS`` training steps on the full batch, and reads the kernel's high-water
mark of resident memory (VmHWM, reset just before the steps through /proc/self/clear_refs).
``step_mib`` is that peak over the memory before the first step: the activations, gradients,
optimizer state and temporaries the steps added, whatever allocator made them (NumPy, Numba,
BLAS or PyTorch). Linux only; elsewhere the measurement is left out (None).

    python -m benchmarks.memory ARCH WIDTH BATCH CLASSES CANDIDATE    # prints one JSON object
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

STEPS = 3


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")   # 5: reset the peak resident set size (VmHWM) to the current one


def measure_here(arch: str, width: float, batch: int, classes: int, candidate: str) -> dict:
    """Run in the child: {'base_mib', 'peak_mib', 'step_mib'} of ``candidate``'s steps."""
    from zfraw import host, nets

    host.keep_freed_memory()
    net = nets.build(arch, num_classes=classes, width=width).train()
    from .step import RENORM_RADIUS, batch_for, zfraw_step

    x, labels = batch_for(net, batch, classes)
    if candidate == "torch":
        from . import torch_peer

        torch_peer.devices()   # the thread count the timed peer runs with

        def make(xs, ys):
            return torch_peer.train_step(net, xs, ys, "cpu", RENORM_RADIUS)
    else:
        def make(xs, ys):
            return zfraw_step(net, candidate, xs, ys)
    make(x[:1], labels[:1])()   # compiles and loads every kernel (per dtype, not per shape)
    step = make(x, labels)
    _reset_peak()
    base = _status_kib("VmRSS")
    for _ in range(STEPS):
        step()
    peak = _status_kib("VmHWM")
    return {"base_mib": base / 1024, "peak_mib": peak / 1024, "step_mib": (peak - base) / 1024,
            "steps": STEPS}


def step_peak(arch: str, width: float, batch: int, classes: int, candidate: str) -> dict | None:
    """Measure ``candidate``'s step memory in a fresh child process; None where /proc is
    missing or the child fails (its error is printed)."""
    if not os.path.exists("/proc/self/clear_refs"):
        return None
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.memory", arch, str(width), str(batch),
                           str(classes), candidate], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"  memory {arch} {candidate}: child failed: {proc.stderr.strip()[-300:]}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    arch, width, batch, classes, candidate = argv or sys.argv[1:]
    print(json.dumps(measure_here(arch, float(width), int(batch), int(classes), candidate)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
