"""srcnn.codec called directly: every unusable upload is its own ImageError, decoded modes are normalised, and
answers respect each format's limits."""

import io

import numpy as np
import pytest
from PIL import Image

from srcnn.codec import (CorruptImage, EmptyImage, ImageTooLarge, NotAnImage, check_encodable, decode_image,
                         encode_image)


def encoded(image, format="PNG", **options):
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("data, error", [
    (b"", EmptyImage), (b"hello, not a picture", NotAnImage), (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, NotAnImage),
])
def test_each_unusable_upload_is_its_own_error(data, error):
    with pytest.raises(error):
        decode_image(data, 1 << 20)


def test_a_truncated_image_is_corrupt_and_a_large_one_is_refused_from_its_header():
    png = encoded(Image.new("RGB", (64, 64), (10, 200, 30)))
    with pytest.raises(CorruptImage):
        decode_image(png[: len(png) // 2], 1 << 20)
    with pytest.raises(ImageTooLarge, match="64×64 = 4,096 pixels; the limit is 4,095"):
        decode_image(png, 4095)


@pytest.mark.parametrize("image, mode", [
    (Image.new("P", (4, 4)), "RGB"), (Image.new("1", (4, 4)), "L"), (Image.new("CMYK", (4, 4)), "RGB"),
    (Image.new("LA", (4, 4)), "LA"), (Image.new("RGBA", (4, 4)), "RGBA"),
])
def test_decoded_modes_are_normalised(image, mode):
    assert decode_image(encoded(image, "TIFF"), 1 << 20).mode == mode


def test_sixteen_bit_grey_is_scaled_to_eight_bits_not_clipped():
    deep = Image.fromarray(np.array([[0, 257 * 128, 65535]], np.uint16))
    assert np.asarray(decode_image(encoded(deep), 1 << 20)).tolist() == [[0, 128, 255]]


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (6, 2))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    assert decode_image(encoded(image, "JPEG", exif=exif), 1 << 20).size == (2, 6)


def test_answers_respect_format_limits_and_jpeg_puts_alpha_on_white():
    check_encodable((16_383, 10), "image/webp")
    with pytest.raises(ImageTooLarge, match="ask for image/png"):
        check_encodable((16_384, 10), "image/webp")
    clear = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    with Image.open(io.BytesIO(encode_image(clear, "image/jpeg"))) as jpeg:
        assert jpeg.format == "JPEG" and np.asarray(jpeg.convert("L")).min() >= 250
    with Image.open(io.BytesIO(encode_image(clear))) as png:
        assert png.format == "PNG" and png.mode == "RGBA"
