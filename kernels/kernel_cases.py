"""The one case table of the kernels: the geometries and inputs on which every impl and variant
of every primitive is compared with the NumPy reference, by the tests (tests/test_kernels.py:
Numba, CUDA on a GPU, and the CUDA kernels run on the CPU by kernels/cuda/emulator.py) and by
the per-primitive command ``python -m benchmarks.op NAME``. tests/test_kernels_cuda.py takes its
pooling geometries from here too. (The benchmark shapes, zf's layers at batch 16, are another
table: benchmarks/cases.py.)

Edge cases each table holds: 1x1 maps, stride larger than the kernel, odd sizes, padding
(symmetric, asymmetric (top, left, bottom, right), larger than the map), non-contiguous inputs;
max pooling also tie-heavy integer inputs and windows whose real values are all -inf, where the
switches must be identical and never point into the padding; average pooling both divisors
(padding counted or not), ceil_mode windows that run past the padded input, and global windows
over non-square maps.

:func:`cases` turns a primitive's table into :class:`Case` objects (one per row, dtype and value
pattern), each making fresh inputs from a fixed seed; :func:`call` runs one version on a device
and :func:`disagreement` says how its result differs from the reference's, if it does:
``|got - ref| <= atol + rtol*|ref|`` (TOL per dtype), or bit for bit where the result is one of
the inputs (max pooling, dropout).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from zfraw import backend
from zfraw.ops import registry  # importing zfraw.ops registers the references

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


# average pooling: (N, C, H, W), kh, kw, stride, pad (int or (top, left, bottom, right)),
# ceil_mode, count_include_pad, non-contiguous input
AVGPOOLS = [
    ((2, 3, 7, 7), 3, 3, 2, 0, False, False, False),       # ZFNet's 3x3/2 geometry, odd size
    ((2, 3, 8, 9), 3, 3, 2, 1, False, False, False),       # padding left out of the divisor
    ((2, 3, 8, 9), 3, 3, 2, 1, False, True, False),        # padding counted (PyTorch's default)
    ((1, 1, 1, 1), 1, 1, 1, 0, False, False, False),       # 1x1 map
    ((1, 2, 5, 5), 2, 2, 3, 1, False, True, False),        # stride larger than the window
    ((2, 2, 6, 7), 3, 3, 1, 2, False, False, True),        # overlapping, wide padding, strided
    ((1, 2, 4, 5), 3, 3, 2, 2, False, True, False),        # corner windows with one real tap
    ((1, 1, 1, 2), 3, 3, 2, 1, False, False, False),       # window larger than the map
    ((2, 3, 8, 6), 3, 3, 2, 0, True, True, False),         # ceil: last windows past the input
    ((1, 3, 7, 7), 3, 3, 2, 1, True, True, False),         # ceil: divisor stops at the padding
    ((1, 3, 6, 7), 3, 3, 2, (1, 0, 0, 1), True, False, False),  # asymmetric and ceil
    ((2, 2, 6, 7), 3, 3, 2, (0, 1, 1, 0), False, True, True),   # asymmetric, counted, strided
    ((2, 4, 5, 7), 5, 7, 1, 0, False, False, False),       # global: the whole non-square map
    ((2, 3, 13, 13), 13, 13, 1, 0, False, False, True),    # global over pool5-like maps
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

# dropout: shape, drop probability, seed, non-contiguous input (masks must be bit-identical)
DROPOUTS = [((3, 7, 11), 0.5, 0, True), ((4, 9), 0.3, 12345, False), ((2, 5), 0.0, -7, False),
            ((1,), 0.7, 1, False), ((2, 3, 1, 1), 0.5, 3, False), ((5, 300), 0.7, 2**31, True)]


# --- the tables as concrete inputs ------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One comparison: inputs for primitive ``op``, made fresh (same values) by each call of
    :meth:`args`, since some ops update their arguments in place."""

    op: str
    name: str                     # the row, dtype and values: a test id, a mismatch message
    dtype: type
    make: Callable[[], tuple]
    exact: bool = False           # the result must equal the reference's bit for bit
    in_place: tuple = ()          # indices of the arguments the op updates (it returns None)
    refused_by: tuple = ()        # impls that refuse these inputs by contract (a ValueError)

    def args(self) -> tuple:
        return self.make()

    def __str__(self) -> str:
        return self.name


def _dt(dtype) -> str:
    return {np.float32: "f32", np.float64: "f64"}[dtype]


def _shape(shape) -> str:
    return "x".join(str(s) for s in shape)


def _pad(p) -> str:
    return f"p{p}" if isinstance(p, int) else "p" + ",".join(str(v) for v in p)


def _nc(nc: bool) -> str:
    return "-strided" if nc else ""


def _reference(op: str):
    return registry.registered(op)["numpy"]


def _rng(seed: int):
    return np.random.default_rng(seed)


def _windows(op):
    out = []
    for shape, kh, kw, s, p, nc in WINDOWS:
        for dt in DTYPES:
            name = f"{_dt(dt)}-{_shape(shape)}-k{kh}x{kw}-s{s}-{_pad(p)}{_nc(nc)}"
            if op == "im2col":
                def make(shape=shape, kh=kh, kw=kw, s=s, p=p, nc=nc, dt=dt):
                    return rand(_rng(0), shape, dt, nc), kh, kw, s, p
            else:
                def make(shape=shape, kh=kh, kw=kw, s=s, p=p, nc=nc, dt=dt):
                    cols_shape = _reference("im2col")(np.zeros(shape, dt), kh, kw, s, p).shape
                    return rand(_rng(1), cols_shape, dt, nc), shape, kh, kw, s, p
            out.append(Case(op, name, dt, make))
    return out


def _pool_rows():
    """(seed offset, shape, k, s, pad, ceil_mode or None, nc) of both pooling tables."""
    rows = [(0, shape, k, s, p, None, nc) for shape, k, s, p, nc in POOLS]
    return rows + [(2, shape, k, s, p, ceil, nc) for shape, k, s, p, ceil, nc in POOLS_ASYM_CEIL]


def _pool_name(dt, shape, k, s, p, ceil, nc, values=None) -> str:
    return (f"{_dt(dt)}{'-' + values if values else ''}-{_shape(shape)}-k{k}-s{s}-{_pad(p)}"
            f"{'-ceil' if ceil else ''}{_nc(nc)}")


def _maxpool_fwd():
    out = []
    for off, shape, k, s, p, ceil, nc in _pool_rows():
        geo = (k, s, p) if ceil is None else (k, s, p, ceil)
        for values in POOL_VALUES:
            for dt in DTYPES:
                def make(shape=shape, geo=geo, nc=nc, dt=dt, values=values, off=off):
                    return (pool_input(_rng(2 + off), shape, dt, values, nc),) + geo
                out.append(Case("maxpool_fwd", _pool_name(dt, shape, k, s, p, ceil, nc, values),
                                dt, make, exact=True))  # a maximum is one of its inputs
    return out


def _maxpool_bwd():
    """Ties and -inf in the forward's input: the routing must follow the recorded switches."""
    out = []
    for off, shape, k, s, p, ceil, nc in _pool_rows():
        geo = (k, s, p) if ceil is None else (k, s, p, ceil)
        for dt in DTYPES:
            def make(shape=shape, geo=geo, nc=nc, dt=dt, off=off):
                rng = _rng(3 + off)
                x = pool_input(rng, shape, dt, "neg_inf")
                _, sw = _reference("maxpool_fwd")(x, *geo)
                return (rand(rng, sw.shape, dt, nc), sw, shape) + geo
            out.append(Case("maxpool_bwd", _pool_name(dt, shape, k, s, p, ceil, nc), dt, make))
    return out


def _avgpool(op):
    out = []
    for shape, kh, kw, s, p, ceil, cip, nc in AVGPOOLS:
        geo = (kh, kw, s, p, ceil, cip)
        for dt in DTYPES:
            name = (f"{_dt(dt)}-{_shape(shape)}-k{kh}x{kw}-s{s}-{_pad(p)}{'-ceil' if ceil else ''}"
                    f"{'-count_pad' if cip else ''}{_nc(nc)}")
            if op == "avgpool_fwd":
                def make(shape=shape, geo=geo, nc=nc, dt=dt):
                    return (rand(_rng(13), shape, dt, nc),) + geo
            else:
                def make(shape=shape, geo=geo, nc=nc, dt=dt):
                    y = _reference("avgpool_fwd")(np.zeros(shape, dt), *geo)
                    return (rand(_rng(14), y.shape, dt, nc), shape) + geo
            out.append(Case(op, name, dt, make))
    return out


def _lrn(op):
    out = []
    for shape, size, alpha, beta, nc in LRNS:
        for dt in DTYPES:
            name = f"{_dt(dt)}-{_shape(shape)}-size{size}-alpha{alpha}-beta{beta}{_nc(nc)}"
            if op == "lrn_fwd":
                def make(shape=shape, size=size, alpha=alpha, beta=beta, nc=nc, dt=dt):
                    x = rand(_rng(4), shape, dt) * 3
                    return (strided(x) if nc else x), size, alpha, beta, 2.0
            else:
                def make(shape=shape, size=size, alpha=alpha, beta=beta, nc=nc, dt=dt):
                    rng = _rng(5)
                    x = rand(rng, shape, dt) * 3
                    y, scale = _reference("lrn_fwd")(x, size, alpha, beta, 2.0)
                    dy = rand(rng, shape, dt, nc)
                    return dy, (strided(x) if nc else x), y, scale, size, alpha, beta
            out.append(Case(op, name, dt, make))
    return out


def _relu(op):
    out = []
    for shape, nc in RELU_SHAPES:
        for dt in DTYPES:
            if op == "relu_fwd":
                def make(shape=shape, nc=nc, dt=dt):
                    return (rand(_rng(6), shape, dt, nc),)
            else:
                def make(shape=shape, nc=nc, dt=dt):
                    rng = _rng(7)
                    y = np.maximum(rng.integers(-2, 3, shape), 0).astype(dt)  # exact zeros
                    return rand(rng, shape, dt, nc), y
            out.append(Case(op, f"{_dt(dt)}-{_shape(shape)}{_nc(nc)}", dt, make))
    return out


def _dropout():
    out = []
    for shape, p, seed, nc in DROPOUTS:
        for dt in DTYPES:
            def make(shape=shape, p=p, seed=seed, nc=nc, dt=dt):
                return rand(_rng(12), shape, dt, nc), p, seed
            out.append(Case("dropout_fwd", f"{_dt(dt)}-{_shape(shape)}-p{p}-seed{seed}{_nc(nc)}",
                            dt, make, exact=True))  # the same hash: the same mask
    return out


def _sgd():
    out = []
    for shape, wd, nc in SGD_CASES:
        for dt in DTYPES:
            def make(shape=shape, wd=wd, nc=nc, dt=dt):
                rng = _rng(8)
                param, grad, vel = (rng.standard_normal(shape).astype(dt) for _ in range(3))
                if nc:  # a strided param and velocity are still updated in place
                    param, vel = strided(param), strided(vel)
                return param, grad, vel, 0.01, 0.9, wd
            # cuda updates contiguous params only (a ValueError, tests/test_kernels_cuda.py)
            out.append(Case("sgd_update", f"{_dt(dt)}-{_shape(shape)}-wd{wd}{_nc(nc)}", dt, make,
                            in_place=(0, 2), refused_by=("cuda",) if nc else ()))
    return out


def _xent():
    out = []
    for n, k, nc in XENT_CASES:
        for dt in DTYPES:
            def make(n=n, k=k, nc=nc, dt=dt):
                rng = _rng(9)
                logits = rand(rng, (n, k), dt) * 30  # large logits: the max shift must be there
                return (strided(logits) if nc else logits), rng.integers(0, k, n)
            out.append(Case("softmax_xent", f"{_dt(dt)}-{n}x{k}{_nc(nc)}", dt, make))
    return out


def _xent_bwd():
    out = []
    for dt in DTYPES:
        def make(dt=dt):
            rng = _rng(10)
            _, probs = _reference("softmax_xent")(rng.standard_normal((6, 9)).astype(dt),
                                                  np.zeros(6, dtype=np.int64))
            return probs, rng.integers(0, 9, 6)
        out.append(Case("softmax_xent_bwd", f"{_dt(dt)}-6x9", dt, make))
    return out


WINOGRAD_OPS = ("winograd_input", "winograd_input_adjoint", "winograd_output",
                "winograd_output_adjoint", "winograd_filter", "winograd_filter_adjoint")


def _winograd_args(shape, pad, nc, dt) -> dict:
    """{op: args} for the six transforms of one WINOGRAD row, drawn in one sequence (5 filters):
    the tiles of x, their gradient, the products M, the output gradient, filters and theirs."""
    from zfraw.ops.winograd import tile_grid

    rng = _rng(11)
    x = rand(rng, shape, dt, nc)
    V = _reference("winograd_input")(x, pad)
    dV = rand(rng, V.shape, dt, nc)
    oh, ow, _, _ = tile_grid(shape[2], shape[3], pad)
    M = rand(rng, (16, 5, V.shape[2]), dt, nc)
    dy = rand(rng, (shape[0], 5, oh, ow), dt, nc)
    W = rand(rng, (5, shape[1], 3, 3), dt, nc)
    dU = rand(rng, (16, 5, shape[1]), dt, nc)
    return {"winograd_input": (x, pad), "winograd_input_adjoint": (dV, shape, pad),
            "winograd_output": (M, shape[0], oh, ow), "winograd_output_adjoint": (dy,),
            "winograd_filter": (W,), "winograd_filter_adjoint": (dU,)}


def _winograd(op):
    out = []
    for shape, pad, nc in WINOGRAD:
        for dt in DTYPES:
            def make(shape=shape, pad=pad, nc=nc, dt=dt):
                return _winograd_args(shape, pad, nc, dt)[op]
            out.append(Case(op, f"{_dt(dt)}-{_shape(shape)}-{_pad(pad)}{_nc(nc)}", dt, make))
    return out


_BUILDERS = {
    "im2col": lambda: _windows("im2col"), "col2im": lambda: _windows("col2im"),
    "maxpool_fwd": _maxpool_fwd, "maxpool_bwd": _maxpool_bwd,
    "avgpool_fwd": lambda: _avgpool("avgpool_fwd"), "avgpool_bwd": lambda: _avgpool("avgpool_bwd"),
    "lrn_fwd": lambda: _lrn("lrn_fwd"), "lrn_bwd": lambda: _lrn("lrn_bwd"),
    "relu_fwd": lambda: _relu("relu_fwd"), "relu_bwd": lambda: _relu("relu_bwd"),
    "dropout_fwd": _dropout, "sgd_update": _sgd,
    "softmax_xent": _xent, "softmax_xent_bwd": _xent_bwd,
    **{op: (lambda op=op: _winograd(op)) for op in WINOGRAD_OPS},
}


def ops() -> list[str]:
    """The primitives this table has cases for (every registered one: a test checks it)."""
    return sorted(_BUILDERS)


def cases(op: str) -> list[Case]:
    """Every case of primitive ``op``; a KeyError names the primitives there are cases for."""
    if op not in _BUILDERS:
        raise KeyError(f"no cases for {op!r}; kernels/kernel_cases.py has {', '.join(ops())}")
    return _BUILDERS[op]()


# --- running one version and comparing it with the reference ---------------------------------

def call(fn, args: tuple, device: str = "cpu"):
    """``fn(*args)`` with the array arguments moved to ``device`` ('cpu' or 'cuda'); its outputs
    come back to the host, and arguments it updated in place are copied back into ``args``."""
    moved = [backend.to_device(a, device) if isinstance(a, np.ndarray) else a for a in args]
    out = fn(*moved)
    for a, m in zip(args, moved):
        if isinstance(a, np.ndarray) and m is not a:
            a[...] = backend.to_host(m)
    if isinstance(out, tuple):
        return tuple(backend.to_host(o) for o in out)
    return None if out is None else backend.to_host(out)


def mismatch(got, ref, dtype, exact: bool = False) -> str | None:
    """None when ``got`` agrees with ``ref`` (same shape and dtype, and within TOL[dtype], or
    equal where ``exact``; NaN matches NaN there), else what differs, in one line."""
    got, ref = np.asarray(got), np.asarray(ref)
    if got.shape != ref.shape or got.dtype != ref.dtype:
        return f"got {got.dtype}{list(got.shape)}, the reference gives {ref.dtype}{list(ref.shape)}"
    if exact:
        if np.array_equal(got, ref, equal_nan=True):
            return None
        same = got == ref
        if got.dtype.kind == "f":
            same |= np.isnan(got) & np.isnan(ref)
        bad = np.argwhere(~same)
        first = tuple(int(i) for i in bad[0])
        return (f"{len(bad)} of {got.size} values differ (exact comparison); first at "
                f"{first}: {got[first]!r}, reference {ref[first]!r}")
    atol, rtol = TOL[dtype]
    err = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    bound = atol + rtol * np.abs(ref.astype(np.float64))
    if (err <= bound).all():
        return None
    nan = np.isnan(err)
    if nan.all():
        return "every difference is NaN (a NaN on one side or both)"
    return (f"max error {err[~nan].max():.3g}, worst excess {(err - bound)[~nan].max():.3g} "
            f"over atol {atol:g} + rtol {rtol:g}*|ref|"
            + (f", and {int(nan.sum())} NaN differences" if nan.any() else ""))


def disagreement(case: Case, got, ref, args: tuple, ref_args: tuple) -> str | None:
    """None when a version's result ``got`` on ``args`` agrees with the reference's ``ref`` on
    ``ref_args`` (fresh copies of the same inputs), else what differs, in one line. For an op
    that updates in place, the updated arguments are compared and both must return None."""
    if case.in_place:
        if got is not None:
            return f"returned {type(got).__name__}, not None (the op updates in place)"
        got = tuple(args[i] for i in case.in_place)
        ref = tuple(ref_args[i] for i in case.in_place)
        what = [f"argument {i}" for i in case.in_place]
    else:
        got = got if isinstance(got, tuple) else (got,)
        ref = ref if isinstance(ref, tuple) else (ref,)
        if len(got) != len(ref):
            return f"{len(got)} outputs, the reference gives {len(ref)}"
        what = [f"output {k}" for k in range(len(ref))] if len(ref) > 1 else [""]
    for name, g, r in zip(what, got, ref):
        msg = mismatch(g, r, case.dtype, case.exact)
        if msg:
            return f"{name}: {msg}" if name else msg
    return None
