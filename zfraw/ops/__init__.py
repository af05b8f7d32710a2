"""The primitives, one function each, dispatched on the array's device and the selected impl.

Every function here forwards to :func:`registry.lookup`: the NumPy/xp reference (this
package's modules) unless a registered kernel (kernels/numba, kernels/cuda) is selected and
runs on the array's device. Signatures and shapes are those of the references.
"""
from __future__ import annotations

from . import conv, elementwise, loss, lrn, pool, winograd  # noqa: F401 - registers the references
from .conv import check_window, conv_out_size, pads4
from .registry import (available, available_impls, default_impl, get_impl, implementations,
                       lookup, ops, register, set_impl, use_impl)


def _dispatched(op: str, reference):
    def fn(*args, **kwargs):
        first = args[0] if args else next(iter(kwargs.values()))  # the array that decides
        return lookup(op, first)(*args, **kwargs)

    fn.__name__ = op
    fn.__qualname__ = op
    fn.__doc__ = reference.__doc__
    return fn


im2col = _dispatched("im2col", conv.im2col)
col2im = _dispatched("col2im", conv.col2im)
maxpool_fwd = _dispatched("maxpool_fwd", pool.maxpool_fwd)
maxpool_bwd = _dispatched("maxpool_bwd", pool.maxpool_bwd)
lrn_fwd = _dispatched("lrn_fwd", lrn.lrn_fwd)
lrn_bwd = _dispatched("lrn_bwd", lrn.lrn_bwd)
relu_fwd = _dispatched("relu_fwd", elementwise.relu_fwd)
relu_bwd = _dispatched("relu_bwd", elementwise.relu_bwd)
dropout_fwd = _dispatched("dropout_fwd", elementwise.dropout_fwd)
sgd_update = _dispatched("sgd_update", elementwise.sgd_update)
softmax_xent = _dispatched("softmax_xent", loss.softmax_xent)
softmax_xent_bwd = _dispatched("softmax_xent_bwd", loss.softmax_xent_bwd)
winograd_filter = _dispatched("winograd_filter", winograd.filter_transform)
winograd_filter_adjoint = _dispatched("winograd_filter_adjoint", winograd.filter_transform_adjoint)
winograd_input = _dispatched("winograd_input", winograd.input_transform)
winograd_input_adjoint = _dispatched("winograd_input_adjoint", winograd.input_transform_adjoint)
winograd_output = _dispatched("winograd_output", winograd.output_transform)
winograd_output_adjoint = _dispatched("winograd_output_adjoint", winograd.output_transform_adjoint)


def unpool(r, switches, x_shape, k: int, stride: int, pad, ceil_mode: bool = False):
    """The deconvnet's unpooling: place each value of r (N, C, OH, OW) at its recorded switch in
    an (N, C, H, W) map of zeros, overlaps summed. It is exactly max pooling's backward, so it
    runs the same kernel (no second copy)."""
    return maxpool_bwd(r, switches, x_shape, k, stride, pad, ceil_mode)


def rectify(r):
    """The deconvnet's ReLU on the signal going down: max(r, 0). Same kernel as relu_fwd."""
    return relu_fwd(r)


__all__ = ["im2col", "col2im", "maxpool_fwd", "maxpool_bwd", "unpool", "lrn_fwd", "lrn_bwd",
           "relu_fwd", "relu_bwd", "rectify", "dropout_fwd", "sgd_update", "softmax_xent",
           "softmax_xent_bwd", "winograd_filter", "winograd_filter_adjoint", "winograd_input", "winograd_input_adjoint", "winograd_output",
           "winograd_output_adjoint", "check_window", "conv_out_size", "pads4", "available",
           "available_impls", "default_impl", "get_impl", "implementations", "lookup", "ops",
           "register", "set_impl", "use_impl"]
