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
A third way, for 3x3 stride-1 ungrouped layers (zf's conv3-5) where :data:`WINOGRAD` enables it
for the device: Winograd's F(2x2, 3x3) (zfraw/ops/winograd.py), 16 products of (F, C) by
(C, tiles) instead of one of (F, 9C) by (9C, pixels), 2.25x fewer multiply-adds.
Forward records its choice in ``self.layout`` ("per_image", "batched" or "winograd"); backward
and deconv read it rather than deciding again.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..backend import get_array_module
from ..ops.conv import pad_spec, pads4
from .base import Layer

# Output pixels per image from which one product per image beats one over the batch on the CPU.
# Measured on the 2-core VM, zf at batch 16: conv1 (P=12100) forward 31 ms per image vs 30 + 14
# ms (product + transpose) batched, weight gradient 36 vs 52 ms; conv2 (P=676) is the other way
# round, 45 vs 43 ms and 45 vs 40 ms.
PER_IMAGE_MIN_PIXELS = 4096


PER_IMAGE, BATCHED, WINOGRAD_LAYOUT = "per_image", "batched", "winograd"  # the products' layouts

# Whether 3x3 stride-1 ungrouped layers use Winograd F(2x2, 3x3), per device: set from the
# layers benchmark (README, Kernels and benchmarks), which times both on the same shapes. On
# the 2-core VM (interleaved medians, zf b16 and zf-64 b64 conv3-5): forward 0-15% and
# backward 24-33% faster than im2col. The GPU has not been measured: off there.
WINOGRAD = {"cpu": True, "cuda": False}
# Winograd trades one product of (F, 9C) by (9C, pixels) for 16 of (F, C) by (C, tiles) plus the
# transforms; with few input channels those products are too thin to run near the machine's
# peak and the transforms dominate. Measured on the 2-core VM (OpenBLAS's AVX-512 kernels, layer
# forward + backward, the interleaved median): im2col wins at every C <= 128 (zf-32's conv1, C=3:
# 1.6 vs 7.4 ms; zf-64 at quarter width conv3, C=64: 2.7 vs 6.4 ms; at half width, C=128: 17.4
# vs 18.3 ms), C=192 is even (zf-64 at half width: conv4 29.2 vs 24.9, conv5 25.1 vs 24.7 ms),
# Winograd wins from C=256 (zf-64 conv3 61.7 vs 56.0, conv4 and conv5 at C=384 94 vs 74 and
# 67 vs 56 ms; zf at batch 16 conv3-5 by 7-14%).
WINOGRAD_MIN_CHANNELS = 192
# Odd small maps waste a large part of the 2x2 tiles (5x5 outputs: 36 computed for 25), and
# there im2col wins: the incremental occlusion's windows (5x5 to 9x9) ran 4% faster on im2col.
# zf's 13x13 maps (196 for 169) and zf-64's 8x8 stay under the limit.
WINOGRAD_MAX_TILED = 1.2


def _per_image(xp, pixels: int) -> bool:
    """Whether maps of ``pixels`` output pixels take one product per image (module docstring)."""
    return xp is np and pixels >= PER_IMAGE_MIN_PIXELS


class Conv2d(Layer):
    """2-d convolution (cross-correlation, as in every framework) with bias, optionally grouped.

    params: W (out_ch, in_ch // groups, k, k), b (out_ch,). ``pad``: an int or (top, left,
    bottom, right), ONNX's order. With ``groups`` G, output channels [g*F/G, (g+1)*F/G) see only
    input channels [g*C/G, (g+1)*C/G) (AlexNet's two-GPU halves; G = in_ch is depthwise).
    Forward keeps ``self.cols`` (in_ch*k*k, N*OH*OW) for the weight gradient, ``self.x_shape``
    (N, in_ch, H, W) and ``self.layout``, the products' layout it chose (PER_IMAGE or BATCHED,
    module docstring).

    Groups: group g's rows of the columns are the contiguous block [g*K/G, (g+1)*K/G), K =
    in_ch*k*k, so every product (forward, weight gradient, input gradient, deconv) is done per
    group over row slices of the same columns and filters (:meth:`_groups`); with groups=1 that
    is one product over the whole arrays, exactly the ungrouped code.
    """

    kind = "conv"
    saved = ("cols", "tiles", "U")

    def __init__(self, in_ch: int, out_ch: int, k: int, stride: int = 1, pad=0,
                 dtype=np.float32, groups: int = 1):
        super().__init__()
        if groups < 1 or in_ch % groups or out_ch % groups:
            raise ValueError(f"conv: in_ch {in_ch} and out_ch {out_ch} must both be divisible "
                             f"by groups {groups}")
        self.in_ch, self.out_ch, self.k, self.stride = in_ch, out_ch, k, stride
        self.pad = pad_spec(pad)          # an int when all four sides agree, else the 4-tuple
        self.pads = pads4(pad)            # (top, left, bottom, right)
        self.groups = groups
        self.params = {"W": np.zeros((out_ch, in_ch // groups, k, k), dtype),
                       "b": np.zeros((out_ch,), dtype)}
        self.grads = {key: np.zeros_like(v) for key, v in self.params.items()}

    def output_shape(self, in_shape):
        if len(in_shape) != 3 or in_shape[0] != self.in_ch:
            raise self._error(f"expected input ({self.in_ch}, H, W), got {tuple(in_shape)}")
        oh, ow = self._geometry((1,) + tuple(in_shape))
        return self.out_ch, oh, ow

    def window(self, in_shape):
        return self.k, self.stride, self.pads[0], self.pads[1]

    def macs(self, in_shape):
        _, oh, ow = self.output_shape(in_shape)
        return self.out_ch * (self.in_ch // self.groups) * self.k * self.k * oh * ow

    def _geometry(self, x_shape):
        try:
            return ops.check_window(x_shape, self.k, self.k, self.stride, self.pad, "input")
        except ValueError as e:
            raise self._error(str(e)) from None

    def _groups(self):
        """[(filter rows, column rows)] of each group: slices of W's (F, K/G) matrix and of the
        columns' K rows. One pair of full slices when groups=1."""
        fg, kg = self.out_ch // self.groups, self.in_ch // self.groups * self.k * self.k
        return [(slice(g * fg, (g + 1) * fg), slice(g * kg, (g + 1) * kg))
                for g in range(self.groups)]

    def forward(self, x):
        """x: (N, in_ch, H, W) -> (N, out_ch, OH, OW)."""
        self._check_maps(x, self.in_ch)
        oh, ow = self._geometry(x.shape)
        self.x_shape = x.shape
        n, p = x.shape[0], oh * ow
        xp = get_array_module(x)
        if self._winograd_applies(xp, oh, ow):
            return self._winograd_forward(x, oh, ow)
        self.cols = ops.im2col(x, self.k, self.k, self.stride, self.pad)  # (K, N*P)
        self.layout = PER_IMAGE if _per_image(xp, p) else BATCHED
        W2 = self._filters()                                               # (F, K/G)
        if self.layout == PER_IMAGE:
            cols3 = self._cols_by_image(n)                                 # (N, K, P)
            if self.groups == 1:
                y = xp.matmul(W2, cols3)                                   # (N, F, P)
            else:
                y = xp.empty((n, self.out_ch, p), dtype=self.cols.dtype)
                for f, r in self._groups():
                    xp.matmul(W2[f], cols3[:, r], out=y[:, f])
        else:
            if self.groups == 1:
                yb = W2 @ self.cols                                        # (F, N*P)
            else:
                yb = xp.empty((self.out_ch, self.cols.shape[1]), dtype=self.cols.dtype)
                for f, r in self._groups():
                    xp.matmul(W2[f], self.cols[r], out=yb[f])
            y = xp.ascontiguousarray(yb.reshape(self.out_ch, n, p).transpose(1, 0, 2))  # (N, F, P)
        y += self.params["b"][:, None]
        return y.reshape(n, self.out_ch, oh, ow)

    def backward(self, dy, need_dx: bool = True):
        """dy: (N, out_ch, OH, OW) -> dx: (N, in_ch, H, W); fills grads W and b. With
        need_dx=False (the first layer in training) dx is not computed and None returned."""
        xp = get_array_module(dy)
        if self.layout == WINOGRAD_LAYOUT:
            dM = ops.winograd_output_adjoint(dy)                           # (16, F, T)
            self.grads["W"][...] = ops.winograd_filter_adjoint(
                xp.matmul(dM, self.tiles.transpose(0, 2, 1)))
            self.grads["b"][...] = dy.sum(axis=(0, 2, 3))
            return self._winograd_input_gradient(dM) if need_dx else None
        dyp = self._dy_for_products(dy)
        dW = self.grads["W"].reshape(self.out_ch, -1)                      # (F, K/G), a view
        if self.layout == PER_IMAGE:                                       # (N, F, P)
            # The per-image (F, K) products are small; their sum is the weight gradient.
            colsT = self._cols_by_image(dy.shape[0]).transpose(0, 2, 1)    # (N, P, K)
            for f, r in self._groups():
                xp.matmul(dyp[:, f], colsT[:, :, r]).sum(axis=0, out=dW[f])
            self.grads["b"][...] = dyp.sum(axis=(0, 2))
        else:                                                              # (F, N*P)
            for f, r in self._groups():
                xp.matmul(dyp[f], self.cols[r].T, out=dW[f])
            self.grads["b"][...] = dyp.sum(axis=1)
        return self._input_gradient(dyp) if need_dx else None

    def deconv(self, r):
        """The paper's transposed filtering: convolve r with the same filters flipped in both
        spatial axes and transposed in/out (within each group), no bias. That is exactly the
        gradient of <conv(x), r> with respect to x. r: (N, out_ch, OH, OW) -> (N, in_ch, H, W)."""
        if self.layout == WINOGRAD_LAYOUT:
            return self._winograd_input_gradient(ops.winograd_output_adjoint(r))
        return self._input_gradient(self._dy_for_products(r))

    # -- Winograd F(2x2, 3x3) ---------------------------------------------------------------
    def _winograd_applies(self, xp, oh: int, ow: int) -> bool:
        """Winograd where it is on for the device, the layer is 3x3 stride-1 ungrouped with at
        least WINOGRAD_MIN_CHANNELS input channels, and the 2x2 tiles waste little: they cover
        at most WINOGRAD_MAX_TILED times the output."""
        device = "cpu" if xp is np else "cuda"
        tiled = 4 * (-(-oh // 2)) * (-(-ow // 2))
        return (self.k == 3 and self.stride == 1 and self.groups == 1 and WINOGRAD[device]
                and self.in_ch >= WINOGRAD_MIN_CHANNELS
                and tiled <= WINOGRAD_MAX_TILED * oh * ow)

    def _winograd_forward(self, x, oh: int, ow: int):
        """Keeps ``self.tiles`` V (16, C, T) for the weight gradient and ``self.U`` (16, F, C),
        the transformed filters, for the input gradient and the deconv."""
        xp = get_array_module(x)
        self.layout = WINOGRAD_LAYOUT
        self.cols = None
        self.tiles = ops.winograd_input(x, self.pad)
        self.U = ops.winograd_filter(self.params["W"])
        y = ops.winograd_output(xp.matmul(self.U, self.tiles), x.shape[0], oh, ow)
        y += self.params["b"][:, None, None]
        return y

    def _winograd_input_gradient(self, dM):
        """dM (16, F, T), the output tiles' gradient -> dx (N, in_ch, H, W)."""
        xp = get_array_module(dM)
        dV = xp.matmul(self.U.transpose(0, 2, 1), dM)                     # (16, C, T)
        return ops.winograd_input_adjoint(dV, self.x_shape, self.pad)

    def _filters(self):
        """W as the (F, K/G) matrix of the products, K/G = in_ch/groups*k*k."""
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
        transposed filters gives the columns' gradient (group g's rows from group g's filters),
        col2im folds it back."""
        xp = get_array_module(dyp)
        W2 = self._filters()                                               # (F, K/G)
        K = self.in_ch * self.k * self.k
        if self.layout == PER_IMAGE:                                       # (N, F, P)
            n, _, p = dyp.shape
            dcols = xp.empty((K, n, p), dtype=dyp.dtype)                  # (K, N, P)
            for f, r in self._groups():
                xp.matmul(W2[f].T, dyp[:, f], out=dcols[r].transpose(1, 0, 2))
            dcols = dcols.reshape(K, n * p)
        elif self.groups == 1:                                             # (F, N*P)
            dcols = W2.T @ dyp                                             # (K, N*P)
        else:
            dcols = xp.empty((K, dyp.shape[1]), dtype=dyp.dtype)
            for f, r in self._groups():
                xp.matmul(W2[f].T, dyp[f], out=dcols[r])
        return ops.col2im(dcols, self.x_shape, self.k, self.k, self.stride, self.pad)
