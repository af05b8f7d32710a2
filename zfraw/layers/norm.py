"""Local response (contrast) normalization across feature maps."""
from __future__ import annotations

from .. import ops
from .base import Layer


class LocalResponseNorm(Layer):
    """ONNX LRN: y = x / (bias + alpha/size * sum of x^2 over `size` neighbouring maps)^beta.

    Defaults: Krizhevsky et al.'s size 5, beta 0.75, k (bias) 2, with alpha 1e-4 in the ONNX
    convention (alpha divided by size). Forward keeps ``self.x``, ``self.y``, ``self.scale``.
    The deconvnet skips it (the paper): deconv is the identity.
    """

    kind = "lrn"
    saved = ("x", "y", "scale")

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, bias: float = 2.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.bias = size, alpha, beta, bias

    def forward(self, x):
        """x: (N, C, H, W) -> same shape."""
        self._check_maps(x, None)
        self.x = x
        self.y, self.scale = ops.lrn_fwd(x, self.size, self.alpha, self.beta, self.bias)
        return self.y

    def backward(self, dy, need_dx: bool = True):
        """Exact analytic gradient; dy (N, C, H, W) -> dx (None when need_dx is False)."""
        if not need_dx:
            return None
        return ops.lrn_bwd(dy, self.x, self.y, self.scale, self.size, self.alpha, self.beta)

    def deconv(self, r):
        """Contrast normalization is skipped on the way down."""
        return r
