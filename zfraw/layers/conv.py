"""Convolution as im2col + one matrix product over the whole batch (cuBLAS on the GPU).

The columns are (C*k*k, N*OH*OW), so the forward, the weight gradient and the input gradient
are one GEMM each. The price is a transpose of the output and of dy between (N, F, P) and
(F, N*P), which are F/(C*k*k) times the size of the columns.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..backend import get_array_module
from .base import Layer


class Conv2d(Layer):
    """2-d convolution (cross-correlation, as in every framework) with bias.

    params: W (out_ch, in_ch, k, k), b (out_ch,). Forward keeps ``self.cols``
    (in_ch*k*k, N*OH*OW) for the weight gradient.
    """

    kind = "conv"

    def __init__(self, in_ch: int, out_ch: int, k: int, stride: int = 1, pad: int = 0,
                 dtype=np.float32):
        super().__init__()
        self.in_ch, self.out_ch, self.k, self.stride, self.pad = in_ch, out_ch, k, stride, pad
        self.params = {"W": np.zeros((out_ch, in_ch, k, k), dtype),
                       "b": np.zeros((out_ch,), dtype)}
        self.grads = {key: np.zeros_like(v) for key, v in self.params.items()}

    def output_shape(self, in_shape):
        if len(in_shape) != 3 or in_shape[0] != self.in_ch:
            raise self._error(f"expected input ({self.in_ch}, H, W), got {tuple(in_shape)}")
        oh, ow = self._geometry((1,) + tuple(in_shape))
        return self.out_ch, oh, ow

    def window(self, in_shape):
        return self.k, self.stride, self.pad

    def macs(self, in_shape):
        _, oh, ow = self.output_shape(in_shape)
        return self.out_ch * self.in_ch * self.k * self.k * oh * ow

    def _geometry(self, x_shape):
        try:
            return ops.check_window(x_shape, self.k, self.k, self.stride, self.pad, "input")
        except ValueError as e:
            raise self._error(str(e)) from None

    def forward(self, x):
        """x: (N, in_ch, H, W) -> (N, out_ch, OH, OW)."""
        self._check_maps(x, self.in_ch)
        oh, ow = self._geometry(x.shape)
        self.x_shape = x.shape
        n = x.shape[0]
        self.cols = ops.im2col(x, self.k, self.k, self.stride, self.pad)  # (K, N*P)
        W2 = self.params["W"].reshape(self.out_ch, -1)                     # (F, K)
        y = W2 @ self.cols                                                 # (F, N*P)
        y += self.params["b"][:, None]
        y = y.reshape(self.out_ch, n, oh * ow).transpose(1, 0, 2)          # (N, F, P) view
        return get_array_module(x).ascontiguousarray(y).reshape(n, self.out_ch, oh, ow)

    def backward(self, dy, need_dx: bool = True):
        """dy: (N, out_ch, OH, OW) -> dx: (N, in_ch, H, W); fills grads W and b. With
        need_dx=False (the first layer in training) dx is not computed and None returned."""
        dyT = self._batch_last(dy)                                        # (F, N*P)
        self.grads["W"][...] = (dyT @ self.cols.T).reshape(self.params["W"].shape)
        self.grads["b"][...] = dyT.sum(axis=1)
        return self._input_gradient(dyT) if need_dx else None

    def deconv(self, r):
        """The paper's transposed filtering: convolve r with the same filters flipped in both
        spatial axes and transposed in/out, no bias. That is exactly the gradient of
        <conv(x), r> with respect to x. r: (N, out_ch, OH, OW) -> (N, in_ch, H, W)."""
        return self._input_gradient(self._batch_last(r))

    def _batch_last(self, dy):
        """(N, F, OH, OW) -> contiguous (F, N*OH*OW), the columns' order."""
        n = dy.shape[0]
        dyT = dy.reshape(n, self.out_ch, -1).transpose(1, 0, 2)
        return get_array_module(dy).ascontiguousarray(dyT).reshape(self.out_ch, -1)

    def _input_gradient(self, dyT):
        W2 = self.params["W"].reshape(self.out_ch, -1)
        dcols = W2.T @ dyT                                                # (K, N*P)
        return ops.col2im(dcols, self.x_shape, self.k, self.k, self.stride, self.pad)
