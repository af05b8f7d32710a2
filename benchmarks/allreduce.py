"""The cost of data-parallel training (zfraw.distributed): the gradient allreduce per step, the
step throughput of N ranks against one process, and what they imply for many GPUs.

    mpiexec -n 2 python -m benchmarks.allreduce allreduce            # per-step allreduce, bytes
    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 mpiexec -n 2 python -m benchmarks.allreduce step
    OMP_NUM_THREADS=2 NUMBA_NUM_THREADS=2 python -m benchmarks.allreduce step
    python -m benchmarks.allreduce estimate [--busbw GBPS]            # the 8 / 64 GPU estimate

``allreduce`` times :class:`zfraw.distributed.GradBuckets` (the fused buckets training uses) on
every parameter of zf-64 (100 classes) and zf (1000 classes): seconds per step, bytes, and the
bandwidths (algorithm: bytes / time; bus: that times 2(N-1)/N, what a ring moves per rank,
comparable across N as in nccl-tests). ``step`` times the whole training step at one global
batch (each of N ranks takes batch/N). ``estimate`` prices zf at 128 images per GPU at 8 and 64
GPUs: step = compute + ring allreduce of the gradients (2(N-1)/N x bytes / bus bandwidth, plus
2(N-1) latencies), with no overlap of the two (zfraw reduces after the backward), for NVLink
and for a 100 Gb/s network; compute is the net's training FLOPs (3 x forward MACs x 2) at an
assumed sustained rate (``--tflops``), since no GPU step of zf was measured here.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from zfraw import distributed, nets, optim
from zfraw.ops import registry
from zfraw.training import train_step

ARCHS = (("zf-64", 100), ("zf", 1000))
NVLINK_BUSBW = 200e9     # bytes/s: an 8-GPU NVLink/NVSwitch node in nccl-tests (H100: ~200-400)
NET_BUSBW = 100e9 / 8    # bytes/s: a 100 Gb/s network, the ring's slowest hop between nodes
LATENCY = 10e-6          # seconds per ring hop (NVLink ~5 us, network ~10-20 us)


def _say(team, *a):
    if team is None or team.root:
        print(*a, flush=True)


def bench_allreduce(team, repeat: int) -> list[dict]:
    if team is None:
        raise SystemExit("allreduce: run under mpiexec -n N (N >= 2)")
    rows = []
    for arch, classes in ARCHS:
        net = nets.build(arch, classes, seed=0)
        for _, _, g in net.params_and_grads():
            g[...] = 1.0
        buckets = distributed.GradBuckets(net, team)
        buckets()                                  # warm-up (first touch of the buffers)
        times = []
        for _ in range(repeat):
            team.barrier()
            t0 = time.perf_counter()
            buckets()
            times.append(time.perf_counter() - t0)
        t = float(np.median(times))
        nbytes = sum(flat.nbytes for flat, _ in buckets.buckets)
        n = team.size
        row = {"arch": arch, "ranks": n, "buckets": len(buckets), "bytes": nbytes,
               "seconds": t, "algbw_GBps": nbytes / t / 1e9,
               "busbw_GBps": nbytes / t * 2 * (n - 1) / n / 1e9}
        rows.append(row)
        _say(team, f"{arch}: {nbytes / 1e6:.1f} MB in {len(buckets)} buckets, allreduce "
             f"{t * 1e3:.1f} ms/step over {n} ranks (median of {repeat}); algbw "
             f"{row['algbw_GBps']:.2f} GB/s, busbw {row['busbw_GBps']:.2f} GB/s")
        del net, buckets
    return rows


def bench_step(team, arch: str, batch: int, repeat: int, impl: str | None) -> dict:
    classes = dict(ARCHS)[arch]
    n = 1 if team is None else team.size
    if batch % n:
        raise SystemExit(f"--batch {batch} does not divide over {n} ranks")
    net = nets.build(arch, classes, seed=0, init="he")
    rng = np.random.default_rng(0 if team is None else team.rank)
    x = rng.standard_normal((batch // n,) + net.input_shape).astype(np.float32)
    y = rng.integers(0, classes, batch // n)
    opt = optim.SGD(net, 0.01, 0.9, 5e-4)
    reduce = None if team is None else distributed.GradBuckets(net, team)
    impl = impl or registry.default_impl("cpu")
    times = []
    with registry.use_impl(impl):
        for i in range(repeat + 1):
            if team is not None:
                team.barrier()
            t0 = time.perf_counter()
            train_step(net, opt, x, y, 0.1, reduce)
            if team is not None:
                team.barrier()
            if i:                                  # the first step compiles / warms up
                times.append(time.perf_counter() - t0)
    t = float(np.median(times))
    comm = 0.0 if reduce is None else reduce.seconds / (repeat + 1)
    _say(team, f"{arch} step at global batch {batch} ({n} x {batch // n}), impl {impl}: "
         f"{t * 1e3:.0f} ms, {batch / t:.1f} img/s"
         + (f"; allreduce {comm * 1e3:.1f} ms/step" if reduce is not None else ""))
    return {"arch": arch, "ranks": n, "batch": batch, "seconds": t, "images_per_s": batch / t}


def ring_seconds(nbytes: int, n: int, busbw: float, latency: float = LATENCY) -> float:
    """A ring allreduce of ``nbytes`` over ``n`` ranks: each moves 2(n-1)/n of the bytes over
    its slowest link, in 2(n-1) hops."""
    return 2 * (n - 1) / n * nbytes / busbw + 2 * (n - 1) * latency


def estimate(measured_busbw: float | None, tflops: float, per_gpu: int = 128) -> None:
    net = nets.build("zf", 1000, seed=0)
    nbytes = 4 * net.num_params()
    macs = sum(row["macs"] for row in net.summary())
    compute = 3 * 2 * macs * per_gpu / (tflops * 1e12)
    print(f"zf: {net.num_params():,} parameters = {nbytes / 1e6:.0f} MB of float32 gradients a "
          f"step; {macs / 1e9:.2f} GMAC forward per image; compute at {per_gpu} images per GPU "
          f"and {tflops:g} TFLOP/s sustained: {compute * 1e3:.0f} ms")
    cases = [("NVLink", 8, NVLINK_BUSBW), ("100 Gb/s", 8, NET_BUSBW),
             ("100 Gb/s", 64, NET_BUSBW)]
    if measured_busbw:
        cases += [("measured here", 8, measured_busbw), ("measured here", 64, measured_busbw)]
    for name, n, bw in cases:
        comm = ring_seconds(nbytes, n, bw)
        step = compute + comm
        print(f"  {n:2d} GPUs, {name:>13} ({bw / 1e9:6.1f} GB/s bus): allreduce {comm * 1e3:6.1f} ms,"
              f" step {step * 1e3:6.0f} ms, {n * per_gpu / step:8.0f} img/s, scaling efficiency "
              f"{compute / step:.0%}")
    print("  (64 GPUs = 8 nodes x 8: with NVLink inside the nodes a hierarchical allreduce "
          "still moves ~2 x bytes over each node's 100 Gb/s link, so the 100 Gb/s row holds)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("allreduce", "step", "estimate"))
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--arch", default="zf-64", choices=[a for a, _ in ARCHS])
    p.add_argument("--batch", type=int, default=32, help="global batch of `step`")
    p.add_argument("--impl", default=None)
    p.add_argument("--busbw", type=float, default=None,
                   help="a measured bus bandwidth in GB/s to add to the estimate")
    p.add_argument("--tflops", type=float, default=20.0,
                   help="sustained TFLOP/s of one GPU on the step (an assumption; default 20)")
    a = p.parse_args(argv)
    team = distributed.world()
    if a.what == "allreduce":
        bench_allreduce(team, a.repeat)
    elif a.what == "step":
        bench_step(team, a.arch, a.batch, a.repeat, a.impl)
    else:
        estimate(a.busbw * 1e9 if a.busbw else None, a.tflops)


if __name__ == "__main__":
    main()
