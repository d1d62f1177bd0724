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


# Pixels converted at a time: float64 temporaries stay in cache, and memory does not grow with the image
# (one pass over a whole 2048² image was 5× slower than the same pass in chunks).
_CHUNK = 1 << 16


def _affine(values, matrix, before, after):
    """(..., 3) any numeric dtype -> (..., k) float32 ((values - before) @ matrix.T + after), in float64, for a
    (k, 3) matrix. Written as element-wise products rather than `@`: numpy's BLAS would wake its threads for
    each chunk and leave them spinning, taking a core from the network in a server."""
    values = np.asarray(values)
    flat = values.reshape(-1, 3)
    result = np.empty((len(flat), len(matrix)), np.float32)
    for start in range(0, len(flat), _CHUNK):
        chunk = flat[start : start + _CHUNK].astype(np.float64) - before  # (n, 3)
        result[start : start + _CHUNK] = (chunk[:, :1] * matrix[:, 0] + chunk[:, 1:2] * matrix[:, 1]
                                          + chunk[:, 2:] * matrix[:, 2] + after)
    return result.reshape(*values.shape[:-1], len(matrix))


def rgb_to_ycbcr(rgb):
    """(..., 3) RGB, any numeric dtype, 0..255 -> (..., 3) float32 YCbCr, 0..255 scale (Y in [16, 235])."""
    return _affine(rgb, _RGB_TO_YCBCR, 0.0, _OFFSET)


def rgb_to_y(rgb):
    """(..., 3) RGB 0..255 -> (...) float32 luma Y, 0..255 scale, unrounded."""
    return _affine(rgb, _RGB_TO_YCBCR[:1], 0.0, _OFFSET[:1])[..., 0]


def ycbcr_to_rgb(ycbcr):
    """(..., 3) YCbCr, 0..255 scale -> (..., 3) float32 RGB, 0..255, unclipped and unrounded."""
    return _affine(ycbcr, _YCBCR_TO_RGB, _OFFSET, 0.0)


def to_uint8(values):
    """Float array on the 0..255 scale -> uint8, clipped and rounded half away from zero (MATLAB's uint8())."""
    return np.floor(np.clip(values, 0, 255) + 0.5).astype(np.uint8)
