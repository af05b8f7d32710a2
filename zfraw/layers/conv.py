"""Convolution as im2col + matrix products (cuBLAS on the GPU).

The columns are (C*k*k, N*OH*OW): image n's block is columns [n*P, (n+1)*P), P = OH*OW. Two
ways to run the products over them, chosen by the size of an output map:
- small maps (zf's 26x26 and 13x13): one GEMM over the whole batch for each of the forward, the
  weight gradient and the input gradient. The output comes out as (F, N*P) and dy must go in as
  (F, N*P), so each costs a transpose, which is only F/(C*k*k) times the size of the columns.
- large maps (zf's conv1, 110x110), on the CPU: one GEMM per image, written straight into
  (N, F, P) and reading dy as it is. There the transposes are as big as the output and cost a
  third of the product, while each image's product is big enough for BLAS to run at full speed.
  On the GPU the batched layout is kept everywhere: a transpose costs little at its bandwidth,
  and one large cuBLAS call beats a batch of strided ones.
Forward records its choice in ``self.layout`` ("per_image" or "batched"); backward and deconv
read it rather than deciding again.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..backend import get_array_module
from .base import Layer

# Output pixels per image from which one product per image beats one over the batch on the CPU.
# Measured on the 2-core VM, zf at batch 16: conv1 (P=12100) forward 31 ms per image vs 30 + 14
# ms (product + transpose) batched, weight gradient 36 vs 52 ms; conv2 (P=676) is the other way
# round, 45 vs 43 ms and 45 vs 40 ms.
PER_IMAGE_MIN_PIXELS = 4096


PER_IMAGE, BATCHED = "per_image", "batched"  # the two layouts of the products


def _per_image(xp, pixels: int) -> bool:
    """Whether maps of ``pixels`` output pixels take one product per image (module docstring)."""
    return xp is np and pixels >= PER_IMAGE_MIN_PIXELS


class Conv2d(Layer):
    """2-d convolution (cross-correlation, as in every framework) with bias.

    params: W (out_ch, in_ch, k, k), b (out_ch,). Forward keeps ``self.cols``
    (in_ch*k*k, N*OH*OW) for the weight gradient, ``self.x_shape`` (N, in_ch, H, W) and
    ``self.layout``, the products' layout it chose (PER_IMAGE or BATCHED, module docstring).
    """

    kind = "conv"
    saved = ("cols",)

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
        n, p = x.shape[0], oh * ow
        xp = get_array_module(x)
        self.cols = ops.im2col(x, self.k, self.k, self.stride, self.pad)  # (K, N*P)
        self.layout = PER_IMAGE if _per_image(xp, p) else BATCHED
        W2 = self._filters()                                               # (F, K)
        if self.layout == PER_IMAGE:
            y = xp.matmul(W2, self._cols_by_image(n))                      # (N, F, P)
        else:
            y = (W2 @ self.cols).reshape(self.out_ch, n, p)                # (F, N, P)
            y = xp.ascontiguousarray(y.transpose(1, 0, 2))                 # (N, F, P)
        y += self.params["b"][:, None]
        return y.reshape(n, self.out_ch, oh, ow)

    def backward(self, dy, need_dx: bool = True):
        """dy: (N, out_ch, OH, OW) -> dx: (N, in_ch, H, W); fills grads W and b. With
        need_dx=False (the first layer in training) dx is not computed and None returned."""
        xp = get_array_module(dy)
        dyp = self._dy_for_products(dy)
        dW = self.grads["W"].reshape(self.out_ch, -1)                      # (F, K), a view
        if self.layout == PER_IMAGE:                                       # (N, F, P)
            # The per-image (F, K) products are small; their sum is the weight gradient.
            xp.matmul(dyp, self._cols_by_image(dy.shape[0]).transpose(0, 2, 1)).sum(axis=0, out=dW)
            self.grads["b"][...] = dyp.sum(axis=(0, 2))
        else:                                                              # (F, N*P)
            xp.matmul(dyp, self.cols.T, out=dW)
            self.grads["b"][...] = dyp.sum(axis=1)
        return self._input_gradient(dyp) if need_dx else None

    def deconv(self, r):
        """The paper's transposed filtering: convolve r with the same filters flipped in both
        spatial axes and transposed in/out, no bias. That is exactly the gradient of
        <conv(x), r> with respect to x. r: (N, out_ch, OH, OW) -> (N, in_ch, H, W)."""
        return self._input_gradient(self._dy_for_products(r))

    def _filters(self):
        """W as the (F, K) matrix of the products, K = in_ch*k*k."""
        return self.params["W"].reshape(self.out_ch, -1)

    def _cols_by_image(self, n: int):
        """The columns as (N, K, P): image n's (K, P) block, a strided view (no copy)."""
        return self.cols.reshape(self.cols.shape[0], n, -1).transpose(1, 0, 2)

    def _dy_for_products(self, dy):
        """dy (N, F, OH, OW) laid out for the products as the forward chose (``self.layout``):
        the (N, F, P) view per image, a contiguous (F, N*P) copy batched."""
        xp = get_array_module(dy)
        dy3 = dy.reshape(dy.shape[0], self.out_ch, -1)
        if self.layout == PER_IMAGE:
            return dy3
        return xp.ascontiguousarray(dy3.transpose(1, 0, 2)).reshape(self.out_ch, -1)

    def _input_gradient(self, dyp):
        """dy laid out by :meth:`_dy_for_products` -> dx (N, in_ch, H, W): the product with the
        transposed filters gives the columns' gradient, col2im folds it back."""
        W2T = self._filters().T                                           # (K, F)
        if self.layout == PER_IMAGE:                                       # (N, F, P)
            n, _, p = dyp.shape
            xp = get_array_module(dyp)
            dcols = xp.empty((W2T.shape[0], n, p), dtype=dyp.dtype)      # (K, N, P)
            xp.matmul(W2T, dyp, out=dcols.transpose(1, 0, 2))
            dcols = dcols.reshape(W2T.shape[0], n * p)
        else:                                                              # (F, N*P)
            dcols = W2T @ dyp                                              # (K, N*P)
        return ops.col2im(dcols, self.x_shape, self.k, self.k, self.stride, self.pad)
