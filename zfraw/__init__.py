"""zfraw: Zeiler & Fergus (arXiv 1311.2901) convnets and deconvnets written by hand.

NumPy is the reference backend; CuPy (GPU), Numba (CPU kernels) and raw CUDA kernels are
optional and chosen in one place, :mod:`zfraw.backend` and :mod:`zfraw.ops.registry`.
"""

__version__ = "0.1.0"
