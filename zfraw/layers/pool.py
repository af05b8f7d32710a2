"""Max pooling that records its switches; its deconv is unpooling through them."""
from __future__ import annotations

from .. import ops
from ..ops.pool import check_pool
from .base import Layer


class MaxPool2d(Layer):
    """k x k max pooling with stride and -inf padding. Forward keeps ``self.switches``
    (N, C, OH, OW) uint8: the row-major index in its window of each output's maximum."""

    kind = "pool"
    saved = ("switches",)

    def __init__(self, k: int, stride: int, pad: int = 0):
        super().__init__()
        self.k, self.stride, self.pad = k, stride, pad

    def output_shape(self, in_shape):
        if len(in_shape) != 3:
            raise self._error(f"expected a (C, H, W) input, got {tuple(in_shape)}")
        try:
            oh, ow = check_pool((1,) + tuple(in_shape), self.k, self.stride, self.pad)
        except ValueError as e:
            raise self._error(str(e)) from None
        return in_shape[0], oh, ow

    def window(self, in_shape):
        return self.k, self.stride, self.pad

    def forward(self, x):
        """x: (N, C, H, W) -> (N, C, OH, OW)."""
        self._check_maps(x, None)
        self.output_shape(x.shape[1:])
        self.x_shape = x.shape
        y, self.switches = ops.maxpool_fwd(x, self.k, self.stride, self.pad)
        return y

    def backward(self, dy, need_dx: bool = True):
        """dy: (N, C, OH, OW) -> dx (N, C, H, W): each gradient goes to its switch (None when
        need_dx is False)."""
        if not need_dx:
            return None
        return ops.maxpool_bwd(dy, self.switches, self.x_shape, self.k, self.stride, self.pad)

    def deconv(self, r):
        """Unpool: put each value of r at the recorded location of its window's maximum."""
        return ops.unpool(r, self.switches, self.x_shape, self.k, self.stride, self.pad)
