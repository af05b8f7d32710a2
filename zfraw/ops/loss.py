"""Reference softmax with cross-entropy, numerically stable, mean over the batch, and the plain
softmax that the analyses read a net's class probabilities with.

Siblings  reference zfraw/ops/loss.py
          Numba     kernels/numba/loss.py
          CUDA      kernels/cuda/loss.py (launchers), kernels/cuda/loss.cu
          cases     kernels/kernel_cases.py (XENT_CASES)
          benchmark ``python -m benchmarks.op softmax_xent``  (or softmax_xent_bwd)
"""
from __future__ import annotations

from ..backend import get_array_module
from .registry import register


def check_logits_labels(logits, labels):
    if logits.ndim != 2:
        raise ValueError(f"softmax_xent: logits must be (N, K), got shape {logits.shape}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"softmax_xent: labels must be ({logits.shape[0]},), got {labels.shape}")


def softmax(logits):
    """Row-wise softmax of (N, K) logits, on the logits' own backend and in their dtype;
    stable (the row maximum is subtracted first, so exp never overflows). Not a dispatched
    primitive: the analyses call it on host float64 logits. :func:`softmax_xent`'s probabilities
    are the same numbers to rounding, computed from the log-probabilities its loss needs."""
    xp = get_array_module(logits)
    e = xp.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@register("softmax_xent", "numpy")
def softmax_xent(logits, labels):
    """logits: (N, K) float, labels: (N,) int -> (loss: 0-d array, probs: (N, K)).
    The loss stays on the device (a 0-d array) so a training step never syncs to the host."""
    xp = get_array_module(logits)
    check_logits_labels(logits, labels)
    shifted = logits - logits.max(axis=1, keepdims=True)  # exp never overflows
    log_z = xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    log_probs = shifted - log_z
    n = logits.shape[0]
    loss = -log_probs[xp.arange(n), labels].mean()
    return loss, xp.exp(log_probs)


@register("softmax_xent_bwd", "numpy")
def softmax_xent_bwd(probs, labels):
    """Gradient of the mean cross-entropy w.r.t. the logits: (probs - onehot(labels)) / N."""
    xp = get_array_module(probs)
    n = probs.shape[0]
    d = probs.copy()
    d[xp.arange(n), labels] -= 1
    d /= n
    return d
