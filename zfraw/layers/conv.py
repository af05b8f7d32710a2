"""Convolution as im2col + one batched matrix product (cuBLAS on the GPU)."""
from __future__ import annotations

import numpy as np

from .. import ops
from ..backend import get_array_module
from .base import Layer


class Conv2d(Layer):
    """2-d convolution (cross-correlation, as in every framework) with bias.

    params: W (out_ch, in_ch, k, k), b (out_ch,). Forward keeps ``self.cols``
    (N, in_ch*k*k, OH*OW) for the weight gradient.
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
        self.cols = ops.im2col(x, self.k, self.k, self.stride, self.pad)  # (N, K, P)
        W2 = self.params["W"].reshape(self.out_ch, -1)                     # (F, K)
        y = get_array_module(x).matmul(W2, self.cols)                      # (N, F, P)
        y += self.params["b"][:, None]
        return y.reshape(x.shape[0], self.out_ch, oh, ow)

    def backward(self, dy, need_dx: bool = True):
        """dy: (N, out_ch, OH, OW) -> dx: (N, in_ch, H, W); fills grads W and b. With
        need_dx=False (the first layer in training) dx is not computed and None returned."""
        xp = get_array_module(dy)
        n = dy.shape[0]
        dy2 = dy.reshape(n, self.out_ch, -1)                              # (N, F, P)
        # Batched per-image products then a sum: no (F, N*P) transposed copy of dy or cols.
        dW = xp.matmul(dy2, self.cols.transpose(0, 2, 1)).sum(axis=0)     # (F, K)
        self.grads["W"][...] = dW.reshape(self.params["W"].shape)
        self.grads["b"][...] = dy2.sum(axis=(0, 2))
        return self._input_gradient(dy2) if need_dx else None

    def deconv(self, r):
        """The paper's transposed filtering: convolve r with the same filters flipped in both
        spatial axes and transposed in/out, no bias. That is exactly the gradient of
        <conv(x), r> with respect to x. r: (N, out_ch, OH, OW) -> (N, in_ch, H, W)."""
        return self._input_gradient(r.reshape(r.shape[0], self.out_ch, -1))

    def _input_gradient(self, dy2):
        xp = get_array_module(dy2)
        W2 = self.params["W"].reshape(self.out_ch, -1)
        dcols = xp.matmul(W2.T, dy2)                                      # (N, K, P)
        return ops.col2im(dcols, self.x_shape, self.k, self.k, self.stride, self.pad)
