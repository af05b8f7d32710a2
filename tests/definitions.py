"""Definitions the tests check the code against, written window by window (slow, obvious),
and checks shared by several test files."""
from __future__ import annotations

import numpy as np

from zfraw.layers import Conv2d
from zfraw.ops.conv import pads4

from gradcheck import assert_close, numeric_grad


def naive_maxpool(x, k, s, pads, ceil_mode=False):
    """Max pooling by its definition, window by window (``pads``: an int or (top, left,
    bottom, right)): output sizes from the formula written out (ceil rounds up, the last
    window must start inside the input or the top/left padding); only real taps are
    candidates; the first real tap starts the maximum; a strict '>' keeps the first maximum."""
    t, l, b, r = pads4(pads)
    N, C, H, W = x.shape

    def out(size, begin, end):
        span = size + begin + end - k
        o = (-(-span // s) if ceil_mode else span // s) + 1
        return o - 1 if ceil_mode and (o - 1) * s >= size + begin else o

    OH, OW = out(H, t, b), out(W, l, r)
    y, sw = np.zeros((N, C, OH, OW), x.dtype), np.zeros((N, C, OH, OW), np.uint8)
    for n, c, oh, ow in np.ndindex(N, C, OH, OW):
        best = None
        for i in range(k):
            for j in range(k):
                h, w = oh * s - t + i, ow * s - l + j
                if 0 <= h < H and 0 <= w < W and (best is None or x[n, c, h, w] > best):
                    best, sw[n, c, oh, ow] = x[n, c, h, w], i * k + j
        assert best is not None, "a window without a real tap"
        y[n, c, oh, ow] = best
    return y, sw


def naive_avgpool(x, kh, kw, s, pads, ceil_mode=False, count_include_pad=False):
    """Average pooling by ONNX's definition, window by window: the output size as max
    pooling's; the sum of the window's taps inside the input over the divisor: those taps, or
    with ``count_include_pad`` the taps inside the padded input (rows < H + bottom, columns
    < W + right; a ceil_mode window's overhang past that is not counted)."""
    t, l, b, r = pads4(pads)
    N, C, H, W = x.shape

    def out(size, k, begin, end):
        span = size + begin + end - k
        o = (-(-span // s) if ceil_mode else span // s) + 1
        return o - 1 if ceil_mode and (o - 1) * s >= size + begin else o

    OH, OW = out(H, kh, t, b), out(W, kw, l, r)
    y = np.zeros((N, C, OH, OW), x.dtype)
    for n, c, oh, ow in np.ndindex(N, C, OH, OW):
        total, real, padded = 0.0, 0, 0
        for i in range(kh):
            for j in range(kw):
                h, w = oh * s - t + i, ow * s - l + j
                if 0 <= h < H and 0 <= w < W:
                    total += x[n, c, h, w]
                    real += 1
                if h < H + b and w < W + r:
                    padded += 1
        assert real > 0, "a window without a real tap"
        y[n, c, oh, ow] = total / (padded if count_include_pad else real)
    return y


def assert_switches_in_image(sw, x_shape, k, s, p):
    """Every switch (i, j) = divmod(switch, k) of output (oh, ow) is a real input pixel."""
    H, W = x_shape[2:]
    top, left = pads4(p)[:2]
    i, j = np.divmod(sw.astype(np.int64), k)
    oh, ow = np.meshgrid(np.arange(sw.shape[2]), np.arange(sw.shape[3]), indexing="ij")
    h, w = oh * s - top + i, ow * s - left + j
    assert ((h >= 0) & (h < H) & (w >= 0) & (w < W)).all(), "a switch points into the padding"


def check_layer_grads(layer, x, seed=0, atol=1e-6, rtol=1e-5):
    """backward's dx and every parameter gradient against central differences of <f(x), dy>."""
    dy = np.random.default_rng(seed).standard_normal(layer.forward(x).shape)
    objective = lambda: float(np.vdot(layer.forward(x), dy))  # noqa: E731
    layer.forward(x)
    dx = layer.backward(dy)
    assert_close(dx, numeric_grad(objective, x), atol, rtol, what=f"{layer.name} dx")
    for key, p in layer.params.items():
        layer.forward(x)
        layer.backward(dy)
        analytic = layer.grads[key].copy()
        assert_close(analytic, numeric_grad(objective, p), atol, rtol, what=f"{layer.name} d{key}")


def conv64(in_ch, out_ch, k, s, pad, groups=1, seed=0):
    """A float64 Conv2d with random weights and biases (for central-difference checks)."""
    layer = Conv2d(in_ch, out_ch, k, s, pad, dtype=np.float64, groups=groups)
    rng = np.random.default_rng(seed)
    layer.params["W"][...] = rng.standard_normal(layer.params["W"].shape)
    layer.params["b"][...] = rng.standard_normal(out_ch)
    return layer


def one_line_error(capsys, rc, *words):
    """Assert exit 2 and a single 'error: ...' line on stderr holding ``words``."""
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), err
    assert sum(line.startswith("error") for line in lines) == 1, err
    for w in words:
        assert w in lines[-1], (w, lines[-1])
