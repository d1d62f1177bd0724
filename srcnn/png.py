"""PNG encoding on several threads: stripes of rows filtered and deflated side by side, one PNG.

Pillow's encoder runs on one thread, which for a 48-megapixel answer was a fifth of the request with every other
core idle (docs/decisions.md, D11). Here each stripe of rows is Up-filtered (each byte less the one above it) and
deflated at level 1 by ISA-L (python-isal's zlib-compatible `isal_zlib`, which releases the GIL) by its own thread
into raw deflate data ending in a sync flush, so the stripes' data concatenate into one stream (as pigz does); the
zlib header, a final empty block and the Adler-32 of the whole (combined from the stripes') close it, and the
stripes go out as IDAT chunks in order. Speed before size: a photograph's answer comes out about the size Pillow
writes at its fastest level (docs/decisions.md, D11, has the measurements).
"""

import struct
import threading
import zlib

import numpy as np
from isal import isal_zlib

from srcnn.cores import BAND, in_stripes
from srcnn.deep import DeepImage

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_TYPES = {"L": (0, 1), "LA": (4, 2), "RGB": (2, 3), "RGBA": (6, 4)}  # mode: (PNG colour type, channels)
ADLER_BASE = 65521
FINAL_EMPTY_BLOCK = b"\x03\x00"  # a last, empty, fixed-Huffman deflate block


class LimitPassed(Exception):
    """The encoding passed its byte limit (srcnn.codec answers it as ResponseTooLarge)."""


def chunk(kind, payload):
    """A PNG chunk as its pieces (joined once, at the end, so a large payload is not copied for it)."""
    return [struct.pack(">I", len(payload)), kind, payload, struct.pack(">I", zlib.crc32(payload, zlib.crc32(kind)))]


def adler32_combine(first, second, second_length):
    """The Adler-32 of A + B from A's, B's and B's length (zlib's adler32_combine, which Python does not expose)."""
    rem = second_length % ADLER_BASE
    low = ((first & 0xFFFF) + (second & 0xFFFF) + ADLER_BASE - 1) % ADLER_BASE
    high = (rem * (first & 0xFFFF) + (first >> 16) + (second >> 16) + ADLER_BASE - rem) % ADLER_BASE
    return low | high << 16


def up_filtered(rows, above):
    """Rows (h, w · bytes a pixel) uint8 Up-filtered: each byte less the byte above it (in `above`, the row before
    them, zeros at the top), modulo 256, each row led by its filter-type byte 2."""
    filtered = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    filtered[:, 0] = 2
    np.subtract(rows[0], above, out=filtered[0, 1:])
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    return filtered.tobytes()


def encode_png(image, threads=1, limit=None, icc_profile=None, exif=None, dpi=None):
    """PNG bytes of a PIL image in mode L, LA, RGB or RGBA (8 bits a sample) or a DeepImage (16 bits), with its ICC
    profile, EXIF and DPI where given, its stripes on `threads` threads (srcnn.cores.in_stripes). Raises LimitPassed
    once the encoding passes `limit` bytes."""
    colour_type, channels = COLOUR_TYPES[image.mode]
    deep = isinstance(image, DeepImage)
    depth, step = (16, 2 * channels) if deep else (8, channels)  # bits a sample, bytes a pixel
    width, height = image.size
    limit = float("inf") if limit is None else limit
    head = [SIGNATURE, *chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0))]
    if icc_profile:
        head += chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc_profile))
    if dpi:
        head += chunk(b"pHYs", struct.pack(">IIB", *(round(value / 0.0254) for value in dpi), 1))
    if exif:
        head += chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif)
    stripes, size, counting = {}, [sum(map(len, head))], threading.Lock()

    def rows(top, bottom):  # a band of the image as (rows, width · bytes a pixel) uint8, copied a band at a time
        if deep:  # PNG's samples are big-endian
            return image.pixels[top:bottom].astype(">u2").view(np.uint8).reshape(bottom - top, width * step)
        return np.asarray(image.crop((0, top, width, bottom))).reshape(bottom - top, width * step)

    def compute(_, top, bottom):
        deflate = isal_zlib.compressobj(1, isal_zlib.DEFLATED, -15)
        parts, adler, length = [], 1, 0
        above = rows(top - 1, top)[0] if top else np.zeros(width * step, np.uint8)
        for band_top in range(top, bottom, BAND):
            band = rows(band_top, min(bottom, band_top + BAND))
            data = up_filtered(band, above)
            above = band[-1]
            adler, length = isal_zlib.adler32(data, adler), length + len(data)
            parts.append(deflate.compress(data))
            with counting:
                size[0] += len(parts[-1])
                if size[0] > limit:
                    raise LimitPassed(f"over {limit:,} bytes")
        parts.append(deflate.flush(isal_zlib.Z_SYNC_FLUSH))
        stripes[top] = (b"".join(parts), adler, length)

    in_stripes(height, BAND, [None] * max(1, threads), compute)
    adler, data = 1, []
    for top in sorted(stripes):
        stripe, stripe_adler, length = stripes.pop(top)
        adler = adler32_combine(adler, stripe_adler, length)
        data.append(stripe)
    # The zlib header (deflate, 32 KiB window, level 1; its check bits make it a multiple of 31) before the first
    # stripe; after the last, the final empty block and the Adler-32 of everything filtered.
    data[0] = b"\x78\x01" + data[0]
    data[-1] += FINAL_EMPTY_BLOCK + struct.pack(">I", adler)
    pieces = head + [piece for stripe in data for piece in chunk(b"IDAT", stripe)] + chunk(b"IEND", b"")
    if sum(map(len, pieces)) > limit:
        raise LimitPassed(f"over {limit:,} bytes")
    return b"".join(pieces)
