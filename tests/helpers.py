"""What several test modules share besides fixtures: the shipped settings, the images the tests make themselves
(gradients, edges, text and noise, deterministic per seed; a phone photograph with its profile and EXIF; a clip
of the test card panning, with sound), and the addresses and workers of a running TorchServe."""

import io
import re
from fractions import Fraction

import av
import numpy as np
import pillow_heif
import yaml
from PIL import Image, ImageCms, ImageDraw

from serving import MODEL_CONFIG as MODEL_CONFIG_FILE
from srcnn.engine import PHASES

pillow_heif.register_heif_opener()  # Pillow writes HEIC too (make_photo)
MODEL_CONFIG = yaml.safe_load(MODEL_CONFIG_FILE.read_text())
LIMITS = MODEL_CONFIG["handler"]  # the shipped handler settings, limits and all


def make_scene(width, height, seed=0, noise=6.0):
    """An RGB test card: colour gradients, hard edges, a circle, text and Gaussian noise of `noise` levels."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, width)[None, :]
    y = np.linspace(0, 1, height)[:, None]
    pixels = np.stack([255 * x * np.ones_like(y), 255 * y * np.ones_like(x), 128 + 100 * np.sin(9 * x + 5 * y)], -1)
    pixels += rng.normal(0, noise, pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.rectangle([width // 8, height // 8, width // 3, height // 2], fill=(250, 250, 30))
    draw.ellipse([width // 2, height // 4, width - 4, height - 4], outline=(10, 10, 10), width=3)
    draw.line([0, height - 1, width - 1, 0], fill=(255, 255, 255), width=2)
    for row in range(4, height - 10, 14):
        draw.text((4, row), "SRCNN 9-5-5", fill=(0, 0, 0))
    return image


def gradients(height, width):
    """16-bit RGB pixels (uint16): red across, green down, blue along the diagonal, each filling 0..65535."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack(
        [x * 65535 // (width - 1), y * 65535 // (height - 1), (x + y) * 65535 // (width + height - 2)], -1
    ).astype(np.uint16)


def ihdr(png):
    """(bit depth, colour type) from a PNG's header."""
    return png[24], png[25]


SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()  # an ICC profile's bytes


def make_photo(width, height, orientation=6, format="JPEG", **options):
    """A phone photograph's bytes (JPEG, or another format Pillow or pillow-heif writes with a profile and EXIF):
    the scene stored sideways (`orientation` 6 means "turn it 90° clockwise to view"), an sRGB ICC profile, EXIF
    Make, DateTime, its pixel dimensions and 72 dpi. Viewed upright it is `height` wide and `width` high."""
    exif = Image.Exif()
    exif.update({0x010F: "Phonemaker", 0x0132: "2026:12:01 10:20:30", 0x0112: orientation, 0x011A: 72.0, 0x011B: 72.0})
    exif.get_ifd(0x8769).update({0xA002: width, 0xA003: height})
    buffer = io.BytesIO()
    settings = {"quality": 95, "dpi": (72, 72)} if format == "JPEG" else options
    make_scene(width, height).save(buffer, format, **settings, icc_profile=SRGB, exif=exif.tobytes())
    return buffer.getvalue()


def assert_faithful(answer, size):
    """`answer` (image bytes) is an upright `size` image that carries make_photo's profile and metadata."""
    with Image.open(io.BytesIO(answer)) as image:
        exif = image.getexif()
        assert image.size == size
        assert image.info.get("icc_profile") == SRGB
        assert (exif.get(0x010F), exif.get(0x0132), exif.get(0x0112)) == ("Phonemaker", "2026:12:01 10:20:30", 1)
        assert {tag: exif.get_ifd(0x8769).get(tag) for tag in (0xA002, 0xA003)} == {0xA002: size[0], 0xA003: size[1]}
        return image.info, exif


# The frontend's memory beyond its heap and direct buffers (code, threads, metaspace): its peak measured 3.14 GiB
# against 3 GiB of them on the 2-core AMD EPYC, family 25, model 17 (docs/deployment.md).
FRONTEND_OVERHEAD_BYTES = 256 * 2**20


def frontend_bound(properties):
    """The most TorchServe's frontend may hold resident, from config.properties' `vmargs`: its heap (-Xmx) and
    direct buffers (-XX:MaxDirectMemorySize), both required, and FRONTEND_OVERHEAD_BYTES."""
    found = re.findall(r"-(Xmx|XX:MaxDirectMemorySize=)(\d+)([mg])", properties["vmargs"])
    sizes = {name: int(number) * {"m": 2**20, "g": 2**30}[unit] for name, number, unit in found}
    assert set(sizes) == {"Xmx", "XX:MaxDirectMemorySize="}, properties["vmargs"]
    return sum(sizes.values()) + FRONTEND_OVERHEAD_BYTES


def predictions_url(server):
    return f"{server.inference_url}/predictions/srcnn"


def worker_pids(server):
    return sorted(worker["pid"] for worker in server.workers())


def make_clip(
    path,
    size=(96, 64),
    frames=12,
    rate=30,
    audio=True,
    codec="libx264",
    pix_fmt="yuv420p",
    rotation=None,
    stamps=None,
    subtitles=(),
    colorspace=None,
):
    """A clip of the panning test card at `rate` frames a second (or at the timestamps `stamps`, in 1/rate units),
    with a stereo AAC tone as long as the video, subtitle lines as (start, text) in milliseconds, and the display
    rotation and colour matrix given."""
    width, height = size
    scene = np.asarray(make_scene(width + 2 * frames, height))
    with av.open(str(path), "w") as output:
        video = output.add_stream(codec, rate=rate)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        video.codec_context.time_base = Fraction(1, rate)
        if colorspace is not None:
            video.codec_context.colorspace = colorspace
        if rotation is not None:
            video.set_display_rotation(rotation)
        sound = output.add_stream("aac", rate=48000, layout="stereo") if audio else None
        lines = output.add_mux_stream("subrip") if subtitles else None
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(scene[:, 2 * index : 2 * index + width]), "rgb24")
            frame.pts, frame.time_base = (stamps[index] if stamps else index), Fraction(1, rate)
            if colorspace is not None:
                frame = frame.reformat(format=pix_fmt, dst_colorspace=colorspace)
            output.mux(video.encode(frame))
        output.mux(video.encode(None))
        if sound:
            samples = 48000 * (stamps[-1] + 1 if stamps else frames) // rate
            tone = (0.2 * np.sin(np.arange(samples) * 2 * np.pi * 440 / 48000)).astype(np.float32)
            chunk = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
            chunk.sample_rate, chunk.pts = 48000, 0
            output.mux(sound.encode(chunk))
            output.mux(sound.encode(None))
        for start, text in subtitles:
            packet = av.Packet(text.encode())
            packet.pts, packet.dts, packet.duration, packet.time_base = start, start, 400, Fraction(1, 1000)
            packet.stream = lines
            output.mux(packet)
    return path


class Recording:
    """A stand-in engine (border 8, the graph engines' multiple, 64² tiles) that records the shapes of the windows
    it is given and answers zeros."""

    border, multiple, tile = 8, PHASES, 64

    def __init__(self):
        self.windows = []

    def __call__(self, window):
        self.windows.append(window.shape)
        return np.zeros((window.shape[0] - 16, window.shape[1] - 16), np.float32)
