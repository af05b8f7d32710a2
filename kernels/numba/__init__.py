"""Numba CPU kernels for the zfraw primitives (impl name ``"numba"``).

Importing this package registers every kernel with :func:`zfraw.ops.registry.register`; the
registry imports it lazily the first time the ``numba`` impl is asked for, so zfraw still runs
without Numba. Each module covers one family of primitives and opens with what its version does
differently from the NumPy reference. Kernels are ``@njit(parallel=True, cache=True)``: compiled
once per dtype signature and cached in ``__pycache__`` beside the module (Numba falls back to a
per-user cache directory when that is not writable).

Threading layer: ``workqueue`` unless NUMBA_THREADING_LAYER says otherwise. With the OpenMP
layer, workers that went to sleep while NumPy/BLAS ran in between two kernels took ~6 ms to
wake on the 2-core development VM (measured), more than most kernels take; workqueue wakes its
workers in about 0.1 ms a call (measured on an AMD EPYC VM: a parallel ReLU over 4,096 values,
87 us against 0.4 us serial), which is why every kernel also has a serial twin that small calls
run (``_util.Threaded``). On zf-32 at a quarter width the OpenMP layer's step was 19 ms against
workqueue's 34 before the twins, the gallery net's 267 against 208 ms: workqueue stays. Its one
limit: kernels must not be launched from two Python threads at once (zfraw launches them from
the training thread only).
"""
import os

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

from . import avgpool, conv, elementwise, loss, lrn, pool, winograd  # noqa: F401,E402 - registers
