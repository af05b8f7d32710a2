"""Float64 central-difference gradient checking, shared by the tests."""
from __future__ import annotations

import numpy as np


def tie_free(shape, seed=0, scale=1.0):
    """A shuffled arange scaled to about [-scale, scale]: no two entries equal (no pooling ties,
    no ReLU exactly at 0), as Chainer's tests do."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    values = (np.arange(n) - (n - 1) / 2) / max(n, 1) * 2 * scale + 0.5 / max(n, 1)
    return rng.permutation(values).reshape(shape).astype(np.float64)


def numeric_grad(f, x, eps=1e-6):
    """d f / d x by central differences, f: () -> float evaluated with x modified in place."""
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = f()
        x[i] = old - eps
        fm = f()
        x[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def assert_close(actual, expected, atol=1e-6, rtol=1e-5, what=""):
    """|actual - expected| <= atol + rtol*|expected| elementwise, with a useful message."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    err = np.abs(actual - expected) - (atol + rtol * np.abs(expected))
    worst = np.unravel_index(np.argmax(err), err.shape) if err.size else ()
    assert err.size == 0 or err.max() <= 0, (
        f"{what}: max violation {err.max():.3g} at {worst}: {actual[worst]} vs {expected[worst]}")
