"""Inverted dropout with reproducible masks."""
from __future__ import annotations

from .. import ops
from ..ops.elementwise import check_dropout_p
from .base import Layer


class Dropout(Layer):
    """In training, zero each unit with probability p and scale the rest by 1/(1-p); in eval,
    the identity. The mask of the i-th training forward comes from seed (seed, i), so a run is
    reproducible and resumable: the call counter is saved as extra state."""

    kind = "dropout"
    saved = ("mask",)

    def __init__(self, p: float = 0.5, seed: int = 0):
        super().__init__()
        check_dropout_p(p)
        self.p, self.seed, self.calls = p, seed, 0
        self.mask = None

    def forward(self, x):
        """x: any shape -> same shape. Keeps ``self.mask`` (0 or 1/(1-p)) in training."""
        if not self.training or self.p == 0.0:
            self.mask = None
            return x
        y, self.mask = ops.dropout_fwd(x, self.p, self.seed * 1_000_003 + self.calls)
        self.calls += 1
        return y

    def backward(self, dy, need_dx: bool = True):
        """dy times the last forward's mask (None when need_dx is False)."""
        if not need_dx:
            return None
        return dy if self.mask is None else dy * self.mask

    def deconv(self, r):
        """Projections are made with the net in eval mode, where dropout is the identity."""
        return r

    def extra_state(self):
        return {"seed": self.seed, "calls": self.calls}

    def load_extra_state(self, state):
        self.seed = int(state.get("seed", self.seed))
        self.calls = int(state["calls"])
