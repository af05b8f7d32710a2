"""ImageSource: centre crops, mean, scale and box conversion in zfraw.data's conventions."""
import numpy as np
import pytest

from zfraw.viz.source import ImageSource


def test_inputs_pixels_and_boxes():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 10, 10, 3), dtype=np.uint8)
    mean = rng.random((10, 10, 3)).astype(np.float32) * 50
    boxes = np.array([[1, 2, 9, 6], [-1, -1, -1, -1], [0, 0, 10, 10], [3, 3, 4, 4], [5, 0, 8, 2]])
    src = ImageSource(images, mean, 8, np.arange(5) % 2, boxes, scale=0.5)
    x = src.inputs([3, 0])
    np.testing.assert_allclose(x[1, 2], (images[0, 1:9, 1:9, 2] - mean[1:9, 1:9, 2]) * 0.5)
    np.testing.assert_allclose(src.to_pixels(x), src.pixels([3, 0]), atol=1e-4)
    # (x0, y0, x1, y1) stored -> (y0, x0, y1, x1) in the 8x8 crop at offset 1, clipped
    np.testing.assert_array_equal(src.boxes[0], [1, 0, 5, 8])
    np.testing.assert_array_equal(src.boxes[1], [-1, -1, -1, -1])
    np.testing.assert_array_equal(src.boxes[2], [0, 0, 8, 8])
    starts = [s for s, _ in src.batches(2)]
    assert starts == [0, 2, 4]
    np.testing.assert_array_equal(src.class_indices(1), [1, 3])


def test_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        ImageSource(np.zeros((2, 8, 8, 3)), None, 8, [0, 0])
    with pytest.raises(ValueError, match="crop"):
        ImageSource(np.zeros((2, 8, 8, 3), np.uint8), None, 9, [0, 0])
    with pytest.raises(ValueError, match="labels"):
        ImageSource(np.zeros((2, 8, 8, 3), np.uint8), None, 8, [0])


def test_inputs_are_the_evaluation_batches_bit_for_bit():
    # One evaluation view: the figures must see exactly what training's validation sees.
    from zfraw.data import BatchLoader, load_spec, mean_image

    train, val = load_spec("synthetic:200", 40, seed=3)
    mean, crop, scale = mean_image(train.images), 33, 0.015625    # crop < stored size 40
    loader = BatchLoader(val, mean, crop, 16, scale=scale, prefetch=False)
    want = np.concatenate([x for x, _ in loader.eval_batches()])
    src = ImageSource(val.images, mean, crop, val.labels, scale=scale)
    got = src.inputs(range(len(val)))
    assert got.dtype == np.float32 and got.shape == (len(val), 3, crop, crop)
    assert np.array_equal(got, want)
    assert np.array_equal(np.concatenate([x for _, x in src.batches(7)]), want)
    assert src.offset == (40 - crop) // 2 == 3
