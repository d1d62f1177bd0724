"""Decoding untrusted image bytes into a mode `upscale()` takes, and encoding the answer.

Every way a body can fail to be a usable image raises a subclass of `ImageError`; nothing else escapes
`decode_image` for any input. Pillow's decompression-bomb guard stays as it is: the pixel limit here is
checked from the header, before any pixel is decoded.

A photograph's colour profile and metadata travel with it (`carry_metadata`, `encode_image`): the ICC profile
unchanged, EXIF with its orientation reset (decoding applied it) and its pixel dimensions updated, and the
resolution scaled with the pixels, so that the print size stays the same (docs/decisions.md, D10).

A 16-bit PNG or TIFF (grey or colour, with or without alpha) and Pillow's 16- and 32-bit grey modes decode into a
srcnn.deep.DeepImage, which keeps every bit, counts its pixels twice against the limits and is answered as a
16-bit PNG. Pillow reads 16-bit colour in 8 bits only, so those files are decoded by imagecodecs (libpng, libtiff).
"""

import ctypes
import io
import struct
import threading
import warnings
import zlib
from pathlib import Path

import imagecodecs
import numpy as np
import PIL
import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

from srcnn.bands import SUPPORTED_MODES
from srcnn.color import to_levels
from srcnn.deep import PIXEL_WEIGHT, DeepImage
from srcnn.png import COLOUR_TYPES, LimitPassed, encode_png
from srcnn.scaling import largest_size

pillow_heif.register_heif_opener()  # HEIC/HEIF for Image.open: the format "HEIF", its transforms applied on reading

# libtiff's error handler: (module, printf format, va_list). Pillow's own prints to stderr, outside any request.
LIBTIFF_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)
LIBC = ctypes.CDLL(None)  # the process's C library, for vsnprintf


@LIBTIFF_HANDLER
def libtiff_error(module, format, arguments):
    """What libtiff says of a damaged TIFF ("Using code not yet in table"), as a Python warning: `decode_image`
    catches it with the request's other decoder warnings."""
    message = ctypes.create_string_buffer(400)
    LIBC.vsnprintf(message, ctypes.c_size_t(len(message)), format, ctypes.c_void_p(arguments))
    warnings.warn(f"libtiff: {message.value.decode(errors='replace')}", stacklevel=1)


def route_libtiff_errors():
    """Give the libtiff inside Pillow's wheel (the one its TIFF decoder calls) `libtiff_error` as its error
    handler; a Pillow built against another libtiff keeps that one's."""
    found = sorted((Path(PIL.__file__).parent.parent / "pillow.libs").glob("libtiff*.so*"))
    if found:
        library = ctypes.CDLL(str(found[0]))
        library.TIFFSetErrorHandler.argtypes, library.TIFFSetErrorHandler.restype = [LIBTIFF_HANDLER], ctypes.c_void_p
        library.TIFFSetErrorHandler(libtiff_error)


route_libtiff_errors()

# What the service decodes: Pillow's formats that hold photographs, pictures and icons well, and HEIC (pillow-heif).
DECODE_FORMATS = (
    "PNG",
    "JPEG",
    "WEBP",
    "HEIF",
    "AVIF",
    "BMP",
    "TIFF",
    "GIF",
    "TGA",
    "PPM",
    "ICO",
    "CUR",
    "PSD",
    "SGI",
    "PCX",
    "QOI",
    "DDS",
)
ENCODE_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
ENCODE_MEDIA = {name: media for media, name in ENCODE_FORMATS.items()}
MAX_SIDE = {"PNG": 2**31 - 1, "JPEG": 65_535, "WEBP": 16_383}
FORMATS_TEXT = "PNG, JPEG, WebP, HEIC, AVIF, BMP, TIFF, GIF, TGA, PPM/PGM/PBM, ICO/CUR, PSD, SGI, PCX, QOI or DDS"
FOREIGN_PROFILE_MODES = ("CMYK", "LAB", "HSV")  # converted to RGB: their ICC profile no longer describes the pixels
KEYED_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "RGB")  # a tRNS colour key marks their transparent pixels
ORIENTATION, IMAGE_WIDTH, IMAGE_LENGTH, X_RESOLUTION, Y_RESOLUTION = 0x0112, 0x0100, 0x0101, 0x011A, 0x011B
BITS_PER_SAMPLE, PHOTOMETRIC, SAMPLES_PER_PIXEL, EXTRA_SAMPLES, SAMPLE_FORMAT = 258, 262, 277, 338, 339
ASSOCIATED_ALPHA = 1  # ExtraSamples: the colour is premultiplied by the alpha
DEEP_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # Pillow's grey modes of more than 8 bits
# EXIF orientation -> the array turned upright, as Pillow's ImageOps.exif_transpose turns an image.
UPRIGHT = {
    2: lambda pixels: pixels[:, ::-1],
    3: lambda pixels: pixels[::-1, ::-1],
    4: lambda pixels: pixels[::-1],
    5: lambda pixels: pixels.transpose(1, 0, 2),
    6: lambda pixels: np.rot90(pixels, -1),
    7: lambda pixels: pixels[::-1, ::-1].transpose(1, 0, 2),
    8: lambda pixels: np.rot90(pixels, 1),
}
EXIF_IFD, PIXEL_X_DIMENSION, PIXEL_Y_DIMENSION = 0x8769, 0xA002, 0xA003
JPEG_EXIF_LIMIT = 65_533  # bytes of EXIF one JPEG APP1 segment holds
METADATA = ("icc_profile", "exif", "dpi")  # what of `image.info` travels from the upload to the answer
MAX_DPI = 65_535  # JPEG's density field; a resolution past it, under 1 or not a number is nonsense and dropped


class ImageError(ValueError):
    """An image refused: a body that cannot be used as one, or one too large to take or to answer; `kind` names
    the reason in snake_case. Too large is one word a thing measured: the input's pixels (image_too_large), the
    answer's pixels or sides (output_too_large), the answer's encoded bytes (response_too_large)."""

    kind = "invalid_image"


class EmptyImage(ImageError):
    """No bytes at all: the request carried no image."""

    kind = "empty_body"


class NotAnImage(ImageError):
    """Bytes that no image format's header describes: text, HTML, a PDF, noise."""

    kind = "not_an_image"


class UnsupportedFormat(ImageError):
    """An image Pillow knows in a format or mode the service does not take."""

    kind = "unsupported_format"


class CorruptImage(ImageError):
    """A known format whose header or data cannot be decoded: truncated, damaged."""

    kind = "corrupt_image"


class ImageTooLarge(ImageError):
    """An input over its pixel limit (max_input_pixels); the message gives the limit and what fits."""

    kind = "image_too_large"


class OutputTooLarge(ImageError):
    """An answer over its pixel limit (max_output_pixels), or wider or taller than its format holds."""

    kind = "output_too_large"


class ResponseTooLarge(ImageError):
    """An answer whose encoding passes, or would pass, its byte limit (max_response_bytes; encoding stops there, so
    memory stays bounded)."""

    kind = "response_too_large"


class CappedBuffer(io.BytesIO):
    """An in-memory file that refuses to grow past `limit` bytes (ResponseTooLarge)."""

    def __init__(self, limit, format):
        super().__init__()
        self.limit, self.format = limit, format

    def write(self, data):
        if self.tell() + len(data) > self.limit:
            raise answer_too_large(self.format, self.limit)
        return super().write(data)


def answer_too_large(format, limit):
    others = [media for media in ENCODE_FORMATS if media != ENCODE_MEDIA[format]]
    return ResponseTooLarge(
        f"the answer as {format} passed the limit of {limit:,} bytes; ask for "
        f"{' or '.join(others)} (Accept), or send a smaller image"
    )


# The first bytes of the accepted formats whose files announce themselves: a body that starts so and that no decoder
# takes is a damaged file of that format (corrupt_image), not something else (not_an_image).
SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"qoif", "QOI"),
    (b"8BPS", "PSD"),
    (b"DDS ", "DDS"),
)
BRANDS = {b"WEBP": "WebP", b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIF", b"avif": "AVIF", b"avis": "AVIF"}


def announced_format(data):
    """The accepted format whose signature starts `data` (RIFF....WEBP, an ISO box ftyp with a HEIF or AVIF
    brand, or one of SIGNATURES), or None."""
    data = bytes(data[:16])
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return BRANDS[b"WEBP"]
    if data[4:8] == b"ftyp" and data[8:12] in BRANDS:
        return BRANDS[data[8:12]]
    return next((name for magic, name in SIGNATURES if data.startswith(magic)), None)


# The first bytes of the video containers people send by mistake: refused with where videos are done instead.
VIDEO_SIGNATURES = ((b"\x1a\x45\xdf\xa3", "Matroska or WebM"), (b"\x00\x00\x01\xba", "MPEG"))


def video_format(data):
    """The video container `data` starts as (an ISO box ftyp with a brand not an image's: MP4, MOV; RIFF....AVI;
    Matroska, WebM, MPEG-PS), or None."""
    data = bytes(data[:16])
    if data[4:8] == b"ftyp" and data[8:12] not in BRANDS:
        return "MP4 or QuickTime"
    if data[:4] == b"RIFF":
        return "AVI" if data[8:12] == b"AVI " else None
    return next((name for magic, name in VIDEO_SIGNATURES if data.startswith(magic)), None)


def sniff_format(data):
    """The name of the image format Pillow sees in `data`'s header, or None (reads the header only)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format
    except Exception:  # any header Pillow cannot parse means: not an image it knows
        return None


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """Bytes of an image in one of DECODE_FORMATS (the first frame; an icon's largest size; a PSD's composite) ->
    PIL image in one of SUPPORTED_MODES.

    EXIF orientation is applied. Images with more than `max_pixels` pixels are refused from the header alone.
    Raises an `ImageError` subclass for every unusable input. What Pillow warns of while decoding (damaged EXIF,
    a tag larger than the file, a decompression-bomb size) is caught, never printed or logged, and kept in the
    answer's `info["decoder_warnings"]` (each message once), for the request's log line.
    """
    with _CATCHING, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # The collector may finalize an unrelated object left open (a socket, a transport) during the decode: its
        # ResourceWarning is not the decoder's word, and Python ignores it by default.
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            image = decoded(data, max_pixels)
        except CorruptImage as error:
            if not caught:
                raise
            raise CorruptImage(f"{error}; the decoder said: {caught[0].message}") from None
        try:
            if isinstance(image, Image.Image):  # a DeepImage's EXIF is bytes until carry_metadata reads them
                image.getexif()  # parsed, and cached on the image, here where its warnings are caught
        except Exception:  # a damaged EXIF block: carry_metadata leaves it out of the answer
            pass
    image.info["decoder_warnings"] = list(dict.fromkeys(str(warning.message) for warning in caught))
    return image


_CATCHING = threading.Lock()  # warnings.catch_warnings swaps process-wide state: one decode at a time under it


def decoded(data, max_pixels):
    """`decode_image`'s work, its warnings left to the caller."""
    if not data:
        raise EmptyImage("the request has no image in it")
    try:
        image = Image.open(io.BytesIO(bytes(data)), formats=DECODE_FORMATS)
    except Image.DecompressionBombError as error:
        raise ImageTooLarge(
            f"the image is far over the limit of {max_pixels:,} pixels ({error}); send one of at "
            f"most {max_pixels:,} pixels"
        ) from None
    except UnidentifiedImageError:
        tags = tiff_tags(data)
        if grey_and_alpha_tiff(tags):  # a 16-bit one, which Pillow does not identify
            return deep_tiff(data, tags, max_pixels)
        name = sniff_format(data)
        if name:
            raise UnsupportedFormat(f"{name} images are not supported; send {FORMATS_TEXT}") from None
        video = video_format(data)
        if video:
            raise UnsupportedFormat(
                f"this is a video ({video}), and the service takes images; a video is upscaled "
                "on the machine that has it, frame by frame: srcnn upscale clip.mp4"
            ) from None
        announced = announced_format(data)
        if announced:
            raise CorruptImage(
                f"the {announced} header could not be read: the file is damaged or cut short; send the whole file"
            ) from None
        raise NotAnImage(f"the body is not an image; send {FORMATS_TEXT}") from None
    except Exception as error:  # a recognised header that Pillow cannot parse
        raise CorruptImage(f"the image header could not be read ({type(error).__name__}: {error})") from None
    width, height = image.size
    if width < 1 or height < 1:
        raise CorruptImage(f"the image header claims a size of {width}×{height}")
    deep = deep_decoder(image, data)
    deep_mode = deep is not None or image.mode in DEEP_MODES
    check_input_pixels(width, height, max_pixels, PIXEL_WEIGHT if deep_mode else 1)
    try:
        if deep is not None:
            return deep_decoded(image, deep(bytes(data)))
        image.load()
        image = ImageOps.exif_transpose(image)
        return to_supported_mode(image)
    except ImageError:
        raise
    except Exception as error:  # the decoders raise many types on damaged data
        raise CorruptImage(f"the {image.format} data could not be decoded ({type(error).__name__}: {error})") from None


def check_input_pixels(width, height, max_pixels, weight=1):
    """Raise ImageTooLarge, saying what fits, for an input of more than `max_pixels` pixels, each counted `weight`
    times (srcnn.deep.PIXEL_WEIGHT for a 16-bit image)."""
    if width * height * weight > max_pixels:
        most = largest_size((width, height), max_pixels // weight)
        deep = " for 16-bit images, which take twice the memory" if weight > 1 else ""
        raise ImageTooLarge(
            f"the image is {width}×{height} = {width * height:,} pixels; the limit is {max_pixels // weight:,}"
            f"{deep}: send it resized to at most {most[0]}×{most[1]} (its shape)" + (" or in 8 bits" if deep else "")
        )


def deep_decoder(image, data):
    """imagecodecs' decoder of `image` (opened by Pillow, `data` its bytes) where it holds 16-bit samples Pillow
    would read in 8 bits or not at all (PNG of bit depth 16; TIFF of 1 to 4 unsigned 16-bit samples, grey or RGB),
    else None."""
    if image.format == "PNG":
        return imagecodecs.png_decode if data[12:16] == b"IHDR" and data[24] == 16 else None
    if image.format != "TIFF":
        return None
    tags = image.tag_v2
    bits, formats = (set(np.atleast_1d(tags.get(tag, 1)).tolist()) for tag in (BITS_PER_SAMPLE, SAMPLE_FORMAT))
    samples = {1: (1, 2), 2: (3, 4)}.get(tags.get(PHOTOMETRIC), ())  # grey (BlackIsZero), RGB; alpha or not
    if bits == {16} and formats == {1} and tags.get(SAMPLES_PER_PIXEL, 1) in samples:
        return imagecodecs.tiff_decode
    return None


TIFF_VALUES = {3: "H", 4: "I"}  # SHORT and LONG: the types of the tags read by `tiff_tags`


def tiff_tags(data):
    """{tag: values} of the SHORT and LONG tags in a classic TIFF's first directory (empty where it is not one or
    the directory is damaged), read where they lie in `data` (bytes or bytearray, not copied)."""
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(bytes(data[:4]))
    tags = {}
    try:
        (offset,) = struct.unpack_from(order + "I", data, 4)
        (count,) = struct.unpack_from(order + "H", data, offset)
        for index in range(count):
            tag, kind, number, value = struct.unpack_from(order + "HHI4s", data, offset + 2 + 12 * index)
            if kind in TIFF_VALUES and 1 <= number <= 8:
                layout = order + TIFF_VALUES[kind] * number
                if struct.calcsize(layout) <= 4:  # the values fit in the entry itself
                    tags[tag] = struct.unpack_from(layout, value)
                else:  # the entry holds where they are
                    tags[tag] = struct.unpack_from(layout, data, struct.unpack(order + "I", value)[0])
    except (TypeError, struct.error):  # no TIFF byte order, or a directory past the end
        return {}
    return tags


def grey_and_alpha_tiff(tags):
    """Whether a TIFF's first directory (`tiff_tags`) is 16-bit unsigned grey (BlackIsZero) and one extra sample."""
    if not {IMAGE_WIDTH, IMAGE_LENGTH, PHOTOMETRIC, SAMPLES_PER_PIXEL, BITS_PER_SAMPLE} <= tags.keys():
        return False
    unsigned = set(tags.get(SAMPLE_FORMAT, (1,))) == {1}
    grey_and_alpha = (tags[PHOTOMETRIC][0], tags[SAMPLES_PER_PIXEL][0]) == (1, 2)
    return grey_and_alpha and set(tags[BITS_PER_SAMPLE]) == {16} and unsigned


def deep_tiff(data, tags, max_pixels):
    """The DeepImage of a TIFF whose first directory `tags` `grey_and_alpha_tiff` takes, checked against
    `max_pixels` before it is decoded and turned upright by its orientation tag (its other metadata is not read)."""
    width, height = tags[IMAGE_WIDTH][0], tags[IMAGE_LENGTH][0]
    check_input_pixels(width, height, max_pixels, PIXEL_WEIGHT)
    try:
        pixels = imagecodecs.tiff_decode(data)
    except Exception as error:  # libtiff's errors on damaged data
        raise CorruptImage(f"the TIFF data could not be decoded ({type(error).__name__}: {error})") from None
    if pixels.dtype != np.uint16 or pixels.shape != (height, width, 2):
        raise CorruptImage(f"the TIFF data decode to {pixels.dtype} {pixels.shape}, not its header's {width}×{height}")
    return DeepImage(upright(pixels, tags.get(ORIENTATION, (1,))[0]))


def deep_decoded(image, pixels):
    """The DeepImage of 16-bit `pixels` decoded from `image`'s file (Pillow's, for its header), turned upright by its
    EXIF orientation, with its metadata; associated (premultiplied) alpha made straight."""
    if pixels.dtype != np.uint16 or pixels.shape[:2] != (image.height, image.width):
        raise CorruptImage(f"the {image.format} data decode to {pixels.dtype} {pixels.shape}, not its header's size")
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    extra = image.tag_v2.get(EXTRA_SAMPLES) if image.format == "TIFF" else None
    if pixels.shape[2] in (2, 4) and (extra == ASSOCIATED_ALPHA or extra == (ASSOCIATED_ALPHA,)):
        alpha = pixels[..., -1:].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            straight = np.where(alpha > 0, pixels[..., :-1] * (65535.0 / alpha), 0)
        pixels = np.concatenate([to_levels(straight / 257.0, np.uint16), pixels[..., -1:]], axis=-1)
    metadata = {key: image.info[key] for key in METADATA if key in image.info}
    return DeepImage(upright(pixels, image.getexif().get(ORIENTATION)), metadata)


def upright(pixels, orientation):
    """(H, W, C) `pixels` stored with EXIF `orientation`, turned upright (a copy where turned)."""
    return np.ascontiguousarray(UPRIGHT[orientation](pixels)) if orientation in UPRIGHT else pixels


def eight_bit(image):
    """`image` in 8 bits a channel: a DeepImage's `eight_bit()` picture, a PIL image as it is."""
    return image.eight_bit() if isinstance(image, DeepImage) else image


def decode_pixels(pixels: np.ndarray, max_pixels: int) -> Image.Image:
    """An (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8 array (grey, RGB, RGBA) -> PIL image in one of
    SUPPORTED_MODES. Raises EmptyImage for a side of 0 and ImageTooLarge over `max_pixels`, as `decode_image`."""
    height, width = pixels.shape[:2]
    if width < 1 or height < 1:
        raise EmptyImage(f"the pixels are {width}×{height}: no image")
    check_input_pixels(width, height, max_pixels)
    grey = pixels.ndim == 2 or pixels.shape[2] == 1
    return Image.fromarray(np.ascontiguousarray(pixels.reshape(height, width) if grey else pixels))


def to_supported_mode(image):
    """Convert any decoded mode to L, LA, RGB or RGBA, or a DeepImage for grey of more than 8 bits, keeping
    transparency (an alpha channel, a palette's, or a colour key of a 1-bit, grey, 16-bit or RGB image, which
    becomes alpha), the full range of deep images and the metadata (`image.info`; the ICC profile only where it
    still describes the converted pixels)."""
    if isinstance(image, DeepImage):
        return image
    key = image.info.get("transparency") if image.mode in KEYED_MODES else None
    if image.mode in SUPPORTED_MODES and key is None:
        return image
    if image.mode in DEEP_MODES:
        converted = DeepImage(deep_to_uint16(np.asarray(image), image.mode))
    else:
        converted = converted_mode(image)
    if key is not None:
        converted = with_colour_key(image, converted, key)
    converted.info = {
        key: image.info[key]
        for key in METADATA
        if key in image.info and (key != "icc_profile" or image.mode not in FOREIGN_PROFILE_MODES)
    }
    return converted


def with_colour_key(image, converted, key):
    """`converted` (L or RGB, or a grey DeepImage: the pixels of `image`) with an alpha channel: 0 where `image`'s
    pixel is the colour key `key` (a grey level, or an (R, G, B) triple; for a 1-bit image 0 or 1), opaque
    elsewhere."""
    values = np.asarray(image)
    if image.mode == "RGB":
        keyed = np.all(values == np.asarray(key, dtype=values.dtype)[None, None, :3], axis=-1)
    else:
        keyed = values.astype(np.int64) == int(key)
    if isinstance(converted, DeepImage):
        return DeepImage(np.dstack([converted.pixels, np.where(keyed, 0, 65535).astype(np.uint16)]))
    result = converted.convert("LA" if converted.mode == "L" else "RGBA")
    result.putalpha(Image.fromarray(np.where(keyed, 0, 255).astype(np.uint8)))
    return result


def converted_mode(image):
    """The pixels of `image` in the supported mode that holds them (a supported mode: the image itself)."""
    mode = image.mode
    if mode in SUPPORTED_MODES:
        return image
    if mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if mode in ("PA", "RGBa", "RGBX", "1", "La"):
        return image.convert({"PA": "RGBA", "RGBa": "RGBA", "RGBX": "RGB", "1": "L", "La": "LA"}[mode])
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        return image.convert("RGB")
    raise UnsupportedFormat(f"images in Pillow mode {mode} are not supported; send 8- or 16-bit grey or colour")


def deep_to_uint16(values, mode):
    """Scale a 16-bit, 32-bit integer or float grey plane to uint16.

    I;16* and I holding values above 255 span 0..65535; F holding values no higher than 1 spans 0..1; other I and
    F values span 0..255.
    """
    if mode.startswith("I;16"):
        return values.astype(np.uint16)
    values = np.nan_to_num(values.astype(np.float64))
    if mode == "I" and values.max(initial=0) > 255:
        values = values / 257.0
    elif mode == "F" and values.max(initial=0) <= 1.0:
        values = values * 255.0
    return to_levels(values, np.uint16)


def carry_metadata(source, result):
    """Give `result`, an enlargement of the decoded `source`, the source's metadata: the ICC profile unchanged; the
    EXIF with orientation 1 and its pixel dimensions (and resolution) those of `result`; the DPI scaled with each
    side, so that the print size stays the same. Metadata that cannot be read or makes no sense (an upload's are
    untrusted) is left out, never an error. Returns `result`."""
    factors = (result.width / source.width, result.height / source.height)
    if source.info.get("icc_profile"):
        result.info["icc_profile"] = source.info["icc_profile"]
    dpi = scaled_resolution(source.info.get("dpi"), factors)
    if dpi:
        result.info["dpi"] = dpi
    if source.info.get("exif"):
        try:
            with warnings.catch_warnings():  # Pillow warns of damaged EXIF as it reads it: the answer goes without
                warnings.simplefilter("ignore")
                result.info["exif"] = updated_exif(source.getexif(), result.size, factors)
        except Exception:  # Pillow's EXIF parser and writer raise many types on damaged data
            pass
    return result


def scaled_resolution(resolution, factors):
    """(x, y) resolution times `factors`, or None where it is missing or makes no sense."""
    try:
        scaled = tuple(float(value) * factor for value, factor in zip(resolution, factors, strict=True))
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return scaled if all(1 <= value <= MAX_DPI for value in scaled) else None


def updated_exif(exif, size, factors):
    """A copy of `exif` as bytes, for an image of `size` enlarged by `factors`: orientation 1 (applied), pixel
    dimensions `size` where it records them, its resolution scaled (left out where it makes no sense)."""
    copy = Image.Exif()
    copy.load(exif.tobytes())  # the source's own stays as it was
    copy[ORIENTATION] = 1
    copy.update({tag: side for tag, side in zip((IMAGE_WIDTH, IMAGE_LENGTH), size) if tag in copy})
    resolution = scaled_resolution([copy.get(X_RESOLUTION), copy.get(Y_RESOLUTION)], factors)
    for tag, value in zip((X_RESOLUTION, Y_RESOLUTION), resolution or (None, None)):
        if value is not None:
            copy[tag] = value
        elif tag in copy:
            del copy[tag]
    details = copy.get_ifd(EXIF_IFD)
    for tag, side in zip((PIXEL_X_DIMENSION, PIXEL_Y_DIMENSION), size):
        if tag in details:
            details[tag] = side
    return copy.tobytes()


def check_encodable(size, media_type):
    """Raise OutputTooLarge if an image of `size` (width, height) exceeds the format's side limit (JPEG 65,535,
    WebP 16,383 pixels); `media_type` is a key of ENCODE_FORMATS."""
    name = ENCODE_FORMATS[media_type]
    if max(size) > MAX_SIDE[name]:
        holding = [other for other, format in ENCODE_FORMATS.items() if max(size) <= MAX_SIDE[format]]
        raise OutputTooLarge(
            f"{name} images can be at most {MAX_SIDE[name]:,} pixels on a side; the answer would "
            f"be {size[0]}×{size[1]}: ask for {' or '.join(holding)} (Accept)"
        )


def estimated_bytes(image: Image.Image, size: tuple[int, int], media_type: str, strips: int = 8, rows: int = 16) -> int:
    """A low estimate of the bytes `image` enlarged to `size` takes encoded as `media_type`: `strips` bands of
    `rows` rows spread over the image, enlarged bicubically to the answer's width and scale and encoded together,
    their bytes a pixel times the answer's pixels. Bicubic is smoother than SRCNN's answer, which mostly encodes
    larger (handler.pipeline.ESTIMATE_MARGIN has the measured spread)."""
    width, height = image.size
    sample = image
    if height > strips * rows:
        tops = [index * (height - rows) // (strips - 1) for index in range(strips)]
        crops = [image.crop((0, top, width, top + rows)) for top in tops]
        if isinstance(image, DeepImage):
            sample = DeepImage(np.concatenate([crop.pixels for crop in crops]))
        else:
            sample = Image.new(image.mode, (width, strips * rows))
            for index, crop in enumerate(crops):
                sample.paste(crop, (0, index * rows))
    # Bicubic: a DeepImage's resize, and Pillow's default for these modes.
    sample = sample.resize((size[0], max(1, round(sample.height * size[1] / height))))
    return round(len(encode_image(sample, media_type)) * size[0] * size[1] / (sample.width * sample.height))


def encode_image(
    image: Image.Image, media_type: str = "image/png", max_bytes: int | None = None, threads: int = 1
) -> bytes:
    """Encode for the response; `media_type` is a key of ENCODE_FORMATS. JPEG drops alpha onto white. PNG is
    encoded on `threads` threads (srcnn.png), in 16 bits for a DeepImage; JPEG and WebP take its `eight_bit()`.

    Raises OutputTooLarge where `check_encodable` does, and ResponseTooLarge as soon as the encoding passes
    `max_bytes` (default: no limit).
    """
    check_encodable(image.size, media_type)
    name = ENCODE_FORMATS[media_type]
    image = image if name == "PNG" else eight_bit(image)
    if name == "JPEG" and image.mode in ("LA", "RGBA"):
        background = Image.new(image.mode[:-1], image.size, "white")
        background.paste(image.convert(image.mode[:-1]), mask=image.getchannel("A"))
        background.info = image.info
        image = background
    metadata = {key: image.info[key] for key in METADATA if image.info.get(key)}
    if name == "PNG" and image.mode in COLOUR_TYPES:
        try:
            return encode_png(image, threads, max_bytes, **metadata)
        except LimitPassed:
            raise answer_too_large(name, max_bytes) from None
    if name == "JPEG" and len(metadata.get("exif", b"")) > JPEG_EXIF_LIMIT:
        del metadata["exif"]  # from a PNG or WebP whose EXIF no JPEG segment can hold; the profile still goes
    buffer = CappedBuffer(max_bytes or float("inf"), name)
    # PNG of other modes: Pillow's zlib at level 1 with run-length matches, its fastest setting that still shrinks flat
    # images (docs/decisions.md, D11).
    options = {
        "PNG": {"compress_level": 1, "compress_type": zlib.Z_RLE},
        "JPEG": {"quality": 95},
        "WEBP": {"quality": 95},
    }[name]
    image.save(buffer, format=name, **options, **metadata)
    return buffer.getvalue()
