"""Raw CUDA C kernels (kernels/cuda/*.cu) for CuPy arrays, registered as impl 'cuda'.

One .cu file per primitive family, each with a thin Python launcher beside it that validates
shapes with the reference's checks, makes inputs contiguous, and launches the kernel without
any copy back to the host. Importing this package registers the launchers with
zfraw.ops.registry; CuPy compiles each .cu on its first use. Matrix products are not here: the
layers call cupy.matmul (cuBLAS), in full float32 unless :func:`set_tf32` allows TF32.
"""
from . import avgpool, conv, elementwise, loss, lrn, pool  # noqa: F401 - registers the launchers
from .precision import set_tf32, tf32_enabled

__all__ = ["set_tf32", "tf32_enabled"]
