"""Launchers for kernels/cuda/loss.cu: softmax with cross-entropy and its gradient on CuPy
arrays (impl 'cuda'). Same signatures as zfraw/ops/loss.py; the loss stays on the device.

Siblings  reference zfraw/ops/loss.py
          Numba     kernels/numba/loss.py
          CUDA      kernels/cuda/loss.py (launchers), kernels/cuda/loss.cu
          cases     kernels/kernel_cases.py (XENT_CASES)
          benchmark ``python -m benchmarks.op softmax_xent``  (or softmax_xent_bwd)
"""
from __future__ import annotations

from zfraw.backend import get_array_module
from zfraw.ops.loss import check_logits_labels
from zfraw.ops.registry import register

from . import _loader


def _labels(xp, logits, labels, what: str):
    """Validated (N,) int64 contiguous labels for (N, K) logits."""
    check_logits_labels(logits, labels)
    if logits.shape[1] < 1:
        raise ValueError(f"{what}: need at least one class, got shape {logits.shape}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{what}: labels must be integers, got {labels.dtype}")
    return xp.ascontiguousarray(labels, dtype=xp.int64)


def _block_size(K: int) -> int:
    """Threads per row: a power of two (for the tree reduction), 32 to 256, about K."""
    threads = 32
    while threads < min(K, 256):
        threads *= 2
    return threads


@register("softmax_xent", "cuda")
def softmax_xent(logits, labels):
    """logits: (N, K) float, labels: (N,) int -> (loss: 0-d array, probs: (N, K)).
    The loss stays on the device (a 0-d array) so a training step never syncs to the host.
    An out-of-range label makes the loss NaN (the reference raises IndexError)."""
    xp = get_array_module(logits)
    labels = _labels(xp, logits, labels, "softmax_xent")
    N, K = logits.shape
    logits = xp.ascontiguousarray(logits)
    probs = xp.empty_like(logits)
    row_loss = xp.empty((N,), dtype=logits.dtype)
    name = "softmax_xent_" + _loader.suffix(logits.dtype, "softmax_xent")
    _loader.kernel("loss", name)((max(1, min(N, _loader.MAX_BLOCKS)),), (_block_size(K),),
                                 (logits, labels, probs, row_loss) + _loader.i64(N, K))
    return row_loss.mean(), probs


@register("softmax_xent_bwd", "cuda")
def softmax_xent_bwd(probs, labels):
    """Gradient of the mean cross-entropy w.r.t. the logits: (probs - onehot(labels)) / N."""
    xp = get_array_module(probs)
    labels = _labels(xp, probs, labels, "softmax_xent_bwd")
    N, K = probs.shape
    probs = xp.ascontiguousarray(probs)
    d = xp.empty_like(probs)
    _loader.launch_1d("loss", "softmax_xent_bwd", probs.dtype, probs.size,
                      (probs, labels, d) + _loader.i64(N, K))
    return d
