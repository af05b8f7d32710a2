"""Fully connected layer and the Flatten between the conv and fc parts. (The loss is not a
layer: it is zfraw.ops.softmax_xent and softmax_xent_bwd.)"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from .base import Layer


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W); deconv reshapes back."""

    kind = "flatten"

    def output_shape(self, in_shape):
        return (int(np.prod(in_shape)),)

    def window(self, in_shape):
        # As a receptive-field step, flattening joins every position: a window over the map.
        return (in_shape[1], 1, 0, 0) if len(in_shape) == 3 else (1, 1, 0, 0)

    def forward(self, x):
        self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, need_dx: bool = True):
        """dy (N, C*H*W) -> dx (N, C, H, W) (None when need_dx is False)."""
        return dy.reshape(self.x_shape) if need_dx else None

    def deconv(self, r):
        return r.reshape(self.x_shape)


class Linear(Layer):
    """y = x W^T + b. params: W (out_f, in_f), b (out_f,). Forward keeps ``self.x``."""

    kind = "fc"
    saved = ("x",)

    def __init__(self, in_f: int, out_f: int, dtype=np.float32):
        super().__init__()
        self.in_f, self.out_f = in_f, out_f
        self.params = {"W": np.zeros((out_f, in_f), dtype), "b": np.zeros((out_f,), dtype)}
        self.grads = {key: np.zeros_like(v) for key, v in self.params.items()}

    def output_shape(self, in_shape):
        if tuple(in_shape) != (self.in_f,):
            raise self._error(f"expected input ({self.in_f},), got {tuple(in_shape)}")
        return (self.out_f,)

    def macs(self, in_shape):
        return self.in_f * self.out_f

    def forward(self, x):
        """x: (N, in_f) -> (N, out_f)."""
        if x.ndim != 2 or x.shape[1] != self.in_f:
            raise self._error(f"expected input (N, {self.in_f}), got shape {tuple(x.shape)}")
        self.x = x
        return x @ self.params["W"].T + self.params["b"]

    def backward(self, dy, need_dx: bool = True):
        """dy: (N, out_f) -> dx: (N, in_f) (None when need_dx is False); fills grads."""
        # Written in place: a fresh (out_f, in_f) product plus a copy costs 3x as much for fc6.
        get_array_module(dy).matmul(dy.T, self.x, out=self.grads["W"])
        dy.sum(axis=0, out=self.grads["b"])
        return dy @ self.params["W"] if need_dx else None

    def deconv(self, r):
        """Transposed weights, no bias: r (N, out_f) -> (N, in_f)."""
        return r @ self.params["W"]
