"""srcnn/metrics.py: PSNR and SSIM on known errors and images, and the border shave of the paper's code."""

import math

import numpy as np
import pytest

from srcnn.metrics import psnr, shave, ssim


def test_psnr_of_constant_error():
    a = np.full((8, 8), 100.0)
    assert psnr(a, a + 5) == pytest.approx(20 * math.log10(255 / 5))  # 34.1514 dB
    assert psnr(a, a + 5) == pytest.approx(34.1514, abs=1e-4)


def test_psnr_of_mixed_error():
    a = np.zeros((2, 2))
    b = np.array([[0.0, 2.0], [4.0, 0.0]])  # MSE = (4 + 16) / 4 = 5
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 5))


def test_psnr_of_identical_images_is_infinite():
    assert psnr(np.ones((3, 3)), np.ones((3, 3))) == math.inf


def test_ssim_of_identical_images_is_one():
    image = np.random.default_rng(0).uniform(0, 255, (32, 32))
    assert ssim(image, image) == pytest.approx(1.0)


def test_ssim_of_two_constant_images():
    # Both variances are zero, so SSIM = (2ab + C1) / (a² + b² + C1) with C1 = (0.01·255)².
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 110 + c1) / (100**2 + 110**2 + c1)
    assert ssim(np.full((20, 20), 100.0), np.full((20, 20), 110.0)) == pytest.approx(expected)
    assert expected == pytest.approx(0.995477, abs=1e-6)


def test_ssim_of_image_and_its_negative_is_negative():
    image = np.random.default_rng(0).uniform(0, 255, (32, 32))
    assert ssim(image, 255 - image) < -0.9


def test_shave():
    array = np.arange(100).reshape(10, 10)
    assert shave(array, 3).shape == (4, 4)
    assert shave(array, 3)[0, 0] == 33
    assert shave(array, 0).shape == (10, 10)
