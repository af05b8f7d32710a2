"""Numba softmax cross-entropy and its gradient, same contract as :mod:`zfraw.ops.loss`.

Siblings  reference zfraw/ops/loss.py
          Numba     kernels/numba/loss.py
          CUDA      kernels/cuda/loss.py (launchers), kernels/cuda/loss.cu
          cases     kernels/kernel_cases.py (XENT_CASES)
          benchmark ``python -m benchmarks.op softmax_xent``  (or softmax_xent_bwd)

What this version does differently from the NumPy reference:
- One fused pass per row (max, sum of exponentials, probabilities, the label's log-probability)
  instead of five whole-array temporaries. Serial: even a (128, 1000) batch takes less time
  than waking the worker threads (the parallel version was slower than NumPy at (16, 1000)).
- Labels are checked to lie in [0, K) (the reference's fancy indexing would wrap negatives).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from zfraw.ops import loss as reference
from zfraw.ops.loss import check_logits_labels
from zfraw.ops.registry import register

from ._util import as_c, floats_only


@njit(cache=True)
def _softmax_xent(logits, labels, probs, nll):
    N, K = logits.shape
    for n in range(N):
        row, out = logits[n], probs[n]
        m = row.max()
        z = 0.0
        for k in range(K):
            out[k] = np.exp(row[k] - m)
            z += out[k]
        out /= z
        nll[n] = np.log(z) - (row[labels[n]] - m)


@njit(cache=True)
def _softmax_xent_bwd(probs, labels, d):
    N, K = probs.shape
    inv_n = 1.0 / N
    for n in range(N):
        for k in range(K):
            d[n, k] = probs[n, k] * inv_n
        d[n, labels[n]] -= inv_n


def _labels(labels, k: int) -> np.ndarray:
    labels = as_c(labels, np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"softmax_xent: labels must lie in [0, {k}), got range "
                         f"[{labels.min()}, {labels.max()}]")
    return labels


@register("softmax_xent", "numba")
@floats_only(reference.softmax_xent)
def softmax_xent(logits, labels):
    """logits: (N, K) float, labels: (N,) int -> (loss: 0-d array, probs: (N, K))."""
    check_logits_labels(logits, labels)
    logits = as_c(logits)
    probs = np.empty_like(logits)
    nll = np.empty(logits.shape[0], dtype=logits.dtype)
    _softmax_xent(logits, _labels(labels, logits.shape[1]), probs, nll)
    return nll.mean(), probs


@register("softmax_xent_bwd", "numba")
@floats_only(reference.softmax_xent_bwd)
def softmax_xent_bwd(probs, labels):
    """Gradient of the mean cross-entropy w.r.t. the logits: (probs - onehot(labels)) / N."""
    check_logits_labels(probs, labels)
    probs = as_c(probs)
    d = np.empty_like(probs)
    _softmax_xent_bwd(probs, _labels(labels, probs.shape[1]), d)
    return d
