"""Image quality metrics on 0..255 planes, following the SRCNN authors' evaluation code."""

import numpy as np

from srcnn.imaging import gaussian_kernel, separable_filter


def shave(array, border):
    """Drop `border` pixels on every side of an (H, W, ...) array (the authors' `shave`)."""
    if border == 0:
        return array
    return array[border:-border, border:-border]


def psnr(reference, estimate, data_range=255.0):
    """Peak signal-to-noise ratio in dB, 20·log10(data_range / RMSE), over all elements; inf when equal."""
    difference = np.asarray(reference, dtype=np.float64) - np.asarray(estimate, dtype=np.float64)
    mse = np.mean(difference**2)
    if mse == 0:
        return float("inf")
    return float(10 * np.log10(data_range**2 / mse))


def ssim(reference, estimate, data_range=255.0):
    """Mean SSIM of two (H, W) planes (Wang et al. 2004 reference code: 11×11 Gaussian, sigma 1.5, K = 0.01, 0.03,
    'valid' filtering, so H and W must be at least 11)."""
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(estimate, dtype=np.float64)
    taps = gaussian_kernel(1.5, radius=5)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    mu_a = separable_filter(a, taps, "valid")
    mu_b = separable_filter(b, taps, "valid")
    var_a = separable_filter(a * a, taps, "valid") - mu_a**2
    var_b = separable_filter(b * b, taps, "valid") - mu_b**2
    covariance = separable_filter(a * b, taps, "valid") - mu_a * mu_b
    numerator = (2 * mu_a * mu_b + c1) * (2 * covariance + c2)
    denominator = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(np.mean(numerator / denominator))
