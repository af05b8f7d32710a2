"""The one case table of the kernel tests: the geometries and inputs on which every impl and
variant of every primitive is compared with the NumPy reference (tests/test_kernels.py: Numba,
CUDA on a GPU, and the CUDA kernels run by the g++ emulator), and from which the CUDA layer
tests (tests/test_kernels_cuda.py) take theirs.

Edge cases each table holds: 1x1 maps, stride larger than the kernel, odd sizes, padding
(symmetric, asymmetric (top, left, bottom, right), larger than the map), non-contiguous inputs;
max pooling also tie-heavy integer inputs and windows whose real values are all -inf, where the
switches must be identical and never point into the padding.
"""
from __future__ import annotations

import numpy as np

TOL = {np.float32: (1e-5, 1e-5), np.float64: (1e-12, 1e-10)}  # (atol, rtol)
DTYPES = [np.float32, np.float64]


def strided(x):
    """A non-contiguous view with x's values: every other element of a twice-as-wide array."""
    wide = np.empty(x.shape[:-1] + (2 * x.shape[-1],), dtype=x.dtype)
    wide[..., ::2] = x
    view = wide[..., ::2]
    assert not view.flags.c_contiguous
    return view


def rand(rng, shape, dtype, noncontig=False):
    x = rng.standard_normal(shape).astype(dtype)
    return strided(x) if noncontig else x


# Winograd F(2x2, 3x3): (N, C, H, W), pad, non-contiguous input (odd sizes, asymmetric pads).
WINOGRAD = [((2, 3, 7, 6), 1, False), ((1, 2, 5, 5), 0, True), ((2, 3, 6, 9), (1, 0, 2, 1), False),
            ((1, 1, 3, 3), 0, False), ((2, 4, 13, 13), 1, True)]

# im2col / col2im: (N, C, H, W), kh, kw, stride, pad, non-contiguous input
WINDOWS = [
    ((2, 3, 7, 7), 3, 3, 1, 1, False),
    ((1, 1, 1, 1), 1, 1, 1, 0, False),     # 1x1 map
    ((2, 2, 5, 6), 2, 2, 3, 0, False),     # stride larger than the kernel
    ((1, 3, 9, 8), 5, 5, 2, 2, True),      # odd sizes, padding, strided input
    ((2, 2, 7, 5), 3, 2, 2, 1, False),     # non-square kernel
    ((1, 2, 2, 3), 3, 3, 1, 2, False),     # padding larger than the map
    ((1, 2, 9, 11), 5, 3, 2, 2, True),     # rectangular kernel, stride 2, padding 2
    ((3, 4, 4, 4), 4, 4, 1, 0, False),     # window = input: 1x1 output
    ((1, 3, 11, 11), 7, 7, 2, 3, True),    # conv1-like
    ((1, 1, 3, 3), 3, 3, 4, 2, False),     # stride > kernel with padding
    ((2, 3, 7, 6), 3, 3, 2, (1, 0, 2, 1), False),  # asymmetric (top, left, bottom, right)
    ((1, 2, 6, 9), 5, 3, 1, (0, 2, 1, 0), True),   # asymmetric, non-square kernel, strided
    ((2, 2, 5, 5), 2, 2, 3, (1, 1, 0, 0), False),  # stride > kernel, pads only before
]

# max pooling: (N, C, H, W), k, stride, pad, non-contiguous input
POOLS = [
    ((2, 3, 7, 7), 3, 2, 0, False),        # ZFNet's 3x3/2 on an odd size
    ((2, 3, 8, 9), 3, 2, 1, False),        # padding, odd width
    ((1, 1, 1, 1), 1, 1, 0, False),        # 1x1 map
    ((1, 2, 5, 5), 2, 3, 1, False),        # stride larger than the window
    ((2, 2, 5, 5), 2, 3, 0, True),         # stride larger than the window, no padding
    ((2, 2, 6, 7), 3, 1, 2, True),         # overlapping windows, wide padding, strided input
    ((1, 2, 4, 4), 3, 1, 2, False),        # heavy padding: windows mostly padding
    ((1, 1, 1, 2), 3, 2, 1, False),        # window larger than the map
    ((1, 1, 2, 3), 3, 3, 1, False),        # window larger than the map, stride = window
    ((1, 2, 4, 5), 3, 2, 2, False),        # corner windows holding one real tap each
    ((2, 3, 13, 13), 3, 2, 0, False),      # pool5-like
]
POOL_VALUES = ["random", "ties", "neg_inf"]

# max pooling: (N, C, H, W), k, stride, pad (int or (top, left, bottom, right)), ceil_mode, nc
POOLS_ASYM_CEIL = [
    ((2, 3, 8, 6), 3, 2, 0, True, False),             # ceil: a partial last window each way
    ((2, 2, 6, 7), 3, 2, (0, 1, 1, 0), False, True),  # asymmetric, strided input
    ((1, 3, 6, 7), 3, 2, (1, 0, 0, 1), True, False),  # asymmetric and ceil
    ((2, 2, 5, 5), 2, 2, (1, 1, 0, 0), True, False),  # the last window runs past the input
    ((1, 2, 4, 5), 3, 3, (2, 0, 1, 2), True, False),  # stride = window, heavy padding
    ((1, 1, 1, 2), 3, 2, (2, 1, 0, 0), True, False),  # window larger than the map
]


def pool_input(rng, shape, dtype, values, nc=False):
    """Pooling test input. 'ties': integers with many repeats (the first maximum, row-major,
    must win); 'neg_inf': the same with the top-left 2x2 of every plane and all of plane (0, 0)
    at -inf, so padded border windows whose real values are all -inf exist (padding must
    still lose: the switch is the window's first real tap)."""
    if values == "random":
        return rand(rng, shape, dtype, nc)
    x = rng.integers(-2, 3, shape).astype(dtype)
    if values == "neg_inf":
        x[..., :2, :2] = -np.inf
        x[0, 0] = -np.inf
    return strided(x) if nc else x


# LRN: (N, C, H, W), size, alpha, beta, non-contiguous inputs
LRNS = [
    ((2, 7, 5, 4), 5, 0.1, 0.75, False),   # the paper's setting (square-root path)
    ((2, 7, 3, 4), 5, 0.5, 0.75, True),    # a large alpha: the normalization matters
    ((1, 1, 1, 1), 5, 0.1, 0.75, False),   # window wider than the channels
    ((1, 3, 2, 2), 5, 0.5, 0.75, False),   # window wider than the channels, large alpha
    ((2, 6, 3, 3), 4, 0.1, 0.6, True),     # even size: asymmetric window; pow path; strided
    ((2, 6, 1, 1), 4, 0.5, 0.75, False),   # even size on 1x1 maps
    ((1, 3, 2, 5), 1, 0.1, 0.75, False),   # size 1
    ((1, 1, 2, 5), 3, 0.5, 0.75, False),   # one channel
    ((2, 6, 17, 19), 5, 0.1, 0.75, False),  # 323 pixels: two of the Numba backward's blocks
    ((1, 20, 2, 3), 17, 0.5, 0.75, False),  # wider than cuda:ring's ring (its fallback)
]

# ReLU: shape, non-contiguous
RELU_SHAPES = [((2, 3, 4, 5), False), ((7,), False), ((3, 8), True), ((3, 5, 7), False),
               ((1,), False), ((2, 3, 1, 1), False)]

# SGD update: shape, weight decay, strided param and velocity
SGD_CASES = [((4, 3, 5, 5), 5e-4, False), ((10,), 0.0, False), ((5, 3, 2), 5e-4, False),
             ((6, 7), 1e-3, True)]

# softmax cross-entropy: N, K, non-contiguous logits
XENT_CASES = [(5, 7, False), (1, 1, False), (4, 10, True), (3, 1, False), (2, 300, True),
              (5, 37, False), (70, 3, False)]
