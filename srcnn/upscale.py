"""Super-resolve a whole PIL image: the network on Y, bicubic on chroma and alpha."""

import numpy as np
from PIL import Image

from srcnn.color import rgb_to_ycbcr, to_uint8, ycbcr_to_rgb8
from srcnn.imaging import resize_plane
from srcnn.scaling import output_size, passes_between

SUPPORTED_MODES = ("L", "LA", "RGB", "RGBA")


TILE_STEP = 16  # tile sides are multiples of this


def tile_shape(height, width, tile, multiple=(1, 1)):
    """(rows, columns) of the output tiles of an (height, width) plane: `tile`, or where the plane is smaller,
    its side rounded up to a multiple of TILE_STEP (below TILE_STEP: of `multiple`, the engine's alignment).
    Thin images so waste little work on padding, while the engine sees at most a few hundred distinct shapes
    (engines build or cache kernels and buffers per shape, so unbounded shapes would mean unbounded memory)."""

    def side(length, step):
        step = TILE_STEP if length >= TILE_STEP else step
        return min(tile, -(-length // step) * step)

    return side(height, multiple[0]), side(width, multiple[1])


def super_resolve_plane(engine, plane, tile=None):
    """Run `engine` (see srcnn.engine) over a float32 (H, W) Y plane (0..255, already bicubic-upscaled);
    float32 (H, W), unrounded. `tile` defaults to the engine's measured best.

    The plane is replicate-padded once by the network's border and cut into tiles that overlap by that border,
    so memory is bounded by the tile and the result equals one full-size pass (`SRCNN(..., full_size=True)`).
    """
    tile = tile or engine.tile
    if tile % engine.multiple[0] or tile % engine.multiple[1]:
        raise ValueError(f"tile {tile} is not a multiple of the engine's {engine.multiple}")
    height, width = plane.shape
    tile_rows, tile_columns = tile_shape(height, width, tile, engine.multiple)
    border = engine.border
    output = np.empty((height, width), np.float32)
    for top in range(0, height, tile_rows):
        # Indices clipped to the plane replicate its edges, without a padded copy of the whole plane.
        rows = np.clip(np.arange(top - border, top + tile_rows + border), 0, height - 1)
        for left in range(0, width, tile_columns):
            columns = np.clip(np.arange(left - border, left + tile_columns + border), 0, width - 1)
            window = np.asarray(plane[np.ix_(rows, columns)], dtype=np.float32) / 255.0  # (h + 2b, w + 2b)
            result = engine(window)  # (tile_rows, tile_columns)
            output[top : top + tile_rows, left : left + tile_columns] = result[: height - top, : width - left]
    output *= 255.0
    return output


def run_passes(plane, engines, chain):
    """Enlarge a float32 (H, W) plane by each trained scale of `chain` in turn: a bicubic upscale refined by
    `engines[scale]`. float32, unrounded."""
    for scale in chain:
        height, width = plane.shape
        plane = super_resolve_plane(engines[scale], resize_plane(plane, (width * scale, height * scale)))
    return plane


def enlarge_plane(plane, engines, size):
    """A float32 (H, W) plane enlarged to `size` = (width, height): bicubic when `engines` is None, else the
    passes srcnn.scaling.passes_between chooses (`run_passes`), then a bicubic resample to `size` where they do
    not end exactly on it. float32, unrounded."""
    if engines is None:
        return resize_plane(plane, size)
    plane = run_passes(plane, engines, passes_between(plane.shape[::-1], size))
    return plane if plane.shape == (size[1], size[0]) else resize_plane(plane, size)


def upscale(image, engines, scale=None, size=None):
    """Upscale `image` by `scale` or to `size` (see srcnn.scaling.output_size); `engines` maps each trained
    scale to its engine (see srcnn.engine), or is None for plain bicubic.

    `image` is a PIL image in one of SUPPORTED_MODES (L, LA, RGB, RGBA; 8 bits a channel). The result has the
    same mode. Colour is split into YCbCr (MATLAB BT.601), the network's passes enlarge Y (`enlarge_plane`),
    chroma and alpha are upscaled bicubically in float straight to the output size.
    """
    if image.mode not in SUPPORTED_MODES:
        raise ValueError(f"image mode {image.mode!r} is not one of {SUPPORTED_MODES}; convert it first")
    size = output_size(image.size, scale, size)
    has_alpha = image.mode in ("LA", "RGBA")
    pixels = np.asarray(image.convert("RGBA" if has_alpha else "RGB"))  # uint8 (H, W, 3 or 4)

    # Memory: three float32 planes of the output's size (Y's passes may go up to 4× larger), plus one band of rows
    # at a time of the colour conversion.
    ycbcr = rgb_to_ycbcr(pixels[..., :3])
    luma = enlarge_plane(ycbcr[..., 0], engines, size)
    chroma = [resize_plane(ycbcr[..., channel], size) for channel in (1, 2)]
    merged = ycbcr_to_rgb8(luma, *chroma, np.empty((size[1], size[0], pixels.shape[-1]), np.uint8))
    if has_alpha:
        merged[..., 3] = to_uint8(resize_plane(pixels[..., 3], size))
    result = Image.fromarray(merged)
    if image.mode in ("L", "LA"):
        # A grey input has Cb = Cr = 128, so R = G = B up to rounding: keep one of them.
        result = result.convert(image.mode)
    return result
