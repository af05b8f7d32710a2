"""Streaming top-k against a brute-force sort of all activations."""
import numpy as np
import pytest

from zfraw.viz.topk import StreamingTopK


def brute_force(acts, k):
    """acts (N, C, H, W) -> per map the k best (value, image, y, x), strongest first."""
    n, c, h, w = acts.shape
    out = []
    for m in range(c):
        flat = acts[:, m].ravel()
        order = np.argsort(-flat, kind="stable")[:k]
        img, pos = np.divmod(order, h * w)
        out.append((flat[order], img, pos // w, pos % w))
    return out


@pytest.mark.parametrize("batch", [1, 3, 7, 50])
@pytest.mark.parametrize("k", [1, 4, 9])
def test_streaming_equals_brute_force(batch, k):
    rng = np.random.default_rng(batch * 10 + k)
    acts = rng.permutation(17 * 5 * 4 * 3).astype(np.float32).reshape(17, 5, 4, 3)  # tie-free
    acts = np.maximum(acts - 300, 0) + acts / 1e3  # many small values, still distinct
    tk = StreamingTopK(k)
    for s in range(0, len(acts), batch):
        tk.update(acts[s:s + batch], s)
    res = tk.result()
    for m, (v, img, y, x) in enumerate(brute_force(acts, k)):
        np.testing.assert_allclose(res.values[m], v, rtol=1e-7)
        np.testing.assert_array_equal(res.image[m], img)
        np.testing.assert_array_equal(res.y[m], y)
        np.testing.assert_array_equal(res.x[m], x)
        np.testing.assert_allclose(acts[res.image[m], m, res.y[m], res.x[m]], v)


def test_fc_units_and_short_dataset():
    acts = np.array([[1.0, 5.0], [3.0, 2.0]], np.float32)  # 2 images, 2 units
    tk = StreamingTopK(3)
    tk.update(acts[:1], 0)
    tk.update(acts[1:], 1)
    res = tk.result()
    np.testing.assert_array_equal(res.image, [[1, 0, -1], [0, 1, -1]])
    np.testing.assert_array_equal(res.values[:, :2], [[3, 1], [5, 2]])
    assert np.isneginf(res.values[:, 2]).all()
    np.testing.assert_array_equal(res.y, 0)


def test_shape_change_is_an_error():
    tk = StreamingTopK(2)
    tk.update(np.zeros((2, 3, 4, 4), np.float32), 0)
    with pytest.raises(ValueError, match="maps"):
        tk.update(np.zeros((2, 4, 4, 4), np.float32), 2)
