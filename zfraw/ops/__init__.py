"""The primitives, one function each, dispatched on the array's device and the selected impl.

Each function below asks :func:`registry.lookup` for the version to run on its first array and
calls it: the NumPy/xp reference (this package's modules) unless a registered kernel is
selected (``set_impl``; by default the fastest for the device) and runs on that array's
device. The registry is the one place that maps impl names to kernels. Signatures and shapes
are those of the references. Each family's files share one name <f>: the reference
zfraw/ops/<f>.py, the Numba kernels kernels/numba/<f>.py, the CUDA launchers kernels/cuda/<f>.py
and their kernels kernels/cuda/<f>.cu:

    conv         im2col, col2im
    pool         maxpool_fwd, maxpool_bwd (unpool below)
    avgpool      avgpool_fwd, avgpool_bwd (also the deconvnet's rule for average pooling)
    lrn          lrn_fwd, lrn_bwd
    elementwise  relu_fwd, relu_bwd (rectify below), dropout_fwd (no Numba kernel), sgd_update
    loss         softmax_xent, softmax_xent_bwd
    winograd     winograd_filter, winograd_input, winograd_output and their adjoints (no CUDA)

The inputs every version is checked on are kernels/kernel_cases.py; ``python -m benchmarks.op
NAME`` checks and times every version of one primitive.
"""
from __future__ import annotations

# Importing the reference modules registers them.
from . import avgpool, conv, elementwise, loss, lrn, pool, winograd  # noqa: F401
from .conv import check_window, conv_out_size, pads4
from .registry import (available, available_impls, default_impl, get_impl, implementations,
                       lookup, ops, register, set_impl, use_impl)


# --- convolution as a matrix product (reference: conv.py) ---------------------------------------

def im2col(x, kh: int, kw: int, stride: int, pad):
    """Unfold sliding windows: x (N, C, H, W) -> cols (C*kh*kw, N*OH*OW) (conv.im2col)."""
    return lookup("im2col", x)(x, kh, kw, stride, pad)


def col2im(cols, x_shape, kh: int, kw: int, stride: int, pad):
    """Fold columns back into x_shape, summing overlaps; im2col's adjoint (conv.col2im)."""
    return lookup("col2im", cols)(cols, x_shape, kh, kw, stride, pad)


# --- max pooling with switches (reference: pool.py) ----------------------------------------------

def maxpool_fwd(x, k: int, stride: int, pad, ceil_mode: bool = False):
    """x (N, C, H, W) -> (y, switches (uint8)), both (N, C, OH, OW) (pool.maxpool_fwd)."""
    return lookup("maxpool_fwd", x)(x, k, stride, pad, ceil_mode)


def maxpool_bwd(dy, switches, x_shape, k: int, stride: int, pad, ceil_mode: bool = False):
    """Route each dy to its window's switch, overlaps summed -> dx of x_shape
    (pool.maxpool_bwd)."""
    return lookup("maxpool_bwd", dy)(dy, switches, x_shape, k, stride, pad, ceil_mode)


# --- average pooling (reference: avgpool.py) ---------------------------------------------------

def avgpool_fwd(x, kh: int, kw: int, stride: int, pad, ceil_mode: bool = False,
                count_include_pad: bool = False):
    """x (N, C, H, W) -> y (N, C, OH, OW), each window's mean with ONNX's divisor
    (avgpool.avgpool_fwd)."""
    return lookup("avgpool_fwd", x)(x, kh, kw, stride, pad, ceil_mode, count_include_pad)


def avgpool_bwd(dy, x_shape, kh: int, kw: int, stride: int, pad, ceil_mode: bool = False,
                count_include_pad: bool = False):
    """Spread each dy / its divisor evenly over its window's input pixels, overlaps summed
    -> dx of x_shape; also the deconvnet's rule (avgpool.avgpool_bwd)."""
    return lookup("avgpool_bwd", dy)(dy, x_shape, kh, kw, stride, pad, ceil_mode,
                                     count_include_pad)


# --- local response normalization across channels (reference: lrn.py) ---------------------------

def lrn_fwd(x, size: int, alpha: float, beta: float, bias: float):
    """x (N, C, H, W) -> (y, scale), scale kept for the backward (lrn.lrn_fwd)."""
    return lookup("lrn_fwd", x)(x, size, alpha, beta, bias)


def lrn_bwd(dy, x, y, scale, size: int, alpha: float, beta: float):
    """The exact gradient of lrn_fwd: dx (N, C, H, W) (lrn.lrn_bwd)."""
    return lookup("lrn_bwd", dy)(dy, x, y, scale, size, alpha, beta)


# --- elementwise (reference: elementwise.py) ------------------------------------------------------

def relu_fwd(x):
    """max(x, 0), elementwise (elementwise.relu_fwd)."""
    return lookup("relu_fwd", x)(x)


def relu_bwd(dy, y):
    """dy where the forward output y was positive, else 0 (elementwise.relu_bwd)."""
    return lookup("relu_bwd", dy)(dy, y)


def dropout_fwd(x, p: float, seed: int):
    """Inverted dropout: x -> (y, mask), mask 0 or 1/(1-p), the same on every backend for a
    seed (elementwise.dropout_fwd)."""
    return lookup("dropout_fwd", x)(x, p, seed)


def sgd_update(param, grad, velocity, lr: float, momentum: float, weight_decay: float):
    """In place: v <- momentum*v - lr*(grad + weight_decay*param); param += v; returns None
    (elementwise.sgd_update)."""
    return lookup("sgd_update", param)(param, grad, velocity, lr, momentum, weight_decay)


# --- the loss (reference: loss.py) ---------------------------------------------------------------

def softmax_xent(logits, labels):
    """logits (N, K), labels (N,) -> (mean loss as a 0-d array, probs (N, K))
    (loss.softmax_xent)."""
    return lookup("softmax_xent", logits)(logits, labels)


def softmax_xent_bwd(probs, labels):
    """The loss's gradient w.r.t. the logits: (probs - onehot(labels)) / N
    (loss.softmax_xent_bwd)."""
    return lookup("softmax_xent_bwd", probs)(probs, labels)


# --- Winograd F(2x2, 3x3) transforms (reference: winograd.py) ------------------------------------

def winograd_filter(W):
    """W (F, C, 3, 3) -> U (16, F, C) (winograd.filter_transform)."""
    return lookup("winograd_filter", W)(W)


def winograd_filter_adjoint(dU):
    """dU (16, F, C) -> dW (F, C, 3, 3) (winograd.filter_transform_adjoint)."""
    return lookup("winograd_filter_adjoint", dU)(dU)


def winograd_input(x, pad):
    """x (N, C, H, W) -> input tiles V (16, C, T) (winograd.input_transform)."""
    return lookup("winograd_input", x)(x, pad)


def winograd_input_adjoint(dV, x_shape, pad):
    """dV (16, C, T) -> dx of x_shape, overlapping tiles summed
    (winograd.input_transform_adjoint)."""
    return lookup("winograd_input_adjoint", dV)(dV, x_shape, pad)


def winograd_output(M, n: int, oh: int, ow: int):
    """Products M (16, F, T) -> y (n, F, oh, ow) (winograd.output_transform)."""
    return lookup("winograd_output", M)(M, n, oh, ow)


def winograd_output_adjoint(dy):
    """dy (N, F, OH, OW) -> dM (16, F, T) (winograd.output_transform_adjoint)."""
    return lookup("winograd_output_adjoint", dy)(dy)


# --- the deconvnet's two primitives, which are kernels above ------------------------------------

def unpool(r, switches, x_shape, k: int, stride: int, pad, ceil_mode: bool = False):
    """The deconvnet's unpooling: place each value of r (N, C, OH, OW) at its recorded switch in
    an (N, C, H, W) map of zeros, overlaps summed. It is exactly max pooling's backward, so it
    runs the same kernel (no second copy)."""
    return maxpool_bwd(r, switches, x_shape, k, stride, pad, ceil_mode)


def rectify(r):
    """The deconvnet's ReLU on the signal going down: max(r, 0). Same kernel as relu_fwd."""
    return relu_fwd(r)


__all__ = ["im2col", "col2im", "maxpool_fwd", "maxpool_bwd", "unpool", "avgpool_fwd",
           "avgpool_bwd", "lrn_fwd", "lrn_bwd",
           "relu_fwd", "relu_bwd", "rectify", "dropout_fwd", "sgd_update", "softmax_xent",
           "softmax_xent_bwd", "winograd_filter", "winograd_filter_adjoint", "winograd_input",
           "winograd_input_adjoint", "winograd_output", "winograd_output_adjoint",
           "check_window", "conv_out_size", "pads4", "available", "available_impls",
           "default_impl", "get_impl", "implementations", "lookup", "ops", "register",
           "set_impl", "use_impl"]
