"""Timing that is fair on a busy machine and correct on a GPU.

Runs are *interleaved*: repetition r times every candidate once before repetition r+1, so a
burst of load from another process hits all candidates alike; the median is reported. Each
timed call is bracketed by a device synchronisation (CuPy kernels are asynchronous), found
through :mod:`zfraw.backend`, the one module that knows about cupy.
"""
from __future__ import annotations

import os
import statistics
import time

from zfraw import backend


def synchronize(device: str) -> None:
    """Wait for all queued work on ``device`` ('cpu': nothing to wait for; 'cuda'; 'torch-cuda')."""
    if device == "cuda":
        backend.cupy_module().cuda.Device().synchronize()
    elif device == "torch-cuda":
        import torch  # only when a torch GPU peer is being timed

        torch.cuda.synchronize()


HOT_BELOW_S = 0.05


def threads() -> int:
    """The thread count a benchmark process runs its libraries at: ``OMP_NUM_THREADS`` when set
    (the occlusion benchmark's one-thread rows), else every core."""
    return int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)


def ceiling_device(device: str) -> str:
    """The device whose ceiling judges a timing device ('torch-cuda' runs on 'cuda')."""
    return "cuda" if device in ("cuda", "torch-cuda") else "cpu"


def measure(candidates: dict, repeat: int, warmup: int = 1, budget_s: float = 60.0,
            hot: bool = True) -> dict:
    """Time each candidate. candidates: {name: (fn, device)} with fn() doing one call.

    Returns {name: {"median_s", "min_s", "runs", "runs_s"}} (runs_s: every timed run, in
    seconds). Each candidate is called ``warmup`` (at
    least 1) times untimed (compilation, caches, allocator), then the repetitions are
    interleaved. With ``hot``, every timed call follows an untimed call of the same candidate:
    the steady state of a stream of calls, where a library's worker threads are awake (on the
    2-core VM, waking sleeping OpenMP workers took milliseconds) and another library's
    spinning workers have given up the cores; calls slower than ``HOT_BELOW_S`` skip it (a
    wake-up is noise there, and the suite's time matters). Once the timed runs have used
    ``budget_s`` seconds, the loop stops after the current repetition (never fewer than 3
    runs), so a slow reference cannot blow up the suite's time.
    """
    needs_hot = {}
    for name, (fn, device) in candidates.items():
        for _ in range(max(1, warmup)):
            synchronize(device)
            t0 = time.perf_counter()
            fn()
            synchronize(device)
        needs_hot[name] = hot and time.perf_counter() - t0 < HOT_BELOW_S
    times = {name: [] for name in candidates}
    spent = 0.0
    for r in range(repeat):
        for name, (fn, device) in candidates.items():
            if needs_hot[name]:
                fn()
            synchronize(device)
            t0 = time.perf_counter()
            fn()
            synchronize(device)
            dt = time.perf_counter() - t0
            times[name].append(dt)
            spent += dt
        if spent > budget_s and r >= 2:
            break
    return {name: {"median_s": statistics.median(ts), "min_s": min(ts), "runs": len(ts),
                   "runs_s": ts}
            for name, ts in times.items()}
