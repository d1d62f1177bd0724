"""`Upscaler`: the service's upscaling as one Python object, PIL image in, PIL image out.

    from srcnn import Upscaler
    from PIL import Image

    upscaler = Upscaler()                                   # the shipped weights, the engine chosen for this CPU
    big = upscaler.upscale(Image.open("photo.png"), scale=2.5)
    wide = upscaler.upscale(Image.open("photo.png"), size=(1920, None))   # 1920 wide, aspect ratio kept

The engines are loaded once, when the object is made; one object may be shared between threads (its calls take
turns: an engine is not safe to run from two threads at once, and each already uses every core it was given).
"""

import threading
from pathlib import Path

from srcnn.choice import load_chosen
from srcnn.codec import carry_metadata, to_supported_mode
from srcnn.scaling import DEFAULT_SCALE
from srcnn.upscale import upscale
from srcnn.weights import SHIPPED


class Upscaler:
    """SRCNN on Y with bicubic chroma and alpha, by any factor from 1 to 8 or to any size (srcnn.scaling).

    `weights` is a folder of srcnn_x2/3/4.pth (default: the shipped weights); `precision` is the service's
    setting ("auto": the fastest engine measured on this machine within 0.02 dB of fp32; an arithmetic such as
    "fp32"; or an engine's name, srcnn.engine.ENGINES); `threads` the engine's (default: every core); `device`
    a torch device ("cuda" runs torch-fp32 under "auto").
    """

    def __init__(self, weights=SHIPPED, precision="auto", threads=None, device="cpu"):
        self.engines, self.choice = load_chosen(Path(weights), precision, device, threads)
        self._turn = threading.Lock()

    @property
    def engine(self):
        """The name of the engine that runs the network (srcnn.engine.ENGINES), and `choice.reason` says why."""
        return self.choice.engine

    def upscale(self, image, scale=None, size=None):
        """A new PIL image: `image` (any mode Pillow decodes; 16-bit and palette images are converted, alpha kept)
        enlarged by `scale` (default 2) or to `size` = (width, height), either side None to keep the aspect ratio.
        Grey stays grey, colour stays colour; the result has 8 bits a channel and the image's colour profile and
        metadata (srcnn.codec.carry_metadata). Raises srcnn.scaling.ScaleError for a factor or size out of range."""
        if scale is None and size is None:
            scale = DEFAULT_SCALE
        image = to_supported_mode(image)
        with self._turn:
            result = upscale(image, self.engines, scale, size)
        return carry_metadata(image, result)
