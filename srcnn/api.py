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

from PIL import Image

from srcnn.bands import stripe_unit, upscale
from srcnn.choice import load_chosen
from srcnn.codec import carry_metadata, to_supported_mode
from srcnn.cores import machine_cores
from srcnn.engine import load_engines
from srcnn.scaling import DEFAULT_SCALE, output_size
from srcnn.weights import SHIPPED


class Upscaler:
    """SRCNN on Y with bicubic chroma and alpha, by any factor from 1 to 8 or to any size (srcnn.scaling).

    `weights` is a folder of srcnn_x2/3/4.pth (default: the shipped weights); `precision` is the service's
    setting ("auto": the fastest engine measured on this machine within 0.02 dB of fp32; an arithmetic such as
    "fp32"; or an engine's name, srcnn.engine.ENGINES); `threads` the lanes one image is computed on (default:
    one for each core this process may run on; the answer's PNG encoding uses as many threads);
    `device` a torch device ("cuda" runs torch-fp32 under "auto", on one thread of the host).
    """

    def __init__(
        self, weights: str | Path = SHIPPED, precision: str = "auto", threads: int | None = None, device: str = "cpu"
    ) -> None:
        self.threads = 1 if str(device).startswith("cuda") else threads or machine_cores()
        engines, self.choice = load_chosen(Path(weights), precision, device, engine_threads=1)
        self.lanes = [engines]  # the others are loaded by `prepare`, or when an image first needs them
        self._load_lane = lambda: load_engines(Path(weights), device, 1, self.choice.engine, self.choice.tile)
        self._turn = threading.Lock()

    def prepare(self) -> None:
        """Load every lane's engines now (a server does, so that its memory is steady from the first request)."""
        while len(self.lanes) < self.threads:
            self.lanes.append(self._load_lane())

    @property
    def engine(self) -> str:
        """The name of the engine that runs the network (srcnn.engine.ENGINES), and `choice.reason` says why."""
        return self.choice.engine

    def upscale(
        self, image: Image.Image, scale: object = None, size: tuple[int | None, int | None] | None = None
    ) -> Image.Image:
        """A new PIL image: `image` (any mode Pillow decodes; 16-bit and palette images are converted, alpha kept)
        enlarged by `scale` (default 2) or to `size` = (width, height), either side None to keep the aspect ratio.
        Grey stays grey, colour stays colour; the result has 8 bits a channel and the image's colour profile and
        metadata (srcnn.codec.carry_metadata). Raises srcnn.scaling.ScaleError for a factor or size out of range."""
        if scale is None and size is None:
            scale = DEFAULT_SCALE
        image = to_supported_mode(image)
        with self._turn:
            answer = output_size(image.size, scale, size)
            if answer[1] > stripe_unit(image.size, self.lanes[0], answer):
                self.prepare()  # more than one stripe: the other lanes have work
            result = upscale(image, self.lanes, scale, size)
        return carry_metadata(image, result)

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
