"""Super-resolve a whole PIL image: the network on Y, bicubic on chroma and alpha."""

import numpy as np
import torch
from PIL import Image

from srcnn.color import rgb_to_ycbcr, to_uint8, ycbcr_to_rgb
from srcnn.imaging import resize_plane

SUPPORTED_MODES = ("L", "LA", "RGB", "RGBA")


# Output tile side. A probe on the idle 2-core CPU (2 threads, 512² and 1024² planes, output pixels × 114,368
# FLOP) ran 32² to 192² tiles at 104–164 GFLOP/s and one untiled 512² pass at 100; 128² was fastest at both
# sizes (164 and 157). That was a throwaway probe: the project has no benchmark command yet.
TILE = 128
TILE_STEP = 16  # tile sides are multiples of this


def tile_shape(height, width, tile=TILE):
    """(rows, columns) of the output tiles of an (height, width) plane: `tile`, or where the plane is smaller,
    its side (below TILE_STEP) or its side rounded up to a multiple of TILE_STEP. Thin images so waste little
    work on padding, while the network sees at most a few hundred distinct shapes (oneDNN builds and caches
    kernels per shape, so unbounded shapes would mean unbounded memory)."""

    def side(length):
        return min(tile, length if length < TILE_STEP else -(-length // TILE_STEP) * TILE_STEP)

    return side(height), side(width)


def super_resolve_plane(model, plane, tile=TILE):
    """Run `model` over a float32 (H, W) Y plane (0..255, already bicubic-upscaled); float32 (H, W), unrounded.

    The plane is replicate-padded once by the network's border and cut into tiles that overlap by that border,
    so memory is bounded by the tile and the result equals one full-size pass (`SRCNN(..., full_size=True)`).
    """
    parameter = next(model.parameters())
    height, width = plane.shape
    tile_rows, tile_columns = tile_shape(height, width, tile)
    rows, columns = -(-height // tile_rows), -(-width // tile_columns)
    border = model.border
    padded = np.pad(np.asarray(plane, dtype=np.float32) / 255.0,
                    ((border, border + rows * tile_rows - height), (border, border + columns * tile_columns - width)),
                    mode="edge")
    output = np.empty((rows * tile_rows, columns * tile_columns), np.float32)
    with torch.inference_mode():
        for row in range(0, rows * tile_rows, tile_rows):
            for column in range(0, columns * tile_columns, tile_columns):
                window = padded[row : row + tile_rows + 2 * border, column : column + tile_columns + 2 * border]
                batch = torch.from_numpy(np.ascontiguousarray(window))[None, None]  # (1, 1, h + 2b, w + 2b)
                result = model(batch.to(device=parameter.device, dtype=parameter.dtype))
                output[row : row + tile_rows, column : column + tile_columns] = result[0, 0].float().cpu().numpy()
    return output[:height, :width] * 255.0


def upscale(image, model, scale):
    """Upscale `image` by the integer `scale`; `model=None` gives plain bicubic.

    `image` is a PIL image in one of SUPPORTED_MODES (L, LA, RGB, RGBA; 8 bits a channel). The result has the
    same mode and size (width·scale, height·scale). Colour is split into YCbCr (MATLAB BT.601), all planes are
    upscaled bicubically in float, the network refines Y, and alpha is carried by bicubic alone.
    """
    if image.mode not in SUPPORTED_MODES:
        raise ValueError(f"image mode {image.mode!r} is not one of {SUPPORTED_MODES}; convert it first")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, not {scale!r}")
    has_alpha = image.mode in ("LA", "RGBA")
    pixels = np.asarray(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32)  # (H, W, 3 or 4)
    size = (image.width * scale, image.height * scale)

    ycbcr = rgb_to_ycbcr(pixels[..., :3])
    planes = [resize_plane(ycbcr[..., channel], size) for channel in range(3)]
    if model is not None:
        planes[0] = super_resolve_plane(model, planes[0])
    channels = [to_uint8(ycbcr_to_rgb(np.stack(planes, axis=-1)))]  # (H·s, W·s, 3)
    if has_alpha:
        channels.append(to_uint8(resize_plane(pixels[..., 3], size))[..., None])
    result = Image.fromarray(np.concatenate(channels, axis=-1))
    if image.mode in ("L", "LA"):
        # A grey input has Cb = Cr = 128, so R = G = B up to rounding: keep one of them.
        result = result.convert(image.mode)
    return result
