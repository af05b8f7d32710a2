"""The machine's measured ceiling, per device: a large float32 matrix product (GFLOP/s) and a
large copy (GB/s, bytes read + written), taken in the same run as the kernels they judge.

On the CPU the copy is run two ways and the faster counts: NumPy's ``copyto`` (one thread) and
a copy split across every core (Numba, when present), since the kernels judged against it use
every core (2-core VM: 24.5 GB/s one thread, 27.2 GB/s both). Both are recorded. A primitive
called again and again on the same arrays can beat the copy, when part of its data stays in
the last-level cache between calls; read a rate above 100% that way.
"""
from __future__ import annotations

import numpy as np

from zfraw import backend

from .timing import measure


def _parallel_copy():
    """A copy across all cores (Numba), or None without Numba."""
    try:
        from numba import njit, prange
    except ImportError:
        return None

    @njit(parallel=True, cache=True)
    def copy(dst, src):
        for i in prange(src.size):
            dst[i] = src[i]

    return copy


def measure_ceiling(device: str, quick: bool = False) -> dict:
    """{"matmul_gflops", "copy_gbs", and the sizes and copy variants used} for 'cpu' (NumPy,
    Numba) or 'cuda' (CuPy)."""
    xp = backend.xp_for(device)
    n = 2048 if quick or device == "cpu" else 8192
    copy_mib = 64 if quick else 256
    rng = np.random.default_rng(0)
    a = xp.asarray(rng.standard_normal((n, n), dtype=np.float32))
    b = xp.asarray(rng.standard_normal((n, n), dtype=np.float32))
    src = xp.ones(copy_mib * 2**20 // 4, dtype=np.float32)
    dst = xp.empty_like(src)
    candidates = {"matmul": (lambda: xp.matmul(a, b), device),
                  "copy": (lambda: xp.copyto(dst, src), device)}
    parallel = _parallel_copy() if device == "cpu" else None
    if parallel is not None:
        candidates["parallel copy"] = (lambda: parallel(dst, src), device)
    t = measure(candidates, repeat=3 if quick else 7, warmup=1)
    copies = {name: 2 * src.nbytes / t[name]["median_s"] / 1e9
              for name in candidates if name != "matmul"}
    return {"matmul_gflops": 2 * n**3 / t["matmul"]["median_s"] / 1e9, "matmul_n": n,
            "copy_gbs": max(copies.values()), "copy_variants_gbs": copies,
            "copy_mib": copy_mib}
