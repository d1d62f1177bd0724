"""srcnn.png: the multi-threaded PNG encoder against Pillow's decoder, at every mode, thread count and a byte
limit; and the Adler-32 combination against zlib's checksum of the whole."""

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from srcnn.cores import BAND
from srcnn.png import LimitPassed, adler32_combine, encode_png


def test_combined_adler32_is_the_checksum_of_the_whole():
    rng = np.random.default_rng(0)
    for first_length, second_length in [(0, 5), (7, 0), (1, 1), (100_000, 70_000), (65_521, 65_522)]:
        first, second = rng.bytes(first_length), rng.bytes(second_length)
        assert adler32_combine(zlib.adler32(first), zlib.adler32(second), second_length) == zlib.adler32(first + second)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("threads", [1, 2, 5])
@pytest.mark.parametrize("size", [(1, 1), (37, 3 * BAND + 5), (200, BAND), (3, 900)])
def test_pillow_decodes_every_pixel_back(mode, threads, size):
    rng = np.random.default_rng(size[0] * size[1])
    pixels = rng.integers(0, 256, (size[1], size[0], len(mode)), dtype=np.uint8)
    pixels[size[1] // 2 :] //= 16  # a smoother half, where filters and run lengths matter
    image = Image.fromarray(pixels.squeeze(-1) if mode == "L" else pixels, mode)
    with Image.open(io.BytesIO(encode_png(image, threads))) as decoded:
        decoded.load()
        assert decoded.mode == mode and np.array_equal(np.asarray(decoded), np.asarray(image))


def test_metadata_chunks_are_read_back_by_pillow():
    image = Image.new("RGB", (20, 10), (10, 200, 30))
    exif = Image.Exif()
    exif[0x010F] = "Maker"
    data = encode_png(image, icc_profile=b"\0profile bytes" * 10, exif=exif.tobytes(), dpi=(300, 150))
    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.info["icc_profile"] == b"\0profile bytes" * 10
        assert decoded.getexif()[0x010F] == "Maker"
        assert [round(value) for value in decoded.info["dpi"]] == [300, 150]


def test_the_encoding_stops_at_its_limit_on_every_thread_count():
    noise = Image.fromarray(np.random.default_rng(2).integers(0, 256, (300, 300, 3), dtype=np.uint8))
    for threads in (1, 3):  # stripes end in sync flushes: their sizes differ by a few bytes a stripe
        size = len(encode_png(noise, threads))
        assert len(encode_png(noise, threads, limit=size)) == size
        with pytest.raises(LimitPassed):
            encode_png(noise, threads, limit=size // 2)


@pytest.mark.parametrize("threads", [1, 4])
def test_flat_and_smooth_images_are_compressed_not_stored(threads):
    # Raw, each image is 3 MB: rows stored rather than deflated, or deflated a few at a time, would pass these bounds.
    flat = Image.new("RGB", (1024, 1024), (200, 120, 40))
    assert len(encode_png(flat, threads)) < 20_000
    ramp = np.broadcast_to(np.arange(1024, dtype=np.uint8)[None, :, None] // 4, (1024, 1024, 3))
    gradient = Image.fromarray(np.ascontiguousarray(ramp))
    data = encode_png(gradient, threads)
    assert len(data) < 40_000
    with Image.open(io.BytesIO(data)) as decoded:
        assert np.array_equal(np.asarray(decoded), ramp)
