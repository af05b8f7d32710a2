"""Occlusion sweeps: grid geometry, batching invariance, and the in-box drop share on a model
whose evidence lies in a known box."""
import numpy as np
import pytest

from zfraw.viz.occlusion import (drop_share_in_box, grid_centres, occlude, occlusion_sweep,
                                 square_boxes)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def toy_forward(weights):
    """A linear classifier on pixels plus a 'layer' of squared pixels: (probs, act)."""
    def forward(x):
        return softmax(x.reshape(len(x), -1) @ weights), x ** 2
    return forward


def test_grid_and_boxes():
    np.testing.assert_array_equal(grid_centres(10, 4), [2, 6])
    boxes, ys, xs = square_boxes(10, 8, size=3, stride=4)
    assert len(boxes) == len(ys) * len(xs) == 4
    assert boxes[1] == (1, 5, 4, 8)
    out = occlude(np.ones((1, 4, 4), np.float32), [(-1, -1, 2, 1)], fill=0)
    np.testing.assert_array_equal(out[0, 0, :2, :1], 0)
    assert out.sum() == 16 - 2


@pytest.mark.parametrize("batch", [1, 5, 1000])
def test_batching_matches_one_at_a_time(batch):
    rng = np.random.default_rng(0)
    img = rng.standard_normal((3, 12, 12)).astype(np.float32)
    fwd = toy_forward(rng.standard_normal((3 * 12 * 12, 4)).astype(np.float32))
    m = occlusion_sweep(fwd, img, label=2, size=4, stride=3, batch_size=batch)
    boxes, ys, xs = square_boxes(12, 12, 4, 3)
    p0, a0 = fwd(img[None])
    fmap = int(np.argmax(a0[0].reshape(3, -1).max(axis=1)))
    assert m.fmap == fmap
    for k, b in enumerate(boxes):
        p, a = fwd(occlude(img, [b]))
        i, j = divmod(k, len(xs))
        np.testing.assert_allclose(m.prob_true[i, j], p[0, 2], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(m.act[i, j], a[0, fmap].sum(), rtol=1e-5)
        assert m.top_class[i, j] == p[0].argmax()


def test_drop_share_when_evidence_is_in_the_box():
    # Class 1's logit is the sum of the pixels of rows 4..7, cols 2..5: only occluders that
    # touch that box can lower p(1).
    h = w = 16
    mask = np.zeros((1, h, w), np.float32)
    mask[0, 4:8, 2:6] = 1
    weights = np.stack([np.zeros(h * w), mask.ravel()], axis=1).astype(np.float32)
    img = np.ones((1, h, w), np.float32)
    m = occlusion_sweep(toy_forward(weights), img, label=1, size=3, stride=2)
    share, area = drop_share_in_box(m, (3, 1, 9, 7))   # the box grown by the occluder's reach
    assert share == pytest.approx(1.0)
    assert area == pytest.approx(9 / 64)
    share_tight, _ = drop_share_in_box(m, (4, 2, 8, 6))
    assert 0 < share_tight < 1


def test_net_sweep_batching_matches_one_at_a_time():
    from zfraw.nets import build
    from zfraw.viz.forward import probs_and_map

    net = build("zf-32", 4, seed=0, init="he", width=0.1)
    img = np.random.default_rng(0).standard_normal((3, 32, 32)).astype(np.float32)
    one = occlusion_sweep(probs_and_map(net, "relu5", batch_size=1), img, 1, 8, 6, batch_size=1)
    many = occlusion_sweep(probs_and_map(net, "relu5", batch_size=64), img, 1, 8, 6,
                           batch_size=25)
    assert one.fmap == many.fmap and one.act.shape == (5, 5)
    np.testing.assert_allclose(many.act, one.act, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(many.prob_true, one.prob_true, rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal(many.top_class, one.top_class)
    assert np.ptp(one.prob_true) > 0  # the occluder does change the output
