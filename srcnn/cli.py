"""The `srcnn` command: upscale image and video files and folders on this machine, or images through a running
TorchServe.

    srcnn upscale INPUT... [-o OUTPUT] [--scale S | --size WxH] [--format png|jpeg|webp] [--server URL]
                           [--codec h264|hevc|vp9|av1] [--crf N]
    srcnn compare IMAGE -o page.html [--scale S | --size WxH]

`python -m srcnn` is the same command. INPUT is an image or video file or a folder (its files, not its
sub-folders). With one input, -o names the output file; by default it is written beside the input as NAME_x2.png
(NAME_64x48.png for a size; a video keeps its extension when srcnn writes that container, else becomes .mp4). With
several, -o names a folder, created if needed (by default each output goes beside its input); -o NAME/ names a
folder even for one input. The scale is any number from 1 to 8 (default 2); a size is WxH, or Wx or xH to keep the
aspect ratio. An image's format is --format's, else the -o file's extension, else PNG.

A video (srcnn.video) is done on this machine only, frame by frame with a progress bar, its sound and subtitles
copied; --codec and --crf choose its encoding (default H.264 at CRF 18, VP9 in a .webm). A video stopped halfway
(Ctrl-C, a kill) is resumed by the same command, from the frames already done.

Locally the image goes through the same decoding, colour handling, engine and tiles as the service (srcnn.codec,
srcnn.bands). With --server URL (e.g. http://127.0.0.1:8080) each file is sent to TorchServe instead, a few at
a time, retried with back-off while a worker is being replaced; the server's message is printed when it refuses
one.

A folder's files that are neither images nor videos srcnn reads (a camera's RAW beside its JPEG, notes) are left
alone and named in the summary; those that are outputs of an earlier run (NAME_x2.png beside
NAME.png, NAME-png_x2.png beside NAME.png) are not taken as inputs. Output names are decided once the inputs are
known to be images: two inputs that would share one (photo.png and photo.tga, IMG_0001.JPG and IMG_0001.HEIC)
each get their own extension in it (photo-png_x2.png, photo-tga_x2.png), whatever else the folder holds. An
output that exists and is a complete image is skipped (and counted), so a batch run again does only what is left;
--force redoes them. An input is never overwritten, nor an existing file that is not an image. A file that fails
gets one line on stderr naming it and why, and the others are still written. Exit status: 0 when every output was
written or skipped, 1 when some failed, 2 for a usage error (a missing input among them), 130 when interrupted.
"""

import argparse
import os
import re
import signal
import sys
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from srcnn import __version__
from srcnn.api import Upscaler
from srcnn.choice import settings
from srcnn.codec import (
    DECODE_FORMATS,
    FORMATS_TEXT,
    EmptyImage,
    ImageError,
    NotAnImage,
    decode_image,
    eight_bit,
    encode_image,
)
from srcnn.compare import compare_page
from srcnn.files import write_atomically
from srcnn.scaling import DEFAULT_SCALE, ScaleError, parse_scale, parse_size
from srcnn.video import CODECS, OUTPUT_FORMATS, VIDEO_SUFFIXES, VideoError, VideoWarning, is_video, output_suffix
from srcnn.weights import SHIPPED

FORMATS = {"png": ("image/png", ".png"), "jpeg": ("image/jpeg", ".jpg"), "webp": ("image/webp", ".webp")}
FORMAT_OF_SUFFIX = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}
LOCAL_MAX_PIXELS = Image.MAX_IMAGE_PIXELS  # Pillow's own guard against decompression bombs: about 89 million


class Failed(Exception):
    """One file that could not be done; the message says why."""


@dataclass(frozen=True)
class Task:
    source: Path
    target: Path
    video: bool


def argument(parse):
    """An argparse type from a srcnn.scaling parser: its message on a bad value."""

    def convert(text):
        try:
            return parse(text)
        except ScaleError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="srcnn", description="SRCNN super-resolution of image files.")
    parser.add_argument("--version", action="version", version=f"srcnn {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser(
        "upscale", description=__doc__.split("\n\n")[2], help="upscale image files or folders"
    )
    command.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image or video files, or folders")
    command.add_argument(
        "-o",
        "--output",
        help="the output file (one input) or folder (several, or a name ending in /); default: beside each input",
    )
    sizing = command.add_mutually_exclusive_group()
    sizing.add_argument("--scale", type=argument(parse_scale), help="a factor from 1 to 8, such as 2.5 (default 2)")
    sizing.add_argument(
        "--size",
        type=argument(parse_size),
        metavar="WxH",
        help="the output size, such as 1920x1080, or 1920x or x1080 to keep the aspect ratio",
    )
    command.add_argument(
        "--format", choices=FORMATS, help="an image's: png, jpeg or webp (default: -o's extension, else png)"
    )
    command.add_argument(
        "--codec", choices=CODECS, help="a video's (default h264; vp9 in a .webm); the container is -o's extension"
    )
    command.add_argument(
        "--crf",
        type=int,
        metavar="N",
        help="a video's quality, lower is better (default: 18 for h264, 20 hevc, 31 vp9, 30 av1)",
    )
    command.add_argument(
        "--server",
        metavar="URL",
        help="a running TorchServe to do the work, e.g. http://127.0.0.1:8080 (default: this machine)",
    )
    command.add_argument("--jobs", type=int, default=4, help="requests in flight with --server (default 4)")
    command.add_argument(
        "--force",
        action="store_true",
        help="redo outputs that exist (by default a complete one is skipped); never an input",
    )
    page = commands.add_parser(
        "compare",
        description="Write one self-contained HTML page (images embedded, "
        "nothing fetched) with a slider between bicubic and SRCNN on IMAGE, the input "
        "(nearest neighbour) on offer too, zoom and pan kept in step.",
        help="a before/after page of one image",
    )
    page.add_argument("image", type=Path, metavar="IMAGE")
    page.add_argument("-o", "--output", type=Path, required=True, help="the page to write, such as page.html")
    page_sizing = page.add_mutually_exclusive_group()
    page_sizing.add_argument("--scale", type=argument(parse_scale), help="a factor from 1 to 8 (default 2)")
    page_sizing.add_argument("--size", type=argument(parse_size), metavar="WxH", help="the output size, as upscale's")
    for subcommand in (command, page):
        subcommand.add_argument(
            "--weights",
            type=Path,
            default=SHIPPED,
            help="folder of srcnn_x{2,3,4}.pth, locally (default: the shipped weights)",
        )
        subcommand.add_argument(
            "--threads",
            type=int,
            default=0,
            help="the most cores one image is computed on, locally (default: every core)",
        )
        subcommand.add_argument(
            "--precision",
            choices=settings("cpu"),
            default="auto",
            help="the network's engine or arithmetic, locally (default auto: the service's, "
            "the fastest measured on this machine within 0.02 dB of fp32; "
            "docs/speed-and-precision.md, Precision)",
        )
    args = parser.parse_args(argv)
    if args.scale is None and args.size is None:
        args.scale = DEFAULT_SCALE
    if args.command == "compare":
        if not args.image.is_file():
            parser.error(f"no such file: {args.image}")
        return args, None
    missing = [str(path) for path in args.inputs if not path.exists()]
    if missing:
        parser.error(f"no such file or folder: {', '.join(missing)}")
    sources, args.videos, args.left_alone = collect(args.inputs)
    if not sources:
        parser.error(
            f"no images or videos to upscale in {', '.join(str(path) for path in args.inputs)}"
            + (f" ({len(args.left_alone)} files that are neither)" if args.left_alone else "")
        )
    folder_named = args.output is not None and args.output.endswith(("/", os.sep))
    args.output = None if args.output is None else Path(args.output)
    one_file = (
        len(sources) == 1
        and not args.inputs[0].is_dir()
        and not folder_named
        and not (args.output and args.output.is_dir())
    )
    if args.output and one_file and sources[0] in args.videos:
        if args.output.suffix.lower() not in OUTPUT_FORMATS:
            parser.error(f"-o {args.output}: name a {', '.join(OUTPUT_FORMATS)} file for a video")
        if args.format:
            parser.error("--format is an image's; a video's container is -o's extension (--codec its encoding)")
    elif args.output and one_file:
        suffix_format = FORMAT_OF_SUFFIX.get(args.output.suffix.lower())
        if suffix_format is None and args.format is None:
            parser.error(f"-o {args.output}: name a .png, .jpg or .webp file, or give --format")
        if suffix_format and args.format and suffix_format != args.format:
            parser.error(f"-o {args.output} is a {suffix_format} name but --format is {args.format}")
        args.format = args.format or suffix_format
    elif args.output and args.output.is_file():
        parser.error(f"-o {args.output} is a file; with several inputs -o names a folder")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    args.format = args.format or "png"
    image_extension = FORMATS[args.format][1]
    return args, plan(
        sources,
        args.videos,
        args.output if one_file else None,
        None if one_file else args.output,
        label(args.scale, args.size),
        lambda source: output_suffix(source) if source in args.videos else image_extension,
    )


# The end of an output's name: _x2, _x2.5, _64x48, _64x or _x48 (see `label`).
OUTPUT_SUFFIX = re.compile(r"_(x\d+(\.\d+)?|\d+x\d*)$")


def collect(inputs):
    """(the files to upscale, the set of those that are videos, the folders' files left alone): each file input, and
    the files of each folder (sorted, hidden ones skipped) that are images or videos srcnn reads and not outputs of
    an earlier run (`earlier_output`). A file input is a video when FFmpeg reads it as one or its name says so (a
    damaged one is then answered as a damaged video), else an image."""
    sources, videos, left_alone = [], set(), []
    for path in inputs:
        if path.is_dir():
            files = sorted(child for child in path.iterdir() if child.is_file() and not child.name.startswith("."))
            names = {child.name.lower() for child in files}
            stems = {child.stem for child in files}
            for child in files:
                kind = kind_of(child)
                if kind is None:
                    left_alone.append(child)
                elif not earlier_output(child, stems, names):
                    sources.append(child)
                    if kind == "video":
                        videos.add(child)
        else:
            sources.append(path)
            kind = kind_of(path)
            if kind == "video" or (kind is None and path.suffix.lower() in VIDEO_SUFFIXES):
                videos.add(path)
    return sources, videos, left_alone


def kind_of(path):
    """ "image" when `path` starts as an image in a format srcnn reads (its header, read by Pillow), "video" when
    FFmpeg opens it as a video container srcnn reads (srcnn.video), else None."""
    try:
        # What Pillow warns of is said on the file's line, once decoded.
        with warnings.catch_warnings(action="ignore"), Image.open(path, formats=DECODE_FORMATS):
            return "image"
    except Exception:  # any header Pillow cannot take: not an image this command reads
        return "video" if is_video(path) else None


def earlier_output(path, stems, names):
    """Whether `path` is an output of an earlier run beside its input: NAME_LABEL.EXT beside a NAME.* (`stems`), or
    NAME-SUFFIX_LABEL.EXT (or NAME-SUFFIX-FOLDER_LABEL.EXT) beside NAME.SUFFIX (`names`, lower case)."""
    if not OUTPUT_SUFFIX.search(path.stem):
        return False
    made_from = OUTPUT_SUFFIX.sub("", path.stem)
    parts = made_from.split("-")
    return made_from in stems or any(
        f"{'-'.join(parts[:cut])}.{parts[cut]}".lower() in names for cut in range(1, len(parts))
    )


def label(scale, size):
    """The part of an output's name that says how it was made: x2.5, or 64x48, 80x, x60 for a size."""
    if size is None:
        return f"x{scale:g}"
    return "x".join("" if side is None else str(side) for side in size)


def plan(sources, videos, output_file, output_folder, name_label, extension):
    """A Task per source (a video when in `videos`): -o's file for a single input, else NAME_LABEL.EXT in -o's
    folder or beside the input, EXT being `extension(source)`.
    Inputs whose outputs would share a name each have their extension in it (NAME-SUFFIX_LABEL.EXT), and those
    that would still share one their folder's name too (NAME-SUFFIX-FOLDER_LABEL.EXT)."""
    if output_file is not None:
        return [Task(sources[0], output_file, sources[0] in videos)]

    def target(source, name):
        return (output_folder or source.parent) / f"{name}_{name_label}{extension(source)}"

    names = {source: source.stem for source in sources}
    for widen in (
        lambda source: f"{source.stem}-{source.suffix[1:].lower()}",
        lambda source: f"{source.stem}-{source.suffix[1:].lower()}-{source.parent.resolve().name}",
    ):
        shared = Counter(target(source, name).resolve() for source, name in names.items())
        names = {
            source: widen(source) if shared[target(source, name).resolve()] > 1 else name
            for source, name in names.items()
        }
    return [Task(source, target(source, name), source in videos) for source, name in names.items()]


class Local:
    """Upscales on this machine with the engine and weights the service uses."""

    def __init__(self, args):
        self.scale, self.size, self.media_type = args.scale, args.size, FORMATS[args.format][0]
        self.codec, self.crf = args.codec, args.crf
        self.upscaler = Upscaler(args.weights, args.precision, threads=args.threads or None)

    def __call__(self, data):
        """(the answer's bytes, what the decoder warned of)."""
        image = decode_image(data, LOCAL_MAX_PIXELS)
        answer = self.upscaler.upscale(image, self.scale, self.size)
        return encode_image(answer, self.media_type, threads=self.upscaler.threads), image.info["decoder_warnings"]

    def video(self, task, progress):
        self.upscaler.upscale_video(task.source, task.target, self.scale, self.size, self.codec, self.crf, progress)


class Remote:
    """Sends each file to a running TorchServe (srcnn.client)."""

    def __init__(self, args):
        import requests  # here, not at the top: the local command never needs HTTP

        from srcnn.client import predictions_url

        self.session = requests.Session()
        self.url = predictions_url(args.server)
        sizing = {"X-Scale": f"{args.scale:g}"} if args.size is None else {"X-Size": label(None, args.size)}
        self.headers = {**sizing, "Accept": FORMATS[args.format][0], "Content-Type": "application/octet-stream"}

    def __call__(self, data):
        from srcnn.client import Refused, remote_upscale

        try:
            return remote_upscale(self.session, self.url, data, self.headers), []
        except Refused as error:
            raise Failed(str(error)) from None

    def video(self, task, progress):
        raise Failed("a video is upscaled on this machine only (the server takes images); run without --server")


class FrameProgress:
    """A video's progress bar (frames, frames a second, time left), under the batch's when there is one; a line
    saying so when a stopped run is resumed."""

    def __init__(self, task, nested):
        self.task, self.nested, self.bar = task, nested, None

    def __call__(self, done, total):
        if self.bar is None:
            if done:
                tqdm.write(f"srcnn: {self.task.source}: resuming, {done} frames done by a stopped run", file=sys.stderr)
            self.bar = tqdm(
                total=total,
                initial=done,
                unit="frame",
                desc=self.task.source.name,
                file=sys.stderr,
                position=int(self.nested),
                leave=not self.nested,
                disable=None,
            )
        self.bar.update(done - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


class Done(Exception):
    """A task whose output exists and is complete: skipped without --force."""


def check_target(task, inputs, claimed, force):
    """Refuse a task whose output would overwrite an input or another task's output; without --force, skip one
    whose output is a complete image or video already (outputs are written whole or not at all) and refuse to
    overwrite any other file."""
    target = task.target.resolve()
    if target in inputs:
        raise Failed(f"the output {task.target} would overwrite an input; choose another -o")
    if target in claimed:
        raise Failed(f"the output {task.target} is also another input's; rename one of the inputs")
    claimed.add(target)
    if task.target.exists() and not force and task.video:
        if not is_video(task.target):
            raise Failed(f"{task.target} exists and is not a video; pass --force to overwrite it")
        raise Done()
    if task.target.exists() and not force:
        try:
            with warnings.catch_warnings(action="ignore"), Image.open(task.target) as image:
                image.verify()
        except Exception:  # not an image Pillow can read through: not ours
            raise Failed(f"{task.target} exists and is not an image; pass --force to overwrite it") from None
        raise Done()


def run(task, upscaler, nested):
    """Read, upscale and write one file (atomically: a failure leaves no partial output); what the decoder warned
    of, for the file's line."""
    if task.video:
        progress = FrameProgress(task, nested)
        try:
            task.target.parent.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings(record=True) as said:
                warnings.simplefilter("always", VideoWarning)
                upscaler.video(task, progress)
        except (VideoError, ScaleError, OSError) as error:
            raise Failed(str(error)) from None
        except Exception as error:  # a fault on one file must not stop the others
            raise Failed(f"failed unexpectedly ({type(error).__name__}: {error})") from None
        finally:
            progress.close()
        return [str(warning.message) for warning in said]
    try:
        data = task.source.read_bytes()
    except OSError as error:
        raise Failed(error.strerror or str(error)) from None
    try:
        body, warned = upscaler(data)
    except Failed:
        raise
    except (EmptyImage, NotAnImage):
        raise Failed(f"not an image or video file; srcnn reads {FORMATS_TEXT} and videos") from None
    except (ImageError, ScaleError) as error:
        raise Failed(str(error)) from None
    except Exception as error:  # a fault on one file must not stop the others
        raise Failed(f"failed unexpectedly ({type(error).__name__}: {error})") from None
    task.target.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(task.target, body)
    return warned


def written_line(task, warned):
    """A written file's line: where it went, and the first of its decoder's warnings (each file one line)."""
    more = f" and {len(warned) - 1} more" if len(warned) > 1 else ""
    return f"srcnn: {task.source} -> {task.target}" + (f" (warned: {warned[0]}{more})" if warned else "")


def compare(args):
    """`srcnn compare`: the before/after page of one image (srcnn.compare), written atomically."""
    try:
        image = decode_image(args.image.read_bytes(), LOCAL_MAX_PIXELS)
        upscaler = Upscaler(args.weights, args.precision, threads=args.threads or None)
        page = compare_page(eight_bit(image), upscaler, args.scale, args.size, title=args.image.name)
    except (EmptyImage, NotAnImage):
        print(f"srcnn: {args.image}: not an image file; srcnn reads {FORMATS_TEXT}", file=sys.stderr)
        return 1
    except (ImageError, ScaleError, OSError, ValueError) as error:
        print(f"srcnn: {args.image}: {error}", file=sys.stderr)
        return 1
    write_atomically(args.output, page)
    print(f"srcnn: wrote {args.output}", file=sys.stderr)
    return 0


def stop(signal_number, frame):
    raise KeyboardInterrupt


def main(argv=None):
    args, tasks = parse_args(argv)
    if args.command == "compare":
        return compare(args)
    inputs = {task.source.resolve() for task in tasks}
    failures, ready, claimed, skipped = [], [], set(), 0
    for task in tasks:  # each file gets one line: written (-> where), skipped or refused (why)
        try:
            check_target(task, inputs, claimed, args.force)
            ready.append(task)
        except Failed as error:
            failures.append(task)
            print(f"srcnn: {task.source}: {error}", file=sys.stderr)
        except Done:
            skipped += 1
            print(f"srcnn: {task.source}: skipped, {task.target} exists (--force redoes it)", file=sys.stderr)
    try:
        upscaler = (Remote if args.server else Local)(args) if ready else None
    except (OSError, ValueError) as error:  # weights missing, or not calibrated for the precision
        print(f"srcnn: {error}", file=sys.stderr)
        return 2
    progress = tqdm(total=len(ready), unit="file", disable=None if len(ready) > 1 else True, file=sys.stderr)

    def attempt(task):
        try:
            warned = run(task, upscaler, nested=not progress.disable)
        except Failed as error:
            failures.append(task)
            progress.write(f"srcnn: {task.source}: {error}", file=sys.stderr)
        else:
            progress.write(written_line(task, warned), file=sys.stderr)
        progress.update()

    terminate = signal.signal(signal.SIGTERM, stop)  # `kill` stops as Ctrl-C does: a video keeps its frames done
    try:
        if args.server:
            with ThreadPoolExecutor(args.jobs) as pool:
                list(pool.map(attempt, ready))
        else:  # in this thread, where Ctrl-C and SIGTERM arrive
            for task in ready:
                attempt(task)
    except KeyboardInterrupt:
        progress.close()
        print(
            f"srcnn: interrupted after {progress.n} of {len(ready)}; the same command goes on from there "
            "(a video from the frames it had done)",
            file=sys.stderr,
        )
        return 130
    finally:
        signal.signal(signal.SIGTERM, terminate)
    progress.close()
    done = len(tasks) - len(failures) - skipped
    if len(tasks) > 1 or failures or skipped or args.left_alone:
        left = ", ".join(str(path) for path in args.left_alone[:5]) + (", …" if len(args.left_alone) > 5 else "")
        print(
            f"srcnn: {done} of {len(tasks)} written"
            + (f", {skipped} skipped: their outputs exist (--force redoes them)" if skipped else "")
            + (f", {len(failures)} refused" if failures else "")
            + (
                f"; {len(args.left_alone)} neither images nor videos srcnn reads, left alone: {left}"
                if args.left_alone
                else ""
            ),
            file=sys.stderr,
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
