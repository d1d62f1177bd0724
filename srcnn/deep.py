"""Images of 16 bits a channel, which Pillow holds only as grey without alpha (mode I;16): `DeepImage`.

A 16-bit PNG or TIFF is decoded into one (srcnn.codec), upscaled in float with nothing rounded to 8 bits on the
way (srcnn.bands), and answered as a 16-bit PNG; formats of 8 bits (JPEG, WebP, the `pixels` tensor) get its
`eight_bit()` picture. It takes twice the memory of an 8-bit image of the same pixels (Pillow keeps those in 4
bytes; this in 2 a channel), so the service counts its pixels twice against its limits (`PIXEL_WEIGHT`).
"""

import numpy as np
from PIL import Image

from srcnn.color import from_levels, to_levels
from srcnn.imaging import resize_plane

MODES = ("L", "LA", "RGB", "RGBA")  # by number of channels
PIXEL_WEIGHT = 2  # a 16-bit pixel counts as this many against the pixel limits


class DeepImage:
    """uint16 pixels (height, width, channels), 1 to 4 channels: grey, grey and alpha, RGB, RGBA (`mode` names
    them as Pillow does), with Pillow's `info` (ICC profile, EXIF, resolution)."""

    def __init__(self, pixels: np.ndarray, info: dict | None = None) -> None:
        pixels = np.asarray(pixels)
        pixels = pixels[..., None] if pixels.ndim == 2 else pixels
        if pixels.dtype != np.uint16 or pixels.ndim != 3 or not 1 <= pixels.shape[2] <= 4:
            raise ValueError(f"a DeepImage is uint16 (H, W, 1 to 4 channels), not {pixels.dtype} {pixels.shape}")
        self.pixels, self.info = pixels, dict(info or {})

    @property
    def mode(self) -> str:
        return MODES[self.pixels.shape[2] - 1]

    @property
    def size(self) -> tuple[int, int]:
        return self.pixels.shape[1], self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    def getbands(self) -> tuple[str, ...]:
        return tuple(self.mode)

    def crop(self, box: tuple[int, int, int, int]) -> "DeepImage":
        """The region (left, top, right, bottom), inside the image."""
        left, top, right, bottom = box
        return DeepImage(self.pixels[top:bottom, left:right], self.info)

    def resize(self, size: tuple[int, int]) -> "DeepImage":
        """Bicubic, each channel in float (srcnn.imaging.resize_plane), rounded to 16 bits."""
        values = from_levels(self.pixels)
        channels = [resize_plane(values[..., index], size) for index in range(values.shape[2])]
        return DeepImage(to_levels(np.stack(channels, axis=-1), np.uint16), self.info)

    def eight_bit(self) -> Image.Image:
        """The PIL image of the same mode, 8 bits a channel (each value ÷ 257, rounded), with the same `info`."""
        values = to_levels(from_levels(self.pixels), np.uint8)
        image = Image.fromarray(values[..., 0] if self.mode == "L" else values)
        image.info = dict(self.info)
        return image
