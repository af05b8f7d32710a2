import numpy as np
import pytest

from zfraw.data import (BatchLoader, DataError, Dataset, center_crop, crop_batch, mean_image,
                        parse_spec, stored_size, ten_crop, ten_crop_offsets)


def _images(n=4, s=9, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, s, s, 3), dtype=np.uint8)


def test_mean_image_matches_float64_mean():
    imgs = _images(7, 5)
    np.testing.assert_allclose(mean_image(imgs, chunk=3), imgs.astype(np.float64).mean(0),
                               rtol=1e-6, atol=1e-5)


def test_crop_batch_against_hand_indexing():
    imgs = _images()
    mean = np.random.default_rng(1).uniform(0, 255, (9, 9, 3)).astype(np.float32)
    oy, ox, flip = np.array([0, 2, 4, 1]), np.array([4, 0, 3, 2]), np.array([False, True, False, True])
    out = crop_batch(imgs, mean, oy, ox, flip, 5)
    assert out.shape == (4, 3, 5, 5) and out.dtype == np.float32
    for n in range(4):
        ref = imgs[n].astype(np.float32) - mean
        ref = ref[oy[n]:oy[n] + 5, ox[n]:ox[n] + 5]
        if flip[n]:
            ref = ref[:, ::-1]
        np.testing.assert_allclose(out[n], ref.transpose(2, 0, 1), rtol=0, atol=1e-4)


def test_crop_out_of_bounds_raises():
    with pytest.raises(ValueError):
        crop_batch(_images(1), np.zeros((9, 9, 3), np.float32), [5], [0], [False], 5)


def test_ten_crop_positions():
    imgs = _images(2, 8)
    mean = np.zeros((8, 8, 3), np.float32)
    views = ten_crop(imgs, mean, 6)
    assert views.shape == (10, 2, 3, 6, 6)
    x = imgs.astype(np.float32).transpose(0, 3, 1, 2)      # (N, 3, 8, 8)
    corners = [x[..., :6, :6], x[..., :6, 2:], x[..., 2:, :6], x[..., 2:, 2:], x[..., 1:7, 1:7]]
    for i, ref in enumerate(corners):
        np.testing.assert_array_equal(views[i], ref)
        np.testing.assert_array_equal(views[i + 5], ref[..., ::-1])
    np.testing.assert_array_equal(center_crop(imgs, mean, 6), views[4])
    assert ten_crop_offsets(8, 6)[4] == (1, 1, False)


def test_training_epochs_are_deterministic_and_restartable():
    imgs = _images(10, 9)
    data = Dataset(imgs, np.arange(10) % 3, None, ["a", "b", "c"], ["a", "b", "c"])
    mean = mean_image(imgs)
    loader = BatchLoader(data, mean, crop=7, batch_size=3, seed=4)
    assert loader.steps_per_epoch() == 3
    full = list(loader.train_batches(epoch=2))
    again = list(BatchLoader(data, mean, 7, 3, seed=4, prefetch=False).train_batches(epoch=2))
    tail = list(loader.train_batches(epoch=2, start_step=1))
    for (x, y), (x2, y2) in zip(full, again):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    for (x, y), (x2, y2) in zip(full[1:], tail):
        np.testing.assert_array_equal(x, x2)
    other = list(loader.train_batches(epoch=3))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(full, other))
    # each batch is a set of crops of distinct images, with the right labels
    seen = np.concatenate([y for _, y in full])
    assert len(seen) == 9
    # a crop + flip of image i minus the mean's same crop: check batch 0 by brute force
    order, oy, ox, flip = loader.epoch_plan(2)
    rows = np.sort(order[:3])
    np.testing.assert_array_equal(full[0][0], crop_batch(imgs[rows], mean, oy[rows], ox[rows],
                                                         flip[rows], 7))
    np.testing.assert_array_equal(full[0][1], data.labels[rows])


def test_eval_batches_cover_the_set_in_order():
    imgs = _images(5, 8)
    data = Dataset(imgs, np.arange(5), None, list("abcde"), list("abcde"))
    loader = BatchLoader(data, np.zeros((8, 8, 3), np.float32), 6, 2)
    xs, ys = zip(*loader.eval_batches(ten=True))
    assert [x.shape for x in xs] == [(10, 2, 3, 6, 6), (10, 2, 3, 6, 6), (10, 1, 3, 6, 6)]
    np.testing.assert_array_equal(np.concatenate(ys), np.arange(5))


def test_prefetch_reraises_errors():
    data = Dataset(_images(4, 8), np.zeros(4, np.int64), None, ["a"], ["a"])
    loader = BatchLoader(data, np.zeros((3, 3, 3), np.float32), 6, 2)   # wrong mean shape
    with pytest.raises(IndexError):
        list(loader.train_batches(0))


def test_parse_spec(tmp_path):
    assert parse_spec("synthetic") == ("synthetic", None)
    assert parse_spec("synthetic:500") == ("synthetic", 500)
    assert parse_spec(f"folder:{tmp_path}") == ("folder", str(tmp_path))
    for bad, msg in (("imagenet:/x", "unknown dataset kind"), ("synthetic:ten", "positive integer"),
                     ("tiny-imagenet:", "needs a path"), (f"folder:{tmp_path}/nope", "no such")):
        with pytest.raises(DataError, match=msg):
            parse_spec(bad)


def test_stored_size_in_both_conventions():
    # zfraw's: the paper's 256 for 224, else crop * 9/8 (training runs and what reads them)
    assert [stored_size(c) for c in (224, 64, 32, 227, 256, 17)] == [256, 72, 36, 255, 288, 19]
    # the model zoo's: 256 for every input of 224..256 (imported nets' presets), else zfraw's
    zoo = [stored_size(c, convention="zoo") for c in (224, 227, 256, 223, 257, 64)]
    assert zoo == [256, 256, 256, 223 + 27, 257 + 32, 72]
    for crop in range(1, 400):                        # they part only for inputs of 225..256
        zfraw, zoo = stored_size(crop), stored_size(crop, convention="zoo")
        assert zfraw == (256 if crop == 224 else crop + crop // 8)
        assert zoo == (256 if 224 <= crop <= 256 else zfraw)
    # a run's --resize wins in both; None or 0 means the default
    assert stored_size(227, 300) == stored_size(227, 300, "zoo") == 300
    assert stored_size(64, None) == stored_size(64, 0) == 72
    with pytest.raises(ValueError, match="choose zfraw or zoo"):
        stored_size(64, convention="imagenet")
