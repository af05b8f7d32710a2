"""ReLU, whose deconv is the paper's rectification of the downward signal."""
from __future__ import annotations

from .. import ops
from .base import Layer


class ReLU(Layer):
    """max(x, 0). Forward keeps ``self.y`` (the output; its sign is the backward mask)."""

    kind = "relu"
    saved = ("y",)

    def forward(self, x):
        """x: any shape -> same shape."""
        self.y = ops.relu_fwd(x)
        return self.y

    def backward(self, dy, need_dx: bool = True):
        """Pass dy where the forward output was positive (None when need_dx is False)."""
        return ops.relu_bwd(dy, self.y) if need_dx else None

    def deconv(self, r):
        """Rectify the signal going down (independent of the forward pass), as in the paper."""
        return ops.rectify(r)
