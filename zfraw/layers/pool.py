"""Max pooling that records its switches; its deconv is unpooling through them."""
from __future__ import annotations

from .. import ops
from ..ops.conv import pad_spec, pads4
from ..ops.pool import check_pool
from .base import Layer


class MaxPool2d(Layer):
    """k x k max pooling with stride and padding that never wins (zfraw/ops/pool.py). ``pad``:
    an int or (top, left, bottom, right), ONNX's order; ``ceil_mode`` rounds the output size up
    as Caffe and ONNX do (windows running past the padded input see only their real taps).
    Forward keeps ``self.switches`` (N, C, OH, OW) uint8: the row-major index in its window of
    each output's maximum."""

    kind = "pool"
    saved = ("switches",)

    def __init__(self, k: int, stride: int, pad=0, ceil_mode: bool = False):
        super().__init__()
        self.k, self.stride, self.ceil_mode = k, stride, bool(ceil_mode)
        self.pad = pad_spec(pad)          # an int when all four sides agree, else the 4-tuple
        self.pads = pads4(pad)            # (top, left, bottom, right)

    def output_shape(self, in_shape):
        if len(in_shape) != 3:
            raise self._error(f"expected a (C, H, W) input, got {tuple(in_shape)}")
        try:
            oh, ow = check_pool((1,) + tuple(in_shape), self.k, self.stride, self.pad,
                                self.ceil_mode)
        except ValueError as e:
            raise self._error(str(e)) from None
        return in_shape[0], oh, ow

    def window(self, in_shape):
        return self.k, self.stride, self.pads[0], self.pads[1]

    def forward(self, x):
        """x: (N, C, H, W) -> (N, C, OH, OW)."""
        self._check_maps(x, None)
        self.output_shape(x.shape[1:])
        self.x_shape = x.shape
        y, self.switches = ops.maxpool_fwd(x, self.k, self.stride, self.pad, self.ceil_mode)
        return y

    def backward(self, dy, need_dx: bool = True):
        """dy: (N, C, OH, OW) -> dx (N, C, H, W): each gradient goes to its switch (None when
        need_dx is False)."""
        if not need_dx:
            return None
        return ops.maxpool_bwd(dy, self.switches, self.x_shape, self.k, self.stride, self.pad,
                               self.ceil_mode)

    def deconv(self, r):
        """Unpool: put each value of r at the recorded location of its window's maximum."""
        return ops.unpool(r, self.switches, self.x_shape, self.k, self.stride, self.pad,
                          self.ceil_mode)
