"""Reference softmax with cross-entropy, numerically stable, mean over the batch."""
from __future__ import annotations

from ..backend import get_array_module
from .registry import register


def check_logits_labels(logits, labels):
    if logits.ndim != 2:
        raise ValueError(f"softmax_xent: logits must be (N, K), got shape {logits.shape}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"softmax_xent: labels must be ({logits.shape[0]},), got {labels.shape}")


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
