"""First-layer diagnostics on filters and activations whose answer is known."""
import numpy as np
import pytest

from zfraw.viz import filters


def test_band_shares_of_known_filters():
    k = 11
    yy, xx = np.mgrid[:k, :k]
    blur = np.exp(-((yy - 5) ** 2 + (xx - 5) ** 2) / (2 * 2.5 ** 2))[None, None].repeat(3, 1)
    checker = np.fromfunction(lambda c, i, j: (-1.0) ** (i + j), (3, k, k))[None]
    mid = np.cos(2 * np.pi * 0.25 * xx)[None, None].repeat(3, axis=1)  # 0.5 Nyquist along x
    s = filters.band_shares(np.concatenate([blur, checker, mid]), n_fft=64)
    total = s["low"] + s["mid"] + s["high"]
    np.testing.assert_allclose(total, 1.0, rtol=1e-12)
    assert s["low"][0] > 0.9 and s["high"][1] > 0.9 and s["mid"][2] > 0.6
    d = filters.dominated(s, 0.8)
    assert list(d["low"]) == [0] and list(d["high"]) == [1]


def test_positive_fraction_and_dead():
    pf = filters.PositiveFraction()
    a = np.zeros((2, 3, 2, 2))
    a[:, 0] = 1
    a[0, 1, 0, 0] = 1
    pf.update(a)
    pf.update(-a)
    np.testing.assert_allclose(pf.result(), [0.5, 1 / 16, 0])
    assert list(filters.dead_filters(pf.result(), 0.1)) == [1, 2]


def test_nyquist_share_and_shift_sensitivity():
    smooth = np.cos(2 * np.pi * np.arange(8) / 8)[None, None, None, :].repeat(8, axis=2)
    checker = np.fromfunction(lambda i, j: (-1.0) ** (i + j), (8, 8))[None, None]
    assert filters.nyquist_share(smooth) < 0.05
    assert filters.nyquist_share(checker) > 0.99

    def features(x):  # pooled identity features are unchanged by a shift of a zero border
        return None, {"l": x}

    img = np.zeros((1, 1, 8, 8), np.float32)
    img[0, 0, 2, 2] = 1
    np.testing.assert_allclose(filters.shift_sensitivity(features, img, "l", [1, 2]), 0,
                               atol=1e-7)

    def subsample(x):  # stride-2 sampling: aliased, a 1-pixel shift can hide the pixel
        return None, {"l": x[:, :, ::2, ::2]}

    np.testing.assert_allclose(filters.shift_sensitivity(subsample, img, "l", [1, 2]), [1, 0])


def test_filter_grid_normalises_each_filter():
    w = np.stack([np.full((3, 2, 2), 5.0), np.arange(12.0).reshape(3, 2, 2) * 100])
    g = filters.filter_grid(w, ncols=2, zoom=1)
    assert g.shape == (2 + 2, 2 * 3 + 1, 3)
    assert g[1:3, 4:6].min() == 0 and g[1:3, 4:6].max() == 255


def test_spectral_concentration_tells_patterns_from_noise():
    rng = np.random.default_rng(0)
    noise = filters.spectral_concentration(rng.standard_normal((300, 3, 5, 5)))
    assert abs(noise.mean() - 0.22) < 0.02          # white noise: about 0.22 at any size
    assert abs(filters.spectral_concentration(rng.standard_normal((300, 3, 11, 11))).mean()
               - 0.22) < 0.02
    yy, xx = np.mgrid[-2:3, -2:3]
    gabors = np.stack([np.cos(2 * np.pi * (xx * np.cos(t) + yy * np.sin(t)) / 4)
                       * np.exp(-(xx ** 2 + yy ** 2) / 4) for t in np.linspace(0, 3, 6)])
    edges = filters.spectral_concentration(np.repeat(gabors[:, None], 3, axis=1))
    assert edges.min() > 0.55
    # colour opponency: the same blob, opposite signs in two channels
    blob = np.exp(-(xx ** 2 + yy ** 2) / 2.0)
    assert filters.spectral_concentration(np.stack([blob, -blob, 0 * blob])[None])[0] > 0.45
    # each channel's mean is removed: a flat colour has no pattern, and scaling changes nothing
    assert filters.spectral_concentration(np.ones((1, 3, 5, 5)))[0] == 0
    np.testing.assert_allclose(filters.spectral_concentration(7 * gabors[:, None]), edges)
    with pytest.raises(ValueError, match="F, C, k, k"):
        filters.spectral_concentration(gabors)


def test_diagnostics_report_the_first_layers_structure():
    from zfraw.nets import build
    from zfraw.viz.source import ImageSource

    net = build("zf-32", 10, seed=1, init="he", width=0.125)
    images = np.random.default_rng(2).integers(0, 256, (6, 36, 36, 3), dtype=np.uint8)
    source = ImageSource(images, None, 32, np.arange(6) % 3, scale=1 / 64)
    d = filters.diagnostics(net, source, limit=6, batch_size=3, shift_images=2)
    expected = filters.spectral_concentration(net.layer("conv1").params["W"])
    np.testing.assert_allclose(d["structure"], expected)
    assert d["mean_structure"] == pytest.approx(expected.mean())
