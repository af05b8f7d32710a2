"""Display helpers: padded crops keep pixels in place, grids tile row-major, PNGs round-trip."""
import numpy as np
import pytest
from PIL import Image

from zfraw.viz import images


def test_crop_padded_keeps_positions_and_pads():
    img = np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6)
    crop = images.crop_padded(img, (-2, 3, 3, 9), fill=-1)  # 2 rows above, 3 cols right outside
    assert crop.shape == (2, 5, 6)
    np.testing.assert_array_equal(crop[:, :2], -1)
    np.testing.assert_array_equal(crop[:, :, 3:], -1)
    np.testing.assert_array_equal(crop[:, 2:, :3], img[:, 0:3, 3:6])


def test_crop_recovers_bright_pixel():
    img = np.zeros((1, 10, 10), np.float32)
    img[0, 7, 1] = 1
    crop = images.crop_padded(img, (5, -3, 12, 4))
    ys, xs = np.nonzero(crop[0])
    assert (ys[0] + 5, xs[0] - 3) == (7, 1)


def test_grid_layout_and_png(tmp_path):
    tiles = [np.full((2, 3, 3), v, np.uint8) for v in (10, 20, 30)]
    g = images.grid(tiles, ncols=2, pad=1, bg=0)
    assert g.shape == (2 * 3 + 1, 2 * 4 + 1, 3)
    assert g[1, 1, 0] == 10 and g[1, 5, 0] == 20 and g[4, 1, 0] == 30 and g[4, 5, 0] == 0
    p = images.save_png(g, tmp_path / "sub" / "g.png")
    np.testing.assert_array_equal(np.asarray(Image.open(p)), g)


def test_normalisations():
    img = np.array([[[-2.0, 0.0, 1.0]]])
    np.testing.assert_array_equal(images.minmax_uint8(img)[0, :, 0], [0, 170, 255])
    np.testing.assert_array_equal(images.symmetric_uint8(img)[0, :, 0], [0, 128, 191])
    with pytest.raises(ValueError):
        images.to_hwc(np.zeros((2, 4, 4)))


def test_symmetric_percentile_saturates_outliers():
    img = np.zeros((1, 1, 200))
    img[0, 0, :199] = np.linspace(-1, 1, 199)
    img[0, 0, 199] = 100.0  # one outlier
    full = images.symmetric_uint8(img)[0, :, 0]
    clipped = images.symmetric_uint8(img, 99.0)[0, :, 0]
    assert full[0] > 120 and clipped[0] < 5 and clipped[199] == 255
