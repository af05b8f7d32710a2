import numpy as np
import pytest

from zfraw.data import make_synthetic, synthetic_splits
from zfraw.data.synthetic import CLASSES


def test_deterministic_and_prefix_stable():
    a = make_synthetic(300, seed=5, size=48)
    b = make_synthetic(300, seed=5, size=48)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    # image i depends only on (seed, i): a shorter set is a prefix of a longer one
    c = make_synthetic(40, seed=5, size=48)
    for x, y in zip(a, c):
        np.testing.assert_array_equal(x[:40], y)
    d = make_synthetic(40, seed=6, size=48)
    assert not np.array_equal(c[0], d[0])


def test_shapes_dtypes_and_classes():
    images, labels, boxes = make_synthetic(500, seed=0, size=64)
    assert images.shape == (500, 64, 64, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and boxes.shape == (500, 4)
    counts = np.bincount(labels, minlength=len(CLASSES))
    assert counts.min() > 25            # every class present, roughly balanced


def test_boxes_are_tight_bounds_of_the_object():
    images, labels, boxes, masks = make_synthetic(200, seed=1, size=64, return_masks=True)
    for m, (x0, y0, x1, y1) in zip(masks, boxes):
        ys, xs = np.nonzero(m)
        assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
        assert m.sum() > 30             # a visible object in every image


def test_object_pixels_have_one_colour_up_to_noise():
    images, _, _, masks = make_synthetic(50, seed=2, size=64, return_masks=True)
    for img, m in zip(images.astype(float), masks):
        obj = img[m]
        # per-channel spread of the object's pixels is the pixel noise only (sigma 8, clipped)
        assert np.median(np.abs(obj - np.median(obj, 0)), 0).max() < 12


def test_colour_alone_does_not_give_the_class():
    """A nearest-class-mean classifier on mean object colour is near chance (10%)."""
    images, labels, _, masks = make_synthetic(2000, seed=3, size=48, return_masks=True)
    col = np.stack([img[m].mean(0) for img, m in zip(images.astype(float), masks)])
    means = np.stack([col[labels == k].mean(0) for k in range(10)])
    pred = np.argmin(((col[:, None] - means[None]) ** 2).sum(-1), 1)
    assert (pred == labels).mean() < 0.2


def test_splits_differ():
    (tr, trl, _), (va, val, _) = synthetic_splits(64, 32, seed=0, size=32)
    assert tr.shape == (64, 32, 32, 3) and va.shape == (32, 32, 32, 3)
    assert not np.array_equal(tr[:32], va)


def test_bad_arguments():
    with pytest.raises(ValueError):
        make_synthetic(10, size=8)
