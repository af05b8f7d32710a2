"""Uncertainty of trained nets' errors, and the verdict rule for the paper's orderings.

Written before any seeded run, so that no rule was chosen after seeing the numbers.

The procedure is a two-level bootstrap: the seeds are resampled with replacement, then the
validation images within each resampled seed. Both sources of variation count: a net trained
with another seed is another net, and the validation images are a sample of the images the
claim is about.

Resampling N images with replacement and averaging their 0/1 errors only depends on how many of
the draws were errors, which is Binomial(N, p) for a seed whose error rate is p; for a paired
difference of two nets on the same images each image contributes -1, 0 or +1, and the counts of
the three are Multinomial(N, shares). So the bootstrap draws those counts directly: the same
distribution as resampling index arrays, without building them (tests/test_stats.py checks the
two against each other).

Verdicts, for an ordering "a beats b" (a's error lower, as the paper has it), from the 95% interval
of err(a) - err(b):
- ``holds``: the interval lies wholly below 0 (the paper's direction);
- ``reversed``: it lies wholly above 0;
- ``not resolved``: it contains 0.
For a claim of little or no difference ("removing conv3-4 costs little") with an equivalence
margin m declared beside the paper's numbers:
- ``holds``: the whole interval lies within [-m, m];
- ``reversed``: it lies wholly outside (entirely above m or below -m);
- ``not resolved``: otherwise.
"""
from __future__ import annotations

import numpy as np

VERDICTS = ("holds", "reversed", "not resolved")
RESAMPLES = 10_000
LEVEL = 0.95


def _errors(per_seed) -> np.ndarray:
    """A list of per-seed 0/1 error vectors over the same images -> (seeds, images) bool."""
    e = np.asarray([np.asarray(x, dtype=bool) for x in per_seed])
    if e.ndim != 2 or e.shape[0] < 1 or e.shape[1] < 1:
        raise ValueError("expected one error vector per seed, all over the same images, got "
                         f"shape {e.shape}")
    return e


def _interval(draws: np.ndarray, level: float) -> list:
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)]


def error_interval(per_seed, resamples: int = RESAMPLES, level: float = LEVEL,
                   seed: int = 0) -> dict:
    """One row: its mean error over seeds and images, and its ``level`` bootstrap interval.

    per_seed: S vectors (N,) of 0/1 errors (1: the net got the image wrong), one per seed, over
    the same N images. Returns {'mean', 'ci95': [low, high], 'seeds': S, 'images': N} with
    errors as fractions."""
    e = _errors(per_seed)
    s, n = e.shape
    rng = np.random.default_rng(seed)
    rates = e.mean(axis=1)                                        # (S,)
    picked = rates[rng.integers(0, s, size=(resamples, s))]       # seeds resampled
    draws = rng.binomial(n, picked) / n                           # then images, per seed
    return {"mean": float(rates.mean()), "ci95": _interval(draws.mean(axis=1), level),
            "seeds": s, "images": n}


def difference_interval(a_per_seed, b_per_seed, resamples: int = RESAMPLES,
                        level: float = LEVEL, seed: int = 0) -> dict:
    """err(a) - err(b), paired: seed i of a with seed i of b, image j with image j.

    a_per_seed, b_per_seed: S vectors (N,) of 0/1 errors each, in the same seed order and over
    the same images. Returns {'difference', 'ci95': [low, high], 'seeds', 'images'}; negative
    differences mean a has the lower error."""
    a, b = _errors(a_per_seed), _errors(b_per_seed)
    if a.shape != b.shape:
        raise ValueError(f"a paired difference needs the same seeds and images: {a.shape} "
                         f"against {b.shape}")
    s, n = a.shape
    d = a.astype(np.int8) - b.astype(np.int8)                     # (S, N) in {-1, 0, 1}
    shares = np.stack([(d == -1).mean(1), (d == 0).mean(1), (d == 1).mean(1)], axis=1)
    rng = np.random.default_rng(seed)
    picked = rng.integers(0, s, size=(resamples, s))
    draws = np.empty((resamples, s))
    for i in range(s):               # a handful of seeds; each column one multinomial call
        counts = rng.multinomial(n, shares[picked[:, i]])         # (resamples, 3)
        draws[:, i] = (counts[:, 2] - counts[:, 0]) / n
    return {"difference": float(d.mean()), "ci95": _interval(draws.mean(axis=1), level),
            "seeds": s, "images": n}


def verdict(ci95, margin: float | None = None) -> str:
    """The verdict on "a beats b" (``margin`` None) or "a and b differ by little" (``margin``:
    the equivalence margin, as a fraction) from the 95% interval of err(a) - err(b)."""
    lo, hi = ci95
    if lo > hi:
        raise ValueError(f"an interval needs low <= high, got {ci95}")
    if margin is None:
        return "holds" if hi < 0 else "reversed" if lo > 0 else "not resolved"
    if margin <= 0:
        raise ValueError(f"an equivalence margin must be positive, got {margin}")
    if -margin <= lo and hi <= margin:
        return "holds"
    if lo > margin or hi < -margin:
        return "reversed"
    return "not resolved"
