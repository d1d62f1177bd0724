"""`Upscaler`: the service's upscaling as one Python object, PIL image in, PIL image out.

    from srcnn import Upscaler
    from PIL import Image

    upscaler = Upscaler()                                   # the shipped weights, the engine chosen for this CPU
    big = upscaler.upscale(Image.open("photo.png"), scale=2.5)
    wide = upscaler.upscale(Image.open("photo.png"), size=(1920, None))   # 1920 wide, aspect ratio kept

The engines are loaded once, when the object is made: on a CPU one single-threaded set of them for each core
("lanes"), so that one image is computed in stripes on every core (srcnn.cores). One object may be shared between
threads (its calls take turns: each already uses every core it may).
"""

import threading
from pathlib import Path

import torch
from PIL import Image

from srcnn.bands import stripe_unit, upscale
from srcnn.choice import load_chosen
from srcnn.codec import carry_metadata, to_supported_mode
from srcnn.cores import machine_cores
from srcnn.deep import DeepImage
from srcnn.engine import ENGINES, load_engines
from srcnn.scaling import DEFAULT_SCALE, output_size
from srcnn.weights import SHIPPED


class Upscaler:
    """SRCNN on Y with bicubic chroma and alpha, by any factor from 1 to 8 or to any size (srcnn.scaling).

    `weights` is a folder of srcnn_x2/3/4.pth (default: the shipped weights); `precision` is the service's
    setting ("auto": the fastest engine measured on this machine within 0.02 dB of fp32; an arithmetic such as
    "fp32"; or an engine's name, srcnn.engine.ENGINES); `threads` the lanes one image is computed on (default:
    one for each core this process may run on; the answer's PNG encoding uses as many threads);
    `device` a torch device ("cuda" runs torch-fp32 under "auto", on one thread of the host). A 16-bit image
    (srcnn.deep.DeepImage) is computed by the fastest fp32 engine measured here, whatever `precision` says, so that
    nothing is rounded to 8 bits on the way (int8 engines round the network's activations; `fp32_lanes`).
    """

    def __init__(
        self, weights: str | Path = SHIPPED, precision: str = "auto", threads: int | None = None, device: str = "cpu"
    ) -> None:
        self.threads = 1 if str(device).startswith("cuda") else threads or machine_cores()
        engines, self.choice = load_chosen(Path(weights), precision, device, engine_threads=1)
        self.lanes = [engines]  # the others are loaded by `prepare`, or when an image first needs them
        self._weights, self._device = Path(weights), device
        self._load_lane = lambda: load_engines(self._weights, device, 1, self.choice.engine, self.choice.tile)
        self._turn = threading.Lock()
        self._in_fp32 = ENGINES[torch.device(device).type][self.engine][1] == "fp32"

    def prepare(self) -> None:
        """Load every lane's engines now (a server does, so that its memory is steady from the first request)."""
        while len(self.lanes) < self.threads:
            self.lanes.append(self._load_lane())

    @property
    def engine(self) -> str:
        """The name of the engine that runs the network (srcnn.engine.ENGINES), and `choice.reason` says why."""
        return self.choice.engine

    def upscale(
        self,
        image: Image.Image | DeepImage,
        scale: object = None,
        size: tuple[int | None, int | None] | None = None,
        stop=None,
    ) -> Image.Image | DeepImage:
        """A new image: `image` (any mode Pillow decodes, palette images converted, alpha kept; or a DeepImage)
        enlarged by `scale` (default 2) or to `size` = (width, height), either side None to keep the aspect ratio.
        Grey stays grey, colour stays colour; the result has the image's colour profile and metadata
        (srcnn.codec.carry_metadata) and is a PIL image of 8 bits a channel, or a DeepImage of 16 where the image
        is one or is grey of more than 8 bits (Pillow's I;16, I, F). Raises srcnn.scaling.ScaleError for a factor
        or size out of range, and srcnn.bands.Stopped where `stop()` (checked before each band of rows) says to
        give up."""
        if scale is None and size is None:
            scale = DEFAULT_SCALE
        image = to_supported_mode(image)
        with self._turn:
            answer = output_size(image.size, scale, size)
            if answer[1] > stripe_unit(image.size, self.lanes[0], answer, self.threads):
                self.prepare()  # more than one stripe: the other lanes have work
            in_fp32 = self._in_fp32 or not isinstance(image, DeepImage)
            result = upscale(image, self.lanes if in_fp32 else self.fp32_lanes(), scale, size, stop, self.threads)
        return carry_metadata(image, result)

    def fp32_lanes(self) -> list:
        """Lanes of the fastest fp32 engine measured here (the choice is cached, so loading them is quick: 26 ms on
        the machine of docs/decisions.md, D17): a DeepImage's, where this object's engine is not fp32. They are
        loaded for each such image and let go after it, so that memory between images stays that of the chosen
        engine."""
        engines, choice = load_chosen(self._weights, "fp32", self._device, engine_threads=1)
        more = [load_engines(self._weights, self._device, 1, choice.engine, choice.tile) for _ in self.lanes[1:]]
        return [engines, *more]

    def upscale_video(
        self,
        source: str | Path,
        target: str | Path,
        scale: object = None,
        size: tuple[int | None, int | None] | None = None,
        codec: str | None = None,
        crf: int | None = None,
        progress=None,
    ) -> None:
        """Write the video file `target` (.mp4, .mov, .mkv or .webm): the video `source` with every frame enlarged
        as `upscale` does, by `scale` (default 2) or to `size`, the sound and subtitles copied, encoded with `codec`
        ("h264", "hevc", "vp9", "av1"; default: the container's) at quality `crf`. `progress(done, total)` is called
        as frames are done (total None when the container does not say). A stopped call resumes where it stopped
        when made again; the output appears only when complete (srcnn.video). Raises srcnn.video.VideoError, and
        srcnn.scaling.ScaleError for a factor or size out of range."""
        from srcnn.video import upscale_video  # here: PyAV is loaded for videos only

        if scale is None and size is None:
            scale = DEFAULT_SCALE
        upscale_video(
            lambda image, frame_size: self.upscale(image, size=frame_size),
            source,
            target,
            scale,
            size,
            codec,
            crf,
            progress,
            engine=f"{self.engine} {self.choice.tile}",
        )
