"""srcnn/color.py: MATLAB's BT.601 RGB <-> YCbCr, its exact round trip, rounding and clipping, known colours."""

import numpy as np
import pytest

from srcnn.color import rgb_to_y, rgb_to_ycbcr, to_uint8, ycbcr_to_rgb


def dense_rgb_sample():
    levels = np.arange(0, 256, 3)
    return np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3).astype(np.uint8)


def test_round_trip_is_exact_over_dense_sample():
    rgb = dense_rgb_sample().reshape(86 * 86, 86, 3)  # planes of any width, in bands of rows
    ycbcr = rgb_to_ycbcr(rgb)
    back = ycbcr_to_rgb(ycbcr[..., 0], ycbcr[..., 1], ycbcr[..., 2], np.zeros((86 * 86, 86, 4), np.uint8))
    assert np.array_equal(back[..., :3], rgb) and not back[..., 3].any()  # a fourth channel is left alone


def test_rgb8_clips_and_rounds():
    y = np.array([[16.0, 235.0, 300.0, 0.0, 126.0 + 0.5 / 1.164383562]], np.float32)  # the last: R = G = B = 128.5
    out = ycbcr_to_rgb(y, np.full_like(y, 128), np.full_like(y, 128), np.empty((1, 5, 3), np.uint8))
    assert out[0, :, 0].tolist() == [0, 255, 255, 0, 129] and np.array_equal(out[..., 0], out[..., 2])


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
