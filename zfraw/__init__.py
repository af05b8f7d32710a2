"""zfraw: Zeiler & Fergus (arXiv 1311.2901) convnets and deconvnets written by hand.

NumPy is the reference backend; CuPy (GPU), Numba (CPU kernels) and raw CUDA kernels are
optional and chosen in one place, :mod:`zfraw.backend` and :mod:`zfraw.ops.registry`.

The main entry points::

    import zfraw
    net = zfraw.build("zf-32", num_classes=10, width=0.25)   # a Net; zfraw.ARCHS lists archs
    logits = net.forward(x)                                  # x: (N, 3, 32, 32) float32
    with zfraw.use_impl("numpy"):                            # pick the kernels (ops.registry)
        pixels = net.project("relu2", signal)                # after net.forward(x, until=...)

Subpackages: :mod:`zfraw.layers` (the layers), :mod:`zfraw.nets` (architectures, Net),
:mod:`zfraw.ops` (the primitives), :mod:`zfraw.backend` (devices). Training, checkpoints, data
and the figures live in their own modules and are imported by name.
"""

# This must run before anything imports NumPy, so it comes first. OpenBLAS threads otherwise
# busy-wait ~0.1 s after every matrix product, taking the cores from the kernel that runs next;
# the variable is read once, when NumPy loads OpenBLAS. Why: zfraw/host.py.
import os as _os

_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

__version__ = "0.1.0"

from . import backend, layers, nets, ops  # noqa: E402 - after the environment default above
from .backend import check_device, cuda_available  # noqa: E402
from .nets import ARCHS, Net, build  # noqa: E402
from .ops import available_impls, set_impl, use_impl  # noqa: E402

__all__ = ["ARCHS", "Net", "build", "use_impl", "set_impl", "available_impls", "cuda_available",
           "check_device", "backend", "layers", "nets", "ops", "__version__"]
