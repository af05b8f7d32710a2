"""Image transforms against exact array operations, and the invariance curves' distances."""
import numpy as np
import pytest

from zfraw.viz import invariance as inv


@pytest.fixture
def img():
    return np.random.default_rng(0).standard_normal((3, 9, 9)).astype(np.float32)


def test_rotate_quarter_turns_equal_rot90(img):
    np.testing.assert_allclose(inv.rotate(img, 90), np.rot90(img, 1, axes=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(inv.rotate(img, -90), np.rot90(img, -1, axes=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(inv.rotate(img, 0), img, atol=1e-6)


def test_scale_identity_and_zoom(img):
    np.testing.assert_allclose(inv.scale(img, 1.0), img, atol=1e-6)
    small = inv.scale(img, 0.5)
    assert np.all(small[:, 0, :] == 0) and np.all(small[:, :, -1] == 0)  # uncovered border
    with pytest.raises(ValueError):
        inv.scale(img, 0)


def test_translate(img):
    t = inv.translate(img, 2, -3)
    np.testing.assert_array_equal(t[:, 2:, :6], img[:, :7, 3:])
    np.testing.assert_array_equal(t[:, :2], 0)
    np.testing.assert_array_equal(t[:, :, 6:], 0)
    np.testing.assert_array_equal(inv.translate(img, 20, 0), 0)


def test_invariance_curves_distances(img):
    images = np.stack([img, -img])

    def features(x):
        flat = x.reshape(len(x), -1)
        return np.full((len(x), 2), 0.5), {"a": flat, "b": 2 * flat}

    c = inv.invariance_curves(features, images, np.array([0, 1]), "translate", [0, 1], ["a", "b"])
    np.testing.assert_allclose(c["dist"]["a"][0], 0)
    expect = np.linalg.norm(inv.translate(img, 1, 0) - img)   # the paper's: vertical
    np.testing.assert_allclose(c["dist"]["a"][1], [expect, expect], rtol=1e-5)
    np.testing.assert_allclose(c["dist"]["b"][1], 2 * expect, rtol=1e-5)
    np.testing.assert_allclose(c["prob"], 0.5)
    with pytest.raises(ValueError, match="unknown transform"):
        inv.invariance_curves(features, images, [0, 1], "shear", [1], ["a"])


def test_translation_is_vertical(img):
    """The paper's Fig. 5 moves the image vertically: rows shift, columns stay."""
    t = inv.TRANSFORMS["translate"](img, 2)
    np.testing.assert_array_equal(t[:, 2:], img[:, :-2])
    np.testing.assert_array_equal(t[:, :2], 0)
    t = inv.TRANSFORMS["translate"](img, -3)
    np.testing.assert_array_equal(t[:, :-3], img[:, 3:])
