"""srcnn/imaging.py: mod-crop, MATLAB's bicubic against Pillow's, the bicubic degradation, Gaussian filters."""

import numpy as np
import pytest
from PIL import Image

from srcnn.imaging import bicubic_degrade, gaussian_blur, gaussian_kernel, modcrop, resize_plane, separable_filter


def test_modcrop():
    assert modcrop(np.zeros((101, 77, 3)), 4).shape == (100, 76, 3)
    assert modcrop(np.zeros((99, 78)), 3).shape == (99, 78)


def test_resize_plane_matches_pillow_float_bicubic():
    plane = np.random.default_rng(0).uniform(0, 255, (20, 30)).astype(np.float32)
    resized = resize_plane(plane, (45, 10))
    assert resized.shape == (10, 45) and resized.dtype == np.float32
    expected = np.asarray(Image.fromarray(plane).resize((45, 10), Image.Resampling.BICUBIC))
    assert np.array_equal(resized, expected)


def test_bicubic_degrade_keeps_size_and_constants():
    assert bicubic_degrade(np.full((12, 18), 77.0, np.float32), 3).shape == (12, 18)
    np.testing.assert_allclose(bicubic_degrade(np.full((12, 18), 77.0, np.float32), 3), 77.0, atol=1e-3)


def test_bicubic_degrade_loses_detail():
    plane = np.random.default_rng(0).uniform(0, 255, (30, 30)).astype(np.float32)
    assert np.abs(bicubic_degrade(plane, 3) - plane).mean() > 10


def test_gaussian_kernel():
    taps = gaussian_kernel(1.5, radius=5)
    assert len(taps) == 11 and taps.sum() == pytest.approx(1.0)
    assert taps[5] / taps[4] == pytest.approx(np.exp(0.5 / 1.5**2))
    assert len(gaussian_kernel(1.0)) == 7


def test_separable_filter_sizes_and_box_values():
    plane = np.arange(36, dtype=float).reshape(6, 6)
    box = np.full(3, 1 / 3)
    valid = separable_filter(plane, box, "valid")
    assert valid.shape == (4, 4)
    assert valid[0, 0] == pytest.approx(plane[:3, :3].mean())
    assert separable_filter(plane, box, "edge").shape == (6, 6)
    with pytest.raises(ValueError):
        separable_filter(plane, box, "zeros")


def test_gaussian_blur_keeps_mean_of_constant_and_smooths_an_impulse():
    impulse = np.zeros((15, 15), np.float32)
    impulse[7, 7] = 100
    blurred = gaussian_blur(impulse, 1.0)
    assert blurred.shape == (15, 15)
    assert blurred.sum() == pytest.approx(100, rel=1e-5)
    assert blurred[7, 7] < 20
