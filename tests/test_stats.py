"""The uncertainty and verdict rules of the paper's orderings, on cases whose answer is known."""
import numpy as np
import pytest

from zfraw.experiments import stats


def classifier_errors(rate, seeds=3, images=3000, spread=0.0, seed=0, truth=None):
    """Simulated 0/1 errors of ``seeds`` nets on the same images: each seed's error rate drawn
    around ``rate`` (``spread``), each image wrong with that probability."""
    rng = np.random.default_rng(seed)
    u = rng.random((seeds, images)) if truth is None else truth
    rates = rate + spread * rng.standard_normal(seeds)
    return [u[i] < rates[i] for i in range(seeds)]


def brute_force(per_seed_a, per_seed_b=None, resamples=4000, seed=1):
    """The two-level bootstrap as written in words: resample seed indices, then image indices."""
    rng = np.random.default_rng(seed)
    a = np.asarray(per_seed_a, float)
    d = a if per_seed_b is None else a - np.asarray(per_seed_b, float)
    s, n = d.shape
    out = np.empty(resamples)
    for r in range(resamples):
        seeds = rng.integers(0, s, s)
        out[r] = np.mean([d[i, rng.integers(0, n, n)].mean() for i in seeds])
    return out


def test_the_count_shortcut_matches_resampling_indices():
    a = classifier_errors(0.35, images=400, spread=0.03, seed=2)
    b = classifier_errors(0.40, images=400, spread=0.03, seed=3)
    row = stats.error_interval(a, resamples=20_000)
    ref = np.quantile(brute_force(a), [0.025, 0.975])
    np.testing.assert_allclose(row["ci95"], ref, atol=0.006)
    assert row["mean"] == pytest.approx(np.mean(a))
    diff = stats.difference_interval(a, b, resamples=20_000)
    ref = np.quantile(brute_force(a, b), [0.025, 0.975])
    np.testing.assert_allclose(diff["ci95"], ref, atol=0.008)
    assert diff["difference"] == pytest.approx(np.mean(a) - np.mean(b))
    assert (diff["seeds"], diff["images"]) == (3, 400)


def test_a_known_difference_holds_and_its_mirror_is_reversed():
    truth = np.random.default_rng(5).random((3, 3000))   # shared images: a paired comparison
    better = classifier_errors(0.30, truth=truth, spread=0.005, seed=6)
    worse = classifier_errors(0.36, truth=truth, spread=0.005, seed=7)
    d = stats.difference_interval(better, worse)
    assert d["ci95"][1] < 0 and d["difference"] == pytest.approx(-0.06, abs=0.01)
    assert stats.verdict(d["ci95"]) == "holds"
    assert stats.verdict(stats.difference_interval(worse, better)["ci95"]) == "reversed"


def test_no_difference_is_not_resolved_and_within_a_margin_holds():
    a = classifier_errors(0.40, seed=8)
    b = classifier_errors(0.40, seed=9)              # the same rate, independent mistakes
    d = stats.difference_interval(a, b)
    assert d["ci95"][0] < 0 < d["ci95"][1]
    assert stats.verdict(d["ci95"]) == "not resolved"
    assert stats.verdict(d["ci95"], margin=0.04) == "holds"       # about +-1.6 points wide
    assert stats.verdict(d["ci95"], margin=0.005) == "not resolved"
    far = stats.difference_interval(classifier_errors(0.2, seed=10), b)
    assert stats.verdict(far["ci95"], margin=0.02) == "reversed"


def test_seed_variation_widens_the_interval():
    narrow = stats.error_interval(classifier_errors(0.4, spread=0.0, seed=11))
    wide = stats.error_interval(classifier_errors(0.4, spread=0.05, seed=11))
    width = lambda r: r["ci95"][1] - r["ci95"][0]              # noqa: E731
    assert width(wide) > 2 * width(narrow)
    assert narrow["ci95"][0] < 0.4 < narrow["ci95"][1]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="same seeds and images"):
        stats.difference_interval([[0, 1, 1]], [[0, 1]])
    with pytest.raises(ValueError, match="one error vector per seed"):
        stats.error_interval([])
    with pytest.raises(ValueError, match="margin must be positive"):
        stats.verdict([-0.1, 0.1], margin=0)
    with pytest.raises(ValueError, match="low <= high"):
        stats.verdict([0.1, -0.1])
