"""zfraw: Zeiler & Fergus (arXiv 1311.2901) convnets and deconvnets written by hand.

NumPy is the reference backend; CuPy (GPU), Numba (CPU kernels) and raw CUDA kernels are
optional and chosen in one place, :mod:`zfraw.backend` and :mod:`zfraw.ops.registry`.
"""

import os

__version__ = "0.1.0"

# OpenBLAS threads otherwise busy-wait ~0.1 s after every matrix product, taking the cores from
# the kernel that runs next; read once, when NumPy loads OpenBLAS. Why: zfraw/host.py.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
