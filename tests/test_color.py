import numpy as np
import pytest

from srcnn.color import rgb_to_y, rgb_to_ycbcr, to_uint8, ycbcr_to_rgb


def dense_rgb_sample():
    levels = np.arange(0, 256, 3)
    return np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3).astype(np.uint8)


def test_round_trip_within_one_level_over_dense_sample():
    rgb = dense_rgb_sample()
    assert len(rgb) == 86**3
    back = ycbcr_to_rgb(rgb_to_ycbcr(rgb))
    assert np.abs(back - rgb).max() < 1e-3
    assert np.array_equal(to_uint8(back), rgb)


@pytest.mark.parametrize(
    "rgb, expected",
    [
        # MATLAB BT.601 studio range: Y = 16 + 65.481 R + 128.553 G + 24.966 B (R, G, B in [0, 1]).
        ((0, 0, 0), (16.0, 128.0, 128.0)),
        ((255, 255, 255), (235.0, 128.0, 128.0)),
        ((255, 0, 0), (16 + 65.481, 128 - 37.797, 128 + 112.0)),
        ((0, 255, 0), (16 + 128.553, 128 - 74.203, 128 - 93.786)),
        ((0, 0, 255), (16 + 24.966, 128 + 112.0, 128 - 18.214)),
    ],
)
def test_known_colours(rgb, expected):
    np.testing.assert_allclose(rgb_to_ycbcr(np.array(rgb)), expected, atol=1e-4)
    np.testing.assert_allclose(rgb_to_y(np.array(rgb)), expected[0], atol=1e-4)


def test_rgb_to_y_matches_first_channel_and_keeps_shape():
    rgb = np.random.default_rng(1).integers(0, 256, (7, 5, 3))
    assert rgb_to_y(rgb).shape == (7, 5)
    np.testing.assert_allclose(rgb_to_y(rgb), rgb_to_ycbcr(rgb)[..., 0], atol=1e-4)


def test_to_uint8_rounds_half_up_and_clips():
    assert to_uint8(np.array([-3.0, 0.5, 1.5, 2.49, 254.5, 300.0])).tolist() == [0, 1, 2, 2, 255, 255]
