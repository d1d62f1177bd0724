"""RGB <-> YCbCr the way MATLAB's rgb2ycbcr/ycbcr2rgb do it (ITU-R BT.601, studio range).

Both directions take and return float arrays on the 0..255 scale, layout (..., 3). Y lies in [16, 235] and
Cb, Cr in [16, 240] for RGB in [0, 255]. The inverse is the exact matrix inverse, not a second table of
rounded constants.
"""

import numpy as np

# Rows give Y, Cb, Cr from R, G, B in [0, 1], scaled to 0..255 (MATLAB rgb2ycbcr).
_RGB_TO_YCBCR = np.array(
    [
        [65.481, 128.553, 24.966],
        [-37.797, -74.203, 112.0],
        [112.0, -93.786, -18.214],
    ]
) / 255.0
_OFFSET = np.array([16.0, 128.0, 128.0])
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)


def rgb_to_ycbcr(rgb):
    """(..., 3) RGB, any numeric dtype, 0..255 -> (..., 3) float32 YCbCr, 0..255 scale (Y in [16, 235])."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return (rgb @ _RGB_TO_YCBCR.T + _OFFSET).astype(np.float32)


def rgb_to_y(rgb):
    """(..., 3) RGB 0..255 -> (...) float32 luma Y, 0..255 scale, unrounded."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return (rgb @ _RGB_TO_YCBCR[0] + _OFFSET[0]).astype(np.float32)


def ycbcr_to_rgb(ycbcr):
    """(..., 3) YCbCr, 0..255 scale -> (..., 3) float32 RGB, 0..255, unclipped and unrounded."""
    ycbcr = np.asarray(ycbcr, dtype=np.float64)
    return ((ycbcr - _OFFSET) @ _YCBCR_TO_RGB.T).astype(np.float32)


def to_uint8(values):
    """Float array on the 0..255 scale -> uint8, clipped and rounded half away from zero (MATLAB's uint8())."""
    return np.floor(np.clip(values, 0, 255) + 0.5).astype(np.uint8)
