"""Average pooling (ONNX's AveragePool) and global average pooling (GlobalAveragePool, what
PyTorch writes for AdaptiveAvgPool2d(1)). The paper's nets have neither; imported graphs do.

Their deconv: the paper defines none (its nets max-pool). Average pooling is linear, y = A x,
so zfraw takes the transposed map, as the paper does for convolution: each value of the signal
is spread evenly over its window's input pixels (divided by the window's divisor), overlapping
windows adding up. That is exactly the gradient, so the three projection rules agree here.
"""
from __future__ import annotations

from .. import ops
from ..ops.avgpool import check_avgpool
from ..ops.conv import pad_spec, pads4
from .base import Layer


class AvgPool2d(Layer):
    """k x k average pooling with stride and padding (zfraw/ops/avgpool.py). ``pad``: an int or
    (top, left, bottom, right), ONNX's order; ``ceil_mode`` rounds the output size up;
    ``count_include_pad`` counts the padding in each window's divisor (PyTorch's default; ONNX's
    is False). Forward keeps only ``self.x_shape``: backward and deconv need no values."""

    kind = "avgpool"

    def __init__(self, k: int, stride: int, pad=0, ceil_mode: bool = False,
                 count_include_pad: bool = False):
        super().__init__()
        self.k, self.stride = k, stride
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)
        self.pad = pad_spec(pad)          # an int when all four sides agree, else the 4-tuple
        self.pads = pads4(pad)            # (top, left, bottom, right)

    def _geo(self):
        """The primitives' geometry arguments after the array: (kh, kw, stride, pad, ceil_mode,
        count_include_pad)."""
        return self.k, self.k, self.stride, self.pad, self.ceil_mode, self.count_include_pad

    def output_shape(self, in_shape):
        if len(in_shape) != 3:
            raise self._error(f"expected a (C, H, W) input, got {tuple(in_shape)}")
        try:
            oh, ow = check_avgpool((1,) + tuple(in_shape), self.k, self.k, self.stride,
                                   self.pad, self.ceil_mode)
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
        return ops.avgpool_fwd(x, *self._geo())

    def backward(self, dy, need_dx: bool = True):
        """dy: (N, C, OH, OW) -> dx (N, C, H, W): each dy shared evenly by its window's input
        pixels (None when need_dx is False)."""
        return ops.avgpool_bwd(dy, self.x_shape, *self._geo()) if need_dx else None

    def deconv(self, r):
        """The transposed average: each value of r spread evenly over its window (module
        docstring)."""
        return ops.avgpool_bwd(r, self.x_shape, *self._geo())


class GlobalAvgPool2d(Layer):
    """The mean of each map: (N, C, H, W) -> (N, C, 1, 1), ONNX's GlobalAveragePool. It is
    average pooling with the window the size of the map (kh = H, kw = W, stride 1, no padding),
    and runs the same primitives. Forward keeps ``self.x_shape``."""

    kind = "gap"

    def output_shape(self, in_shape):
        if len(in_shape) != 3:
            raise self._error(f"expected a (C, H, W) input, got {tuple(in_shape)}")
        return in_shape[0], 1, 1

    def window(self, in_shape):
        # One window over the whole map (the larger side where the map is not square).
        return (max(in_shape[1], in_shape[2]), 1, 0, 0) if len(in_shape) == 3 else (1, 1, 0, 0)

    def forward(self, x):
        """x: (N, C, H, W) -> (N, C, 1, 1)."""
        self._check_maps(x, None)
        self.x_shape = x.shape
        return ops.avgpool_fwd(x, x.shape[2], x.shape[3], 1, 0)

    def backward(self, dy, need_dx: bool = True):
        """dy: (N, C, 1, 1) -> dx (N, C, H, W): dy / (H*W) at every pixel (None when need_dx is
        False)."""
        if not need_dx:
            return None
        return ops.avgpool_bwd(dy, self.x_shape, self.x_shape[2], self.x_shape[3], 1, 0)

    def deconv(self, r):
        """The transposed mean: each value of r spread evenly over its map."""
        return ops.avgpool_bwd(r, self.x_shape, self.x_shape[2], self.x_shape[3], 1, 0)
