"""The machine's measured ceiling, per device: a large float32 matrix product (GFLOP/s) and a
large copy (GB/s, bytes read + written), taken in the same run as the kernels they judge."""
from __future__ import annotations

import numpy as np

from zfraw import backend

from .timing import measure


def measure_ceiling(device: str, quick: bool = False) -> dict:
    """{"matmul_gflops", "copy_gbs", and the sizes used} for 'cpu' (NumPy) or 'cuda' (CuPy)."""
    xp = backend.xp_for(device)
    n = 2048 if quick or device == "cpu" else 8192
    copy_mib = 64 if quick else 256
    rng = np.random.default_rng(0)
    a = xp.asarray(rng.standard_normal((n, n), dtype=np.float32))
    b = xp.asarray(rng.standard_normal((n, n), dtype=np.float32))
    src = xp.ones(copy_mib * 2**20 // 4, dtype=np.float32)
    dst = xp.empty_like(src)
    t = measure({"matmul": (lambda: xp.matmul(a, b), device),
                 "copy": (lambda: xp.copyto(dst, src), device)},
                repeat=3 if quick else 7, warmup=1)
    return {"matmul_gflops": 2 * n**3 / t["matmul"]["median_s"] / 1e9, "matmul_n": n,
            "copy_gbs": 2 * src.nbytes / t["copy"]["median_s"] / 1e9, "copy_mib": copy_mib}
