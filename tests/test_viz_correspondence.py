"""The correspondence measure Delta on hand-computed cases."""
import numpy as np
import pytest

from zfraw.viz.correspondence import correspondence, hamming_delta, random_boxes


def test_hamming_delta_hand_case():
    eps = np.array([[1, -1, 0, 2], [1, 1, 0, -3], [-1, -1, 0, 2]], np.float32)
    # sign rows a=[+,-,0,+], b=[+,+,0,-], c=[-,-,0,+]: H(a,b)=2/4, H(a,c)=1/4, H(b,c)=3/4,
    # each counted for (i,j) and (j,i).
    assert hamming_delta(eps) == pytest.approx(2 * (0.5 + 0.25 + 0.75))
    with pytest.raises(ValueError):
        hamming_delta(eps[:1])


def test_same_part_in_identical_images_is_perfectly_consistent():
    rng = np.random.default_rng(1)
    img = rng.standard_normal((1, 8, 8)).astype(np.float32) + 3
    images = np.stack([img] * 4)

    def features(x):  # identity features: eps is the occluded pixels themselves
        return None, {"id": x.reshape(len(x), -1)}

    res = correspondence(features, images, [(1, 1, 4, 4)] * 4, ["id"], n_random=5, seed=0)
    assert res["id"]["part"] == 0.0
    assert res["id"]["pairs"] == 12
    assert res["id"]["random_mean"] > 0  # random places differ between images


def test_random_boxes_keep_size_and_stay_inside():
    rng = np.random.default_rng(0)
    for y0, x0, y1, x1 in random_boxes(rng, 10, 12, [(0, 0, 4, 5)] * 50):
        assert (y1 - y0, x1 - x0) == (4, 5)
        assert 0 <= y0 and y1 <= 10 and 0 <= x0 and x1 <= 12
