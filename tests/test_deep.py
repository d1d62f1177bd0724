"""16-bit images: decoded from files libpng, libtiff and Pillow write, upscaled in float with nothing rounded to 8
bits, answered as 16-bit PNG (8 bits for JPEG and WebP), counted twice against the pixel limits."""

import io
import struct
import subprocess
import zlib

import imagecodecs
import numpy as np
import pytest
from PIL import Image, ImageOps

from helpers import SRGB, gradients, ihdr, predictions_url
from srcnn.api import Upscaler
from srcnn.codec import CorruptImage, ImageTooLarge, decode_image, encode_image
from srcnn.deep import DeepImage

MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def noise(height, width, channels, seed=0):
    return np.random.default_rng(seed).integers(0, 65536, (height, width, channels), dtype=np.uint16)


def png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def with_chunk(png, kind, payload):
    """`png` with a chunk inserted after IHDR (the PNG signature and IHDR take 33 bytes)."""
    return png[:33] + png_chunk(kind, payload) + png[33:]


def averaged_back(answer, factor):
    """An answer's pixels (H·f, W·f, C) averaged over each f × f block: (H, W, C) float."""
    height, width, channels = answer.shape
    return answer.astype(np.float64).reshape(height // factor, factor, width // factor, factor, channels).mean((1, 3))


@pytest.mark.parametrize(
    "writer, channels", [(writer, channels) for writer in ("libpng", "libtiff") for channels in (1, 2, 3, 4)]
)
def test_sixteen_bit_files_decode_with_every_sample_kept(writer, channels):
    pixels = noise(9, 13, channels)
    if writer == "libpng":
        data = imagecodecs.png_encode(pixels.squeeze())
    elif channels == 2:  # grey and alpha, which Pillow does not identify: read from its directory
        data = imagecodecs.tiff_encode(pixels, photometric="minisblack", planarconfig="contig", extrasample=2)
    else:
        data = imagecodecs.tiff_encode(pixels.squeeze())
    image = decode_image(data, 10**6)
    assert isinstance(image, DeepImage) and image.mode == MODES[channels] and image.size == (13, 9)
    assert np.array_equal(image.pixels, pixels)


def test_a_tiff_of_premultiplied_alpha_is_made_straight():
    straight = noise(6, 7, 4)
    straight[0, 0, 3], straight[0, 1, 3] = 0, 65535
    alpha = straight[..., 3:].astype(np.float64)
    premultiplied = np.concatenate([np.round(straight[..., :3] * alpha / 65535), alpha], -1).astype(np.uint16)
    image = decode_image(imagecodecs.tiff_encode(premultiplied, extrasample=1), 10**6)  # 1: associated alpha
    assert np.array_equal(image.pixels[..., 3], straight[..., 3])
    assert np.array_equal(image.pixels[0, 1], straight[0, 1]) and image.pixels[0, 0, :3].tolist() == [0, 0, 0]
    visible = straight[..., 3] >= 4096  # where the premultiplied colour still holds enough levels to divide back
    assert np.abs(image.pixels[..., :3].astype(int) - straight[..., :3])[visible].max() <= 16


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_sixteen_bit_png_is_turned_upright_as_pillow_turns_an_eight_bit_one(orientation):
    pixels = (noise(5, 8, 3).astype(np.uint32) // 257 * 257).astype(np.uint16)  # 8-bit values in 16 bits
    exif = Image.Exif()
    exif[0x0112] = orientation
    deep = decode_image(with_chunk(imagecodecs.png_encode(pixels), b"eXIf", exif.tobytes()[6:]), 10**6)
    eight = Image.fromarray((pixels // 257).astype(np.uint8))
    eight.info["exif"] = exif.tobytes()
    reference = ImageOps.exif_transpose(eight)
    assert np.array_equal(np.asarray(deep.eight_bit()), np.asarray(reference))


def test_a_sixteen_bit_png_answer_is_read_back_exactly_by_libpng_and_carries_the_profile():
    for channels in (1, 2, 3, 4):
        image = DeepImage(noise(70, 33, channels, seed=channels), {"icc_profile": SRGB, "dpi": (144.0, 144.0)})
        png = encode_image(image, threads=2)
        assert ihdr(png) == (16, {1: 0, 2: 4, 3: 2, 4: 6}[channels])
        assert np.array_equal(imagecodecs.png_decode(png).reshape(image.pixels.shape), image.pixels)
        with Image.open(io.BytesIO(png)) as read:
            assert read.info["icc_profile"] == SRGB and round(read.info["dpi"][0]) == 144
        if channels == 1:  # Pillow reads 16-bit grey as it is
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), image.pixels[..., 0])


@pytest.mark.parametrize("engine", ["openvino-int8", "onnxruntime-fp32"])
def test_a_sixteen_bit_gradient_at_x2_averages_back_to_itself(engine):
    """The shipped weights, whatever the engine asked for: an int8 engine rounds the network's activations to 8
    bits, so a 16-bit image is computed in fp32 (this fails with the int8 engine's own lanes)."""
    source = gradients(96, 128)
    answer = Upscaler(precision=engine, threads=2).upscale(decode_image(imagecodecs.png_encode(source), 10**6), 2)
    assert isinstance(answer, DeepImage) and answer.size == (256, 192)
    error = np.abs(averaged_back(answer.pixels, 2) - source)
    assert (error <= 64).mean() >= 0.999, np.percentile(error, [50, 99, 100])
    # In 8 bits the same image is a quarter of a level off or worse at about half its values.
    eight = Upscaler(precision="onnxruntime-fp32", threads=2).upscale(Image.fromarray((source // 257).astype(np.uint8)))
    assert (np.abs(averaged_back(np.asarray(eight), 2) * 257 - source) > 64).mean() > 0.3


def test_hidden_colour_under_alpha_zero_never_shows_in_sixteen_bits():
    pixels = np.zeros((40, 40, 4), np.uint16)
    pixels[10:30, 10:30] = 65535
    answers = []
    for hidden in ((0, 0, 0), (65535, 0, 0), (65535, 65535, 65535)):
        pixels[..., :3] = np.where(pixels[..., 3:] == 0, hidden, pixels[..., :3])
        answers.append(Upscaler(precision="onnxruntime-fp32", threads=1).upscale(DeepImage(pixels.copy())).pixels)
    assert max(np.abs(a.astype(int) - answers[0]).max() for a in answers) <= 257
    # Inside the square, away from its edges: opaque, and the colour a picture without alpha gets.
    opaque = Upscaler(precision="onnxruntime-fp32", threads=1).upscale(DeepImage(pixels[..., :3].copy())).pixels
    assert np.all(answers[0][32:48, 32:48, 3] == 65535)
    assert np.array_equal(answers[0][32:48, 32:48, :3], opaque[32:48, 32:48])


def grey_and_alpha_tiff(pixels, orientation):
    """A little-endian TIFF as the TIFF 6.0 specification lays it out: header, one directory of SHORT and LONG
    entries in tag order, then the uncompressed 16-bit grey-and-alpha strip."""
    height, width, _ = pixels.shape
    entries = [
        (256, 4, width), (257, 4, height), (258, 3, 16 | 16 << 16), (259, 3, 1), (262, 3, 1), (273, 4, 0),
        (274, 3, orientation), (277, 3, 2), (278, 4, height), (279, 4, pixels.nbytes), (338, 3, 2),
    ]  # fmt: skip
    data_offset = 8 + 2 + 12 * len(entries) + 4
    directory = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHII", tag, kind, 2 if tag == 258 else 1, data_offset if tag == 273 else value)
        for tag, kind, value in entries
    )
    return b"II*\x00" + struct.pack("<I", 8) + directory + bytes(4) + pixels.astype("<u2").tobytes()


def test_a_sixteen_bit_grey_and_alpha_tiff_is_turned_upright_and_limited_from_its_directory():
    pixels = noise(9, 13, 2)
    assert np.array_equal(decode_image(grey_and_alpha_tiff(pixels, 1), 10**6).pixels, pixels)
    image = decode_image(grey_and_alpha_tiff(pixels, 6), 10**6)  # 6: turn 90° clockwise to view
    assert image.size == (9, 13) and np.array_equal(image.pixels, np.rot90(pixels, -1))
    with pytest.raises(ImageTooLarge, match="for 16-bit images"):
        decode_image(grey_and_alpha_tiff(pixels, 1), 2 * 9 * 13 - 1)


@pytest.mark.parametrize("tag, damage", [(277, "no values"), (256, "missing")])
def test_a_grey_and_alpha_tiff_whose_directory_is_damaged_is_corrupt(tag, damage):
    """What the fuzzer found: a tag of no values, or no width, once made the directory's reader fail (a 500)."""
    data = bytearray(grey_and_alpha_tiff(noise(9, 13, 2), 1))
    entry = data.index(struct.pack("<H", tag), 10, 10 + 12 * 11)  # in the directory
    if damage == "no values":
        data[entry + 4 : entry + 8] = struct.pack("<I", 0)
    else:
        data[entry : entry + 2] = struct.pack("<H", 65000)  # a tag nobody knows, in the width's place
    with pytest.raises(CorruptImage, match="TIFF"):
        decode_image(bytes(data), 10**6)


def test_a_sixteen_bit_image_counts_twice_against_the_input_limit():
    data = imagecodecs.png_encode(noise(10, 10, 3))
    assert decode_image(data, 200).size == (10, 10)
    with pytest.raises(ImageTooLarge, match="limit is 99 for 16-bit images.*or in 8 bits"):
        decode_image(data, 199)


@pytest.mark.server
def test_curl_sends_a_sixteen_bit_png_and_gets_one_back_that_averages_to_it(server, tmp_path):
    """The bar: a 16-bit RGB PNG of gradients filling the range, ×2 through TorchServe with the shipped weights."""
    source = gradients(192, 256)
    (tmp_path / "deep.png").write_bytes(imagecodecs.png_encode(source))
    subprocess.run(
        ["curl", "-sf", "-o", str(tmp_path / "big.png"), "-T", str(tmp_path / "deep.png"), predictions_url(server)],
        check=True,
        timeout=120,
    )
    answer = (tmp_path / "big.png").read_bytes()
    assert ihdr(answer) == (16, 2)
    error = np.abs(averaged_back(imagecodecs.png_decode(answer), 2) - source)
    assert (error <= 64).mean() >= 0.999, np.percentile(error, [50, 99, 100])
