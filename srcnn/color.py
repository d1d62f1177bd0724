"""RGB <-> YCbCr the way MATLAB's rgb2ycbcr/ycbcr2rgb do it (ITU-R BT.601, studio range).

Both directions take and return float arrays on the 0..255 scale, layout (..., 3). Y lies in [16, 235] and
Cb, Cr in [16, 240] for RGB in [0, 255]. The inverse is the exact matrix inverse, not a second table of
rounded constants.
"""

import numpy as np

# Rows give Y, Cb, Cr from R, G, B in [0, 1], scaled to 0..255 (MATLAB rgb2ycbcr).
_RGB_TO_YCBCR = (
    np.array(
        [
            [65.481, 128.553, 24.966],
            [-37.797, -74.203, 112.0],
            [112.0, -93.786, -18.214],
        ]
    )
    / 255.0
)
_OFFSET = np.array([16.0, 128.0, 128.0])
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)


# Pixels converted at a time: float64 temporaries stay in cache, and memory does not grow with the image
# (docs/decisions.md, D6).
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
        result[start : start + _CHUNK] = (
            chunk[:, :1] * matrix[:, 0] + chunk[:, 1:2] * matrix[:, 1] + chunk[:, 2:] * matrix[:, 2] + after
        )
    return result.reshape(*values.shape[:-1], len(matrix))


def rgb_to_ycbcr(rgb):
    """(..., 3) RGB, any numeric dtype, 0..255 -> (..., 3) float32 YCbCr, 0..255 scale (Y in [16, 235])."""
    return _affine(rgb, _RGB_TO_YCBCR, 0.0, _OFFSET)


def rgb_to_channel(rgb, channel):
    """(..., 3) RGB 0..255 -> (...) float32 Y (channel 0), Cb (1) or Cr (2), 0..255 scale, unrounded: the same
    numbers as that channel of `rgb_to_ycbcr`."""
    return _affine(rgb, _RGB_TO_YCBCR[channel : channel + 1], 0.0, _OFFSET[channel : channel + 1])[..., 0]


def rgb_to_y(rgb):
    """(..., 3) RGB 0..255 -> (...) float32 luma Y, 0..255 scale, unrounded."""
    return rgb_to_channel(rgb, 0)


def ycbcr_to_rgb(y, cb, cr, out, alphas=None):
    """Y, Cb, Cr planes (H, W), 0..255 scale -> RGB written into the first three channels of `out` (H, W, 3 or 4),
    uint8 or uint16 (0..65535), clipped and rounded as `to_levels` does. With `alphas` = (the alpha Y was
    premultiplied by, the alpha Cb and Cr were), planes (H, W) 0..255 each, the premultiplication is divided out of
    each plane: where alpha is within half an 8-bit level of opaque the value is taken as it is, within half a level
    of 0 the colour is black. In float64, a band of rows and one channel at a time (faster than converting stacked
    (H, W, 3) pixels, docs/decisions.md, D6), and memory bounded by the band."""
    rows = max(1, _CHUNK // max(1, y.shape[1]))
    for start in range(0, len(y), rows):
        band = slice(start, start + rows)
        centred = [plane[band].astype(np.float64) - offset for plane, offset in zip((y, cb, cr), _OFFSET)]
        if alphas is not None:
            luma_scale, chroma_scale = (unpremultiplier(alpha[band]) for alpha in alphas)
            centred = [centred[0] * luma_scale, centred[1] * chroma_scale, centred[2] * chroma_scale]
        for channel, (from_y, from_cb, from_cr) in enumerate(_YCBCR_TO_RGB):
            out[band, :, channel] = to_levels(
                centred[0] * from_y + centred[1] * from_cb + centred[2] * from_cr, out.dtype
            )
    return out


def unpremultiplier(alpha):
    """What premultiplied colour is multiplied by to be straight again: 255 / alpha, 1 where alpha is within half
    an 8-bit level of opaque (opaque pixels keep their colour exactly) and 0 within half a level of 0."""
    alpha = np.clip(alpha.astype(np.float64), 0, 255)
    with np.errstate(divide="ignore"):
        return np.where(alpha >= 254.5, 1.0, np.where(alpha < 0.5, 0.0, 255.0 / alpha))


def snapped_alpha(alpha):
    """Enlarged alpha (0..255 scale) as the answer's: within half an 8-bit level of opaque or of 0, that end (the
    network's own error on a flat plane is a few hundredths of a level, and an opaque picture stays opaque in 16 bits
    too), elsewhere as it is."""
    return np.where(alpha >= 254.5, 255.0, np.where(alpha < 0.5, 0.0, alpha))


def to_levels(values, dtype):
    """Float values on the 0..255 scale -> `dtype`: uint8, or uint16 on 0..65535 (× 257), clipped and rounded half
    away from zero (MATLAB's uint8())."""
    top = np.iinfo(dtype).max
    clipped = np.clip(values, 0, 255)
    return np.floor((clipped if top == 255 else clipped * (top / 255.0)) + 0.5).astype(dtype)


def from_levels(values):
    """uint8 or uint16 values -> float32 on the 0..255 scale (16-bit values ÷ 257, unrounded): `to_levels` undone."""
    values = np.asarray(values)
    return values.astype(np.float32) if values.dtype == np.uint8 else values * np.float32(1 / 257)


def to_uint8(values):
    """Float array on the 0..255 scale -> uint8, clipped and rounded half away from zero (MATLAB's uint8())."""
    return to_levels(values, np.uint8)
