"""Video: every frame of a clip through the still images' pipeline, the clip's other streams carried over untouched.

    from srcnn import Upscaler
    Upscaler().upscale_video("clip.mp4", "big.mp4", scale=2, progress=lambda done, total: print(done, total))

Each frame of the video stream is decoded, converted to RGB with the colour matrix and range the stream is tagged
with, enlarged by `Upscaler.upscale` (Y by SRCNN, chroma bicubic, as a still image), converted back with the same
matrix and range, and encoded: H.264 by default (VP9 in a .webm), yuv420p, constant quality (CRF), the other
codecs in CODECS on request. Each output frame keeps its input frame's timestamp and duration, so the frame rate,
variable or not, and the duration are kept, and the stream keeps the rotation it is displayed with, its colour
tags and its pixel aspect ratio. Audio and subtitle streams are copied packet for packet, not re-encoded; data
streams (timecodes, a camera's metadata track) and attached pictures (cover art) are left out. The output size is
rounded to even numbers, which yuv420p needs; frames have 8 bits a channel, so 10-bit input gives 8-bit output.
The output's container is its name's: OUTPUT_FORMATS.

Frames are streamed: memory does not grow with the clip's length. Long work is resumable: the encoded frames are
kept in parts in a hidden folder beside the output (.NAME.EXT.parts/), a part closed after each PART_SECONDS of
video and when the run stops with an exception (KeyboardInterrupt for Ctrl-C, and `srcnn upscale` turns SIGTERM
into one); a SIGKILL or a power cut loses the open part. The same call again decodes past the frames the parts hold
and goes on from the first one missing; a different input (path, size or modification time), output size,
codec, quality or engine starts over. The output appears only when complete: muxed inside that folder, then
renamed to its name, and the folder removed.
"""

import heapq
import io
import json
import os
import shutil
import struct
import warnings
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av

from srcnn.scaling import output_size

# The containers srcnn reads videos from (FFmpeg's demuxer names): a file that FFmpeg opens in another one, such as
# a picture or a text file, is not taken for a video.
VIDEO_CONTAINERS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "mpegts", "mpeg", "flv", "ogg", "asf"})
# The extensions people give videos: a file named so is read as one, and a damaged one answered as a damaged video.
VIDEO_SUFFIXES = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".mkv",
        ".webm",
        ".avi",
        ".mts",
        ".m2ts",
        ".ts",
        ".mpg",
        ".mpeg",
        ".flv",
        ".ogv",
        ".wmv",
        ".3gp",
    }
)
# The containers srcnn writes, by the output's extension, and the codec each has by default.
OUTPUT_FORMATS = {
    ".mp4": ("mp4", "h264"),
    ".mov": ("mov", "h264"),
    ".mkv": ("matroska", "h264"),
    ".webm": ("webm", "vp9"),
}


@dataclass(frozen=True)
class Codec:
    encoder: str  # FFmpeg's encoder, inside PyAV's wheel
    crf: int  # the default quality: visually lossless or close to it at this codec's scale
    crfs: range  # the qualities the encoder takes
    options: tuple  # the encoder's other options, (name, value) pairs


CODECS = {
    "h264": Codec("libx264", 18, range(0, 52), (("preset", "medium"),)),
    "hevc": Codec("libx265", 20, range(0, 52), (("preset", "medium"), ("x265-params", "log-level=error"))),
    "vp9": Codec(
        "libvpx-vp9", 31, range(0, 64), (("b", "0"), ("deadline", "good"), ("cpu-used", "4"), ("row-mt", "1"))
    ),
    "av1": Codec("libsvtav1", 30, range(1, 64), (("preset", "8"),)),
}
PIXEL_FORMAT = "yuv420p"
# The seconds of video a part holds, so the most work a killed run loses. Each part starts with a keyframe: shorter
# parts cost size (docs/decisions.md, D15).
PART_SECONDS = 10.0


class VideoError(Exception):
    """A video that cannot be upscaled as asked; the message says why and what to do."""


class VideoWarning(UserWarning):
    """Something the output differs in from what the input promised, said while it is written anyway."""


CUT_SHORT = 1.0  # seconds of video missing before a VideoWarning says so


def is_video(path) -> bool:
    """Whether `path` is a file FFmpeg opens as a video container srcnn reads (it may still hold no video track)."""
    try:
        with av.open(str(path)) as container:
            return container.format.name in VIDEO_CONTAINERS
    except (av.FFmpegError, OSError, UnicodeDecodeError):
        return False


def output_suffix(source) -> str:
    """The extension of a video's output by default: its own when srcnn writes that container, else .mp4."""
    suffix = Path(source).suffix.lower()
    return suffix if suffix in OUTPUT_FORMATS else ".mp4"


@dataclass(frozen=True)
class Encoding:
    """How the video stream is encoded: everything an encoder is opened with, so that every part's encoder and the
    final stream's are the same (and their codec headers identical)."""

    codec: str
    crf: int
    width: int
    height: int
    time_base: tuple  # (numerator, denominator) of the input stream's, in which frames keep their timestamps
    rate: tuple | None  # the stream's average frame rate, for the encoder's rate control
    colorspace: int
    color_range: int
    color_primaries: int
    color_trc: int
    aspect: tuple | None  # the pixel (sample) aspect ratio, when not square

    def configure(self, context):
        """Set an encoder's codec context (not yet opened) to this encoding."""
        codec = CODECS[self.codec]
        context.width, context.height, context.pix_fmt = self.width, self.height, PIXEL_FORMAT
        context.time_base = Fraction(*self.time_base)
        if self.rate:
            context.framerate = Fraction(*self.rate)
        if self.aspect:
            context.sample_aspect_ratio = Fraction(*self.aspect)
        context.colorspace, context.color_range = self.colorspace, self.color_range
        context.color_primaries, context.color_trc = self.color_primaries, self.color_trc
        context.options = {**dict(codec.options), "crf": str(self.crf)}

    def encoder(self):
        """An opened encoder with the codec headers out of band, as the containers of OUTPUT_FORMATS keep them.
        VideoError when the encoder refuses the settings (a size beyond what it encodes)."""
        context = av.CodecContext.create(CODECS[self.codec].encoder, "w")
        self.configure(context)
        context.flags |= av.codec.context.Flags.global_header
        try:
            context.open()
        except av.FFmpegError as error:
            raise VideoError(
                f"{CODECS[self.codec].encoder} cannot encode {self.width}×{self.height} frames at CRF "
                f"{self.crf} (FFmpeg: {error.strerror}); ask for a smaller size or another --codec, "
                "--crf"
            ) from None
        return context

    def frame(self, image, source):
        """The video frame to encode from the enlarged PIL `image` of the decoded frame `source`: its colour matrix
        and range, its timestamp and duration."""
        frame = av.VideoFrame.from_image(image).reformat(
            format=PIXEL_FORMAT, dst_colorspace=self.colorspace or None, dst_color_range=self.color_range or None
        )
        frame.pts, frame.time_base, frame.duration = source.pts, Fraction(*self.time_base), source.duration
        return frame


def upscale_video(upscale, source, target, scale=None, size=None, codec=None, crf=None, progress=None, engine=""):
    """Write `target`, the video file `source` with each frame enlarged by `upscale(image, (width, height))` (a PIL
    image in, one of that size out) by `scale` or to `size` (srcnn.scaling), encoded with `codec` (a name in
    CODECS; default: the output container's, OUTPUT_FORMATS) at quality `crf` (default: the codec's). `progress`,
    if given, is called with (frames done, frames in all or None when the container does not say) once at the
    start, counting frames a stopped run had done, and after each frame. `engine` names what `upscale` computes
    with: a stopped run is resumed only with the same. Raises VideoError."""
    source, target = Path(source), Path(target)
    if target.suffix.lower() not in OUTPUT_FORMATS:
        raise VideoError(f"a video's output is a {', '.join(OUTPUT_FORMATS)} file, not {target.name}")
    format_name, default_codec = OUTPUT_FORMATS[target.suffix.lower()]
    codec = codec or default_codec
    if codec not in CODECS:
        raise VideoError(f"codec {codec!r} is not one of {', '.join(CODECS)}")
    crfs = CODECS[codec].crfs
    if crf is not None and crf not in crfs:
        raise VideoError(f"CRF for {codec} is {crfs.start} to {crfs.stop - 1} (lower is better), not {crf}")
    container = open_video(source)
    with container:
        video = video_stream(container)
        carried = [stream.index for stream in container.streams if stream.type in ("audio", "subtitle")]
        check_container(format_name, target, codec, [container.streams[index] for index in carried])
        encoding = encoding_of(video, codec, crf, output_size((video.width, video.height), scale, size))
        encoding.encoder()  # refused before any work
        stat = source.stat()
        job = {
            "source": str(source.resolve()),
            "bytes": stat.st_size,
            "modified": stat.st_mtime_ns,
            "engine": engine,
            **asdict(encoding),
        }
        parts = Parts(target.with_name(f".{target.name}.parts"), job)
        total = video.frames or estimated_frames(video)
        if progress:
            progress(parts.done, total)
        part, rotation, frame = None, 0, None
        try:
            for index, frame in decoded(container, video):
                if index == 0:
                    rotation = frame.rotation
                if index < parts.done:
                    continue
                part = part or Part(parts, index, frame.time, encoding)
                part.add(encoding.frame(upscale(frame.to_image(), (encoding.width, encoding.height)), frame))
                if progress:
                    progress(index + 1, total)
                if frame.time - part.opened >= PART_SECONDS:
                    part = part.close()
        finally:
            if part:
                part.close()  # also when stopped (Ctrl-C, an error): the frames done are kept
        if frame is None:
            shutil.rmtree(parts.folder)
            raise VideoError("its video track has no frame that decodes")
        check_length(container, video, frame, parts.done)  # the last frame
    merged = parts.folder / f"output{target.suffix}"
    with open_video(source) as container:
        mux(container, carried, parts, encoding, rotation, merged)
    merged.replace(target)
    shutil.rmtree(parts.folder)


def open_video(source):
    """The input container, or VideoError saying why FFmpeg cannot read it."""
    try:
        container = av.open(str(source))
    except av.FFmpegError as error:
        raise VideoError(f"not a video srcnn can read, or damaged (FFmpeg: {error.strerror})") from None
    if container.format.name not in VIDEO_CONTAINERS:
        container.close()
        raise VideoError(f"not a video container srcnn reads (FFmpeg sees {container.format.name})")
    return container


def video_stream(container):
    """The video track to enlarge: the first that is not an attached picture. VideoError when there is none."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            stream.thread_type = "AUTO"
            return stream
    streams = ", ".join(stream.type for stream in container.streams) or "none"
    raise VideoError(f"no video track (its streams: {streams})")


def check_container(format_name, target, codec, carried):
    """VideoError, before any work, when the output's container cannot hold the video in `codec` or one of the
    `carried` streams as it is."""
    with av.open(io.BytesIO(), "w", format=format_name) as probe:
        supported = probe.supported_codecs
    if codec not in supported:
        raise VideoError(
            f"a {target.suffix} file cannot hold {codec} video; give another --codec or name a .mkv "
            "output, which holds the most codecs"
        )
    for stream in carried:
        name = stream.codec_context.codec.canonical_name
        if name not in supported:
            raise VideoError(
                f"a {target.suffix} file cannot hold the input's {name} {stream.type}, which is copied "
                "as it is; name a .mkv output, which holds the most codecs"
            )


def encoding_of(video, codec, crf, size):
    """The Encoding of `video`'s enlargement to `size`, rounded to even sides."""
    width, height = (max(2, side + side % 2) for side in size)
    context = video.codec_context
    rate = frame_rate(video)
    aspect = video.sample_aspect_ratio
    return Encoding(
        codec,
        CODECS[codec].crf if crf is None else crf,
        width,
        height,
        (video.time_base.numerator, video.time_base.denominator),
        (rate.numerator, rate.denominator) if rate else None,
        int(context.colorspace),
        int(context.color_range),
        int(context.color_primaries),
        int(context.color_trc),
        (aspect.numerator, aspect.denominator) if aspect and aspect != 1 else None,
    )


def frame_rate(video):
    """The stream's average frame rate, else the one FFmpeg guesses; None when neither is known."""
    return video.average_rate or video.guessed_rate


def estimated_frames(video):
    """The frame count a container does not state, from the stream's duration and rate; None if neither is known."""
    rate = frame_rate(video)
    if video.duration is None or not rate:
        return None
    return round(video.duration * video.time_base * rate)


def check_length(container, video, last, frames):
    """A VideoWarning when the video ends more than CUT_SHORT seconds before the duration its container states (a
    file cut short whose header was written whole, as Matroska's is): the frames that decode are the output."""
    stated = (
        video.duration * video.time_base
        if video.duration
        else container.duration / av.time_base
        if container.duration
        else None
    )
    start = video.start_time * video.time_base if video.start_time is not None else 0
    end = last.time - start + (last.duration or 0) * last.time_base
    if stated is not None and stated - end > CUT_SHORT:
        warnings.warn(
            f"the video ends at {float(end):.1f} s of the {float(stated):.1f} s its container states (cut "
            f"short?); the {frames} frames that decode were enlarged",
            VideoWarning,
            stacklevel=3,
        )


def decoded(container, video):
    """(index, frame) for each frame of `video`, with a timestamp even where the container gives none (the previous
    one plus its duration). VideoError when the stream is damaged past what FFmpeg conceals."""
    index, next_pts = 0, 0
    try:
        for frame in container.decode(video):
            if frame.pts is None:
                frame.pts = next_pts
            next_pts = frame.pts + (frame.duration or 1)
            yield index, frame
            index += 1
    except av.FFmpegError as error:
        raise VideoError(f"damaged after frame {index} (FFmpeg: {error.strerror})") from None


# A part holds the packets of consecutive frames, encoded by one encoder: MAGIC, the encoder's codec header (4-byte
# little-endian length, bytes), then each packet as RECORD (pts, dts, duration, keyframe, length) and its bytes.
MAGIC = b"srcnn video part 1\n"
RECORD = struct.Struct("<qqqBI")
NONE = -(2**63)  # a timestamp the encoder left unset


class Parts:
    """The folder of a job's parts: part-FIRST-COUNT.packets each, complete; `done`, the frames they hold from the
    first on. A folder left by a different job is emptied."""

    def __init__(self, folder, job):
        job = json.loads(json.dumps(job))  # as read back: tuples are lists
        self.folder = folder
        description = folder / "job.json"
        if folder.exists() and (not description.exists() or json.loads(description.read_text()) != job):
            shutil.rmtree(folder)
        folder.mkdir(exist_ok=True)
        if not description.exists():
            description.write_text(json.dumps(job))
        self.done, self.files = 0, []
        for path in sorted(folder.glob("part-*.packets")):
            first, count = (int(number) for number in path.stem.split("-")[1:])
            if first != self.done:
                break
            self.files.append(path)
            self.done += count
        for temporary in folder.glob(".*.tmp"):
            temporary.unlink()

    def packets(self):
        """(pts, dts, duration, keyframe, data) of every frame done, in decoding order; each part's codec header is
        checked against the first's (parts are muxed into one stream)."""
        header = None
        for path in self.files:
            with open(path, "rb") as file:
                if file.read(len(MAGIC)) != MAGIC:
                    raise VideoError(f"{path} is not a part srcnn wrote; remove {self.folder} to start over")
                extradata = file.read(struct.unpack("<I", file.read(4))[0])
                if header not in (None, extradata):
                    raise VideoError(f"the parts in {self.folder} were encoded differently; remove it to start over")
                header = extradata
                while record := file.read(RECORD.size):
                    pts, dts, duration, keyframe, length = RECORD.unpack(record)
                    yield (
                        None if pts == NONE else pts,
                        None if dts == NONE else dts,
                        duration,
                        bool(keyframe),
                        file.read(length),
                    )


class Part:
    """Frames being encoded into one part, from the frame numbered `first` shown at `opened` seconds: written to a
    hidden file, complete (and named) when closed."""

    def __init__(self, parts, first, opened, encoding):
        self.parts, self.first, self.opened, self.count = parts, first, opened, 0
        self.encoder = encoding.encoder()
        self.temporary = parts.folder / f".part-{first:09d}.tmp"
        self.file = open(self.temporary, "wb")
        extradata = self.encoder.extradata or b""
        self.file.write(MAGIC + struct.pack("<I", len(extradata)) + extradata)

    def add(self, frame):
        self.write(self.encoder.encode(frame))
        self.count += 1

    def write(self, packets):
        for packet in packets:
            data = bytes(packet)
            self.file.write(
                RECORD.pack(
                    NONE if packet.pts is None else packet.pts,
                    NONE if packet.dts is None else packet.dts,
                    packet.duration or 0,
                    packet.is_keyframe,
                    len(data),
                )
                + data
            )

    def close(self):
        """Flush the encoder and keep the part (synced to disk before it is named complete); None."""
        self.write(self.encoder.encode(None))
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        path = self.parts.folder / f"part-{self.first:09d}-{self.count:09d}.packets"
        self.temporary.replace(path)
        self.parts.files.append(path)
        self.parts.done += self.count


def mux(container, carried, parts, encoding, rotation, path):
    """Write `path`: the parts' video packets and the packets of the input `container`'s streams numbered
    `carried`, copied, interleaved by time; the input's metadata, the video's rotation."""
    with av.open(str(path), "w") as output:
        video = output.add_stream(CODECS[encoding.codec].encoder)
        encoding.configure(video.codec_context)
        if rotation:
            video.set_display_rotation(rotation)
        streams = {index: output.add_stream_from_template(container.streams[index]) for index in carried}
        output.metadata.update(container.metadata)
        time_base = Fraction(*encoding.time_base)

        def video_packets():
            last_dts = None
            for pts, dts, duration, keyframe, data in parts.packets():
                packet = av.Packet(data)
                if dts is not None and last_dts is not None and dts <= last_dts:
                    dts = last_dts + 1  # where two parts meet, a variable frame rate can make the encoders' overlap
                packet.pts, packet.dts, packet.duration, packet.is_keyframe = pts, dts, duration, keyframe
                packet.time_base, packet.stream = time_base, video
                last_dts = dts if dts is not None else last_dts
                yield packet

        def carried_packets():
            for packet in container.demux(*(container.streams[index] for index in carried)) if carried else ():
                if packet.dts is None and packet.pts is None:
                    continue  # the demuxer's end-of-stream marker
                packet.stream = streams[packet.stream.index]
                yield packet

        def when(packet):
            stamp = packet.dts if packet.dts is not None else packet.pts
            return float(stamp * packet.time_base) if stamp is not None else float("-inf")

        for packet in heapq.merge(video_packets(), carried_packets(), key=when):
            output.mux(packet)
