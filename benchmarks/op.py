"""One primitive, every version, one screen: ``python -m benchmarks.op NAME`` from the repo root.

    python -m benchmarks.op                   # the primitives, their versions, their cases
    python -m benchmarks.op maxpool_fwd       # check and time every version of one
    python -m benchmarks.op col2im --quick    # batch 2, 3 timed runs: a smoke run
    python -m benchmarks.op lrn_fwd --no-time # check only

1. Check: every impl and variant of NAME in the registry (zfraw/ops/registry.py: numba,
   numba:<variant>, cuda, cuda:<variant>) against the NumPy reference on every case of the
   kernels' case table (kernels/kernel_cases.py, the cases tests/test_kernels.py uses). Where no
   GPU is present the CUDA versions run on the CPU through the g++ emulator
   (kernels/cuda/emulator.py): their launchers and .cu kernels, not the GPU.
2. Time: the reference and every version that agreed and runs natively here, on the benchmark
   shapes (benchmarks/cases.py: zf's layers at batch 16), median of several interleaved runs
   after a warm-up (benchmarks/timing.py); GB/s of the bytes the primitive must move and its
   fraction of this machine's copy ceiling, measured in the same run (benchmarks/ceiling.py).
   CUDA versions are timed only where a GPU is; PyTorch is the peer column when importable.

Exit status: 0 when every version agrees with the reference, 1 when one does not (the line
``MISMATCH`` names it and its first disagreeing case), 2 for an unknown primitive.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

import numpy as np

import kernels.cuda  # noqa: F401 - registers the CUDA launchers (they import without CuPy)
from kernels import kernel_cases
from kernels.cuda import emulator as cuda_emulator
from zfraw import backend
from zfraw.ops import registry

from . import torch_peer
from .cases import impl_device, primitive_cases, time_case
from .ceiling import measure_ceiling
from .timing import ceiling_device

ROOT = Path(__file__).resolve().parents[1]
EMU = "@emu"  # suffix of a CUDA version run by the emulator


def source_files(op: str) -> dict[str, list[str]]:
    """{impl: its files for ``op``}, repository-relative: the reference's module, each kernel
    module and, for a CUDA launcher, its .cu file."""
    registry.implementations(op)  # loads the kernel packages that can load here
    files: dict[str, list[str]] = {}
    for name, fn in registry.registered(op).items():
        module_file = getattr(sys.modules.get(fn.__module__), "__file__", None)
        if module_file is None:  # registered from an interactive session or a test
            continue
        path = Path(module_file).resolve()
        cu = path.with_suffix(".cu")
        for f in [path] + ([cu] if cu.exists() else []):
            rel = str(f.relative_to(ROOT)) if f.is_relative_to(ROOT) else str(f)
            mine = files.setdefault(registry.base_impl(name), [])
            if rel not in mine:
                mine.append(rel)
    return files


def versions(op: str, emulator) -> tuple[list[tuple[str, object, str]], list[str]]:
    """([(name, fn, device)] of every version to check, the reference left out; [notes on the
    versions that cannot run here]). A CUDA version without a GPU is ``<name>@emu`` on the CPU
    when ``emulator`` is given."""
    usable = registry.implementations(op)
    out = [(n, fn, impl_device(n)) for n, fn in usable.items() if n != "numpy"]
    notes = []
    for n, fn in registry.registered(op).items():
        if n in usable:
            continue
        base = registry.base_impl(n)
        if base == "cuda" and emulator is not None:
            out.append((n + EMU, fn, "cpu"))
        else:
            notes.append(f"{n}: not checked here ({registry.unavailable_reason(base)}"
                         f"{'; no g++ for the emulator' if base == 'cuda' else ''})")
    return out, notes


def check(op: str, emulator, log) -> tuple[list[str], list[str]]:
    """Compare every version of ``op`` with the reference on each of its cases, logging one
    line per version. Returns (the versions that agree and run natively here, so can be timed;
    one 'MISMATCH: ...' line per version that disagrees, naming its first disagreeing case)."""
    cases = kernel_cases.cases(op)
    reference = registry.registered(op)["numpy"]
    refs = []
    for case in cases:
        ref_args = case.args()
        refs.append((ref_args, kernel_cases.call(reference, ref_args)))
    found, notes = versions(op, emulator)
    agreeing, mismatches = [], []
    for name, fn, device in found:
        emulated = name.endswith(EMU)
        base = registry.base_impl(name.removesuffix(EMU))
        bad, refused = [], 0
        with cuda_emulator.emulating(emulator) if emulated else contextlib.nullcontext():
            for case, (ref_args, ref) in zip(cases, refs):
                if base in case.refused_by:
                    refused += 1
                    continue
                args = case.args()
                try:
                    got = kernel_cases.call(fn, args, device)
                    msg = kernel_cases.disagreement(case, got, ref, args, ref_args)
                except Exception as e:  # noqa: BLE001 - a crash is a disagreement, named
                    msg = f"raised {type(e).__name__}: {e}"
                if msg:
                    bad.append((case, msg))
        ran = len(cases) - refused
        how = "  (g++ emulator: no GPU here)" if emulated else ""
        skip = f", {refused} refused by contract" if refused else ""
        if bad:
            case, msg = bad[0]
            log(f"  {name:16s} FAIL: {len(bad)} of {ran} disagree{skip}{how}")
            log(f"  {'':16s} first: {case}: {msg}")
            mismatches.append(f"MISMATCH: {op} {name} disagrees with the reference on {len(bad)}"
                              f" of {ran} cases; first {case}: {msg}")
        else:
            log(f"  {name:16s} {ran}/{ran} agree{skip}{how}")
            if not emulated:
                agreeing.append(name)
    for note in notes:
        log(f"  {note}")
    return agreeing, mismatches


def time_versions(op: str, names: list[str], batch: int, repeat: int, quick: bool,
                  with_torch: bool, log) -> None:
    """Time the reference and ``names`` on the benchmark shapes of ``op``; log a table."""
    cases = primitive_cases(batch, np.random.default_rng(0), ops={op})
    if not cases:
        log("time: no benchmark shape for this primitive (benchmarks/cases.py)")
        return
    impls = ["numpy"] + names
    devices = sorted({ceiling_device(impl_device(n)) for n in impls}
                     | ({"cuda"} if with_torch and backend.cuda_available() else set()))
    ceilings = {d: measure_ceiling(d, quick) for d in devices}
    log(f"time: zf shapes at batch {batch}; median of {repeat} runs after warm-up; GB/s of the "
        f"bytes it must move")
    for d, c in ceilings.items():
        log(f"  ceiling {d}: copy {c['copy_gbs']:.1f} GB/s, float32 matmul "
            f"{c['matmul_gflops']:.0f} GFLOP/s (measured now)")
    log(f"  {'layer':8s} {'version':16s} {'ms':>9s} {'GB/s':>8s} {'of copy':>8s} {'x numpy':>8s}")
    for case in cases:
        rows = time_case(case, impls, repeat, ceilings, with_torch)
        for k, r in enumerate(rows):
            log(f"  {case['case'] if k == 0 else '':8s} {r['impl']:16s} {r['median_ms']:9.3f} "
                f"{r['gbs']:8.2f} {100 * r['frac_copy_ceiling']:7.0f}% "
                f"{r['speedup_vs_numpy']:8.2f}")


def list_primitives(log) -> None:
    log("primitives (python -m benchmarks.op NAME checks and times every version of one):")
    for op in registry.ops():
        registry.implementations(op)  # loads the kernel packages that can load here
        names = " ".join(registry.registered(op))
        log(f"  {op:24s} {len(kernel_cases.cases(op)):4d} cases   {names}")
    if not backend.cuda_available():
        log("cuda versions: checked through the g++ emulator, timed only on a GPU machine "
            f"({backend.cuda_unavailable_reason()})")


def main(argv=None, log=print) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.op",
                                 description="Check every version of one primitive against the "
                                 "NumPy reference and time it (with no NAME: list them).")
    ap.add_argument("name", nargs="?", help="the primitive, e.g. maxpool_fwd")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: batch 2, 3 timed runs, a small ceiling measurement")
    ap.add_argument("--batch", type=int, help="batch of the benchmark shapes (default 16)")
    ap.add_argument("--repeat", type=int, help="timed runs per version (default 7)")
    ap.add_argument("--no-time", action="store_true", help="check only")
    ap.add_argument("--no-torch", action="store_true", help="leave out the PyTorch peer")
    args = ap.parse_args(argv)
    if args.name is None:
        list_primitives(log)
        return 0
    if args.name not in registry.ops():
        print(f"benchmarks.op: unknown primitive {args.name!r}; known: "
              f"{', '.join(registry.ops())}", file=sys.stderr)
        return 2
    op = args.name
    log(f"{op}: " + "; ".join(f"{'reference' if impl == 'numpy' else impl} {', '.join(files)}"
                              for impl, files in source_files(op).items()))
    n = len(kernel_cases.cases(op))
    log(f"check: {n} cases of kernels/kernel_cases.py against the reference (numpy)")
    with tempfile.TemporaryDirectory(prefix="zfraw-emu-") as build:
        emulator = (cuda_emulator.Emulator(Path(build))
                    if not backend.cuda_available() and cuda_emulator.available() else None)
        agreeing, mismatches = check(op, emulator, log)
    if not args.no_time:
        time_versions(op, agreeing, args.batch or (2 if args.quick else 16),
                      args.repeat or (3 if args.quick else 7), args.quick,
                      torch_peer.available() and not args.no_torch, log)
    for line in mismatches:
        log(line)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
