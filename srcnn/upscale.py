"""Super-resolve a whole PIL image: the network on Y, bicubic on chroma and alpha."""

import numpy as np
import torch
from PIL import Image

from srcnn.color import rgb_to_ycbcr, to_uint8, ycbcr_to_rgb
from srcnn.imaging import resize_plane

SUPPORTED_MODES = ("L", "LA", "RGB", "RGBA")


def super_resolve_plane(model, plane):
    """Run `model` over a float32 (H, W) Y plane (0..255, already bicubic-upscaled); float32 (H, W), unrounded."""
    parameter = next(model.parameters())
    batch = torch.from_numpy(np.ascontiguousarray(plane, dtype=np.float32) / 255.0)[None, None]  # (1, 1, H, W)
    with torch.inference_mode():
        output = model(batch.to(device=parameter.device, dtype=parameter.dtype), full_size=True)
    return output[0, 0].float().cpu().numpy() * 255.0


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
