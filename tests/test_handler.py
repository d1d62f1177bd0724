"""The handler in-process, with TorchServe's own Context standing in for a server."""

import base64
import contextlib
import hashlib
import io
import json
import logging
import math
import re
import shutil
import warnings
import zlib

import imagecodecs
import numpy as np
import pytest
from PIL import Image
from ts.context import Context, RequestProcessor
from ts.service import Service
from ts.torch_handler.request_envelope.kserve import KServeEnvelope
from ts.torch_handler.request_envelope.kservev2 import KServev2Envelope
from ts.utils.util import PredictionException

from handler.admission import Admission
from handler.protocol import Settings
from handler.srcnn_handler import SRCNNHandler, without_envelope
from helpers import MODEL_CONFIG, gradients, ihdr
from srcnn import save_state_dict, upscale
from srcnn.choice import MAX_COST_DB, choose, worst_costs
from srcnn.codec import encode_image, estimated_bytes
from srcnn.engine import load_engines
from srcnn.files import REPOSITORY as ROOT
from srcnn.files import read_properties
from srcnn.scaling import passes_between
from srcnn.weights import SCALES, SHIPPED, load_model, sidecar_path, weight_file
from tools.hostile import encode


class Metrics:
    """Accepts the timing metrics BaseHandler.handle reports, and sums the handler's counters by dimensions."""

    def __init__(self):
        self.counters = {}

    def add_time(self, *args, **kwargs):
        pass

    def get_metric(self, name, metric_type):
        counters = self.counters

        class Counter:
            @staticmethod
            def add_or_update(value, dimension_values, request_id=""):
                key = (name, *dimension_values)
                counters[key] = counters.get(key, 0) + value

        return Counter


@pytest.fixture
def model_dir(tmp_path, identity_model):
    """An unpacked archive whose ×2, ×3, ×4 weights are the identity network (answers equal bicubic)."""
    for scale in (2, 3, 4):
        save_state_dict(identity_model, tmp_path / "weights" / f"srcnn_x{scale}.pth")
    return tmp_path


def make_handler(model_dir, **settings):
    """The handler on `model_dir` with the shipped settings but fp32 (the identity network is uncalibrated, and
    exact), updated by `settings`."""
    config = {**MODEL_CONFIG, "handler": {**MODEL_CONFIG["handler"], "precision": "onnxruntime-fp32", **settings}}
    handler = SRCNNHandler()
    handler.initialize(Context("srcnn", str(model_dir), {"model": {}}, 1, None, "0.12.0", model_yaml_config=config))
    return handler


@pytest.fixture
def handler(model_dir):
    return make_handler(model_dir)


def call(handler, *requests, metrics=None):
    """requests: (data dict, headers dict) pairs, sent over HTTP -> [(status, content type, body bytes)]."""
    context = Context("srcnn", "", {"model": {}}, len(requests), None, "0.12.0", metrics=metrics or Metrics())
    context.request_processor = [RequestProcessor({"Host": "127.0.0.1:8080", **headers}) for _, headers in requests]
    bodies = handler.handle([data for data, _ in requests], context)
    return [
        (context.get_response_status(i)[0], context.get_response_content_type(i), body) for i, body in enumerate(bodies)
    ]


def one(handler, data, **headers):
    return call(handler, (data, {key.replace("_", "-"): value for key, value in headers.items()}))[0]


def json_body(value):
    """A JSON request as TorchServe hands it over once the handler has turned its decoding off: the bytes sent."""
    return {"body": bytearray(value if isinstance(value, bytes) else json.dumps(value).encode())}


def one_json(handler, value, **headers):
    return one(handler, json_body(value), **{"Content_Type": "application/json", **headers})


def decoded(body):
    return Image.open(io.BytesIO(body))


def error(result, status, kind):
    code, content_type, body = result
    assert (code, content_type) == (status, "application/json"), body
    message = json.loads(body)
    assert message["code"] == status and message["type"] == kind
    return message["message"]


# --- answers -------------------------------------------------------------------------------------------------


def test_raw_body_png_gives_png_of_twice_the_size_equal_to_upscale(handler, scene):
    image = scene(37, 23)
    status, content_type, body = one(handler, {"body": bytearray(encode(image))})
    assert (status, content_type) == (200, "image/png")
    answer = decoded(body)
    assert (answer.format, answer.mode, answer.size) == ("PNG", "RGB", (74, 46))
    assert np.array_equal(np.asarray(answer), np.asarray(upscale(image, None, 2)))


@pytest.mark.parametrize("name", ["X-Scale", "x-scale", "X-SCALE"])
def test_scale_from_header_any_case(handler, scene, name):
    status, _, body = call(handler, ({"body": encode(scene(20, 10))}, {name: "3"}))[0]
    assert status == 200 and decoded(body).size == (60, 30)


def test_scale_from_multipart_field_and_json(handler, scene):
    png = encode(scene(20, 10))
    status, _, body = one(handler, {"data": bytearray(png), "scale": bytearray(b"4")})
    assert status == 200 and decoded(body).size == (80, 40)
    status, _, body = one_json(handler, {"image": base64.b64encode(png).decode(), "scale": 3})
    assert status == 200 and decoded(body).size == (60, 30)
    data_url = {"image": "data:image/png;base64," + base64.b64encode(png).decode()}
    assert decoded(one_json(handler, data_url, Content_Type="application/json; charset=utf-8")[2]).size == (40, 20)


def test_default_scale_comes_from_model_config(model_dir, scene):
    handler = make_handler(model_dir, default_scale=4)
    assert decoded(one(handler, {"body": encode(scene(9, 7))})[2]).size == (36, 28)


@pytest.mark.parametrize(
    "accept, media_type, format",
    [
        ("image/jpeg", "image/jpeg", "JPEG"),
        ("image/webp", "image/webp", "WEBP"),
        ("*/*", "image/png", "PNG"),
        ("text/html, image/*;q=0.5", "image/png", "PNG"),
        ("image/png;q=0.2, image/webp;q=0.9", "image/webp", "WEBP"),
        ("image/jpeg;q=0, image/png", "image/png", "PNG"),
    ],
)
def test_accept_picks_the_format(handler, scene, accept, media_type, format):
    status, content_type, body = one(handler, {"body": encode(scene(16, 16))}, Accept=accept)
    assert (status, content_type, decoded(body).format) == (200, media_type, format)


def test_jpeg_answer_puts_alpha_on_white(handler):
    transparent = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    answer = decoded(one(handler, {"body": encode(transparent)}, Accept="image/jpeg")[2])
    assert answer.mode == "RGB" and np.asarray(answer).min() >= 250


@pytest.mark.parametrize("format", ["PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF"])
def test_every_input_format(handler, scene, format):
    status, _, body = one(handler, {"body": encode(scene(21, 13), format)})
    assert status == 200 and decoded(body).size == (42, 26)


def test_animated_gif_uses_the_first_frame(handler):
    frames = [Image.new("RGB", (10, 10), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    red, green, blue = np.asarray(decoded(one(handler, {"body": gif})[2]).convert("RGB")).mean(axis=(0, 1))
    assert red > 200 and blue < 50


@pytest.mark.parametrize("orientation, size", [(1, (40, 20)), (3, (40, 20)), (6, (20, 40)), (8, (20, 40))])
def test_exif_orientation_is_applied(handler, orientation, size):
    image = Image.new("RGB", (20, 10), (200, 200, 200))
    image.paste((0, 0, 0), (0, 0, 10, 10))  # left half black
    exif = Image.Exif()
    exif[0x0112] = orientation
    answer = np.asarray(decoded(one(handler, {"body": encode(image, "JPEG", exif=exif)})[2]).convert("L"))
    assert answer.shape[::-1] == size
    dark = {1: answer[:, :10], 3: answer[:, -10:], 6: answer[:10], 8: answer[-10:]}[orientation]
    assert dark.mean() < 40


@pytest.mark.parametrize(
    "image, mode",
    [
        (Image.new("L", (9, 9), 77), "L"),
        (Image.new("LA", (9, 9), (77, 128)), "LA"),
        (Image.new("RGBA", (9, 9), (10, 20, 30, 40)), "RGBA"),
        (Image.new("1", (9, 9), 1), "L"),
        (Image.new("RGB", (9, 9), (10, 200, 30)).convert("P"), "RGB"),
    ],
)
def test_modes_are_kept_or_converted(handler, image, mode):
    assert decoded(one(handler, {"body": encode(image)})[2]).mode == mode


def test_palette_with_transparency_keeps_alpha(handler):
    image = Image.new("P", (6, 6), 0)
    image.putpalette([255, 0, 0, 0, 255, 0])
    image.paste(1, (0, 0, 3, 6))
    answer = decoded(one(handler, {"body": encode(image, transparency=1)})[2])
    assert answer.mode == "RGBA"
    assert np.asarray(answer)[:, :4, 3].max() == 0 and np.asarray(answer)[:, -4:, 3].min() == 255


@pytest.mark.parametrize("value, expected", [(257 * 180, 180), (65535, 255), (300, 1)])
def test_sixteen_bit_grey_is_answered_in_sixteen_bits_and_as_jpeg_scaled_not_clipped(handler, value, expected):
    body = encode(Image.fromarray(np.full((6, 6), value, np.uint16)))
    answer = decoded(one(handler, {"body": body})[2])
    assert answer.mode == "I;16" and np.abs(np.asarray(answer).astype(int) - value).max() <= 64
    answer = decoded(one(handler, {"body": body}, Accept="image/jpeg")[2])
    assert answer.mode == "L" and np.abs(np.asarray(answer).astype(int) - expected).max() <= 1


def test_float_tiff_in_zero_to_one(handler):
    values = np.tile(np.linspace(0, 1, 8, dtype=np.float32), (8, 1))
    answer = np.asarray(decoded(one(handler, {"body": encode(Image.fromarray(values), "TIFF")})[2]))
    assert answer.min() <= 1 and answer.max() >= 254


def test_cmyk_jpeg_becomes_rgb(handler):
    answer = decoded(one(handler, {"body": encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG")})[2])
    assert answer.mode == "RGB"
    red, green, blue = np.asarray(answer).mean(axis=(0, 1))
    assert red > 200 and green < 60 and blue < 60


@pytest.mark.parametrize("size", [(1, 1), (1, 40), (40, 1)])
def test_thin_images(handler, size):
    status, _, body = one(handler, {"body": encode(Image.new("RGB", size, (9, 99, 199)))})
    assert status == 200 and decoded(body).size == (2 * size[0], 2 * size[1])


# --- client errors -------------------------------------------------------------------------------------------


def test_empty_body_names_the_curl_fix(handler):
    assert "curl -T" in error(one(handler, {}), 400, "empty_body")
    assert "curl -T" in error(one(handler, {"body": bytearray()}), 400, "empty_body")


def test_form_encoded_body_names_the_content_type_fix(handler):
    message = error(one(handler, {"junk": "x"}, Content_Type="application/x-www-form-urlencoded"), 415, "form_body")
    assert "Content-Type" in message


@pytest.mark.parametrize(
    "body",
    [
        b"hello world",
        np.random.default_rng(0).bytes(5000),
        b"%PDF-1.4\n%\xe2\xe3",
        b"PK\x03\x04" + bytes(40),
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    ],
)
def test_not_an_image(handler, body):
    assert "PNG, JPEG" in error(one(handler, {"body": body}), 415, "not_an_image")


def test_text_body_decoded_by_torchserve_is_not_an_image(handler):
    error(one(handler, {"body": "just some text"}), 415, "not_an_image")


def test_unsupported_image_format_is_named(handler):
    message = error(one(handler, {"body": encode(Image.new("RGB", (16, 16)), "IM")}), 415, "unsupported_format")
    assert message.startswith("IM images are not supported")


@pytest.mark.parametrize("cut", [100, 400, 1000])
def test_png_cut_inside_its_pixel_data_is_corrupt(handler, scene, cut):
    png = encode(scene(40, 40))
    assert len(png) > 2000
    error(one(handler, {"body": png[:cut]}), 400, "corrupt_image")


@pytest.mark.parametrize("cut", [4, 8, 20, 30])
def test_png_cut_inside_its_header_is_refused(handler, scene, cut):
    code, content_type, _ = one(handler, {"body": encode(scene(40, 40))[:cut]})
    assert (code, content_type) in ((400, "application/json"), (415, "application/json"))


@pytest.mark.parametrize("scale", ["0", "-2", "0.5", "8.5", "1e9", "x", "", "9", "99999999999"])
def test_bad_scale_gives_the_allowed_range(handler, scene, scale):
    message = error(one(handler, {"body": encode(scene(8, 8))}, X_Scale=scale), 422, "invalid_scale")
    assert "a number from 1 to 8" in message and "X-Scale header" in message


@pytest.mark.parametrize(
    ("scale", "size"), [("2.5", (100, 75)), ("1", (40, 30)), ("8", (320, 240)), ("1.05", (42, 32))]
)
def test_any_scale_from_one_to_eight(handler, scene, scale, size):
    status, _, body = one(handler, {"body": encode(scene(40, 30))}, X_Scale=scale)
    assert (status, decoded(body).size) == (200, size)


@pytest.mark.parametrize(
    ("size", "expected"), [("64x48", (64, 48)), ("80x", (80, 60)), ("x90", (120, 90)), ("41x30", (41, 30))]
)
def test_size_header(handler, scene, size, expected):
    status, _, body = one(handler, {"body": encode(scene(40, 30))}, X_Size=size)
    assert (status, decoded(body).size) == (200, expected)


def test_size_in_json_and_form(handler, scene):
    png = encode(scene(40, 30))
    assert decoded(one_json(handler, {"image": base64.b64encode(png).decode(), "size": "64x48"})[2]).size == (64, 48)
    assert decoded(one(handler, {"data": png, "size": b"x60"})[2]).size == (80, 60)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X_Size": "0x0"}, "WIDTHxHEIGHT"),
        ({"X_Size": "800x"}, "1 to 8 times"),
        ({"X_Size": "20x30"}, "1 to 8 times"),
        ({"X_Size": "64x48", "X_Scale": "2"}, "both a scale and a size"),
    ],
)
def test_bad_sizes_are_422_with_a_message(handler, scene, headers, message):
    assert message in error(one(handler, {"body": encode(scene(40, 30))}, **headers), 422, "invalid_size")


@pytest.mark.parametrize("scale", [9, True, None, "three", [2]])
def test_bad_json_scale(handler, scene, scale):
    request = {"image": base64.b64encode(encode(scene(8, 8))).decode(), "scale": scale}
    if scale is None:
        assert one_json(handler, request)[0] == 200
    else:
        assert '"scale" key of a JSON body' in error(one_json(handler, request), 422, "invalid_scale")


def test_header_and_field_scale_must_agree(handler, scene):
    request = {"data": encode(scene(8, 8)), "scale": b"3"}
    error(call(handler, (request, {"X-Scale": "4"}))[0], 422, "invalid_scale")
    assert call(handler, (request, {"X-Scale": "3"}))[0][0] == 200


def test_json_errors(handler):
    assert "line 1, column 11 (byte 10)" in error(one_json(handler, b'{"image": '), 400, "invalid_json")
    assert "not an object" in error(one_json(handler, [1, 2]), 400, "invalid_json")
    assert "no \"image\" key (it has 'img')" in error(one_json(handler, {"img": "x"}), 400, "invalid_json")
    assert "holds int" in error(one_json(handler, {"image": 5}), 400, "invalid_json")
    for number in (10**9, 2.5, True, None):  # bytes(10**9) would allocate a gigabyte
        error(one_json(handler, number), 400, "invalid_json")
    error(one_json(handler, b"\xff\xfe\xfd not text"), 400, "invalid_json")
    error(one_json(handler, b"9" * 5000), 400, "invalid_json")  # past Python's 4,300-digit integer limit
    error(one(handler, {"data": {"a": 1}}), 400, "invalid_field")
    error(one_json(handler, {"image": "not base64!"}), 400, "invalid_base64")


def test_a_png_labelled_json_is_invalid_json(handler, scene):
    assert "not JSON" in error(one_json(handler, encode(scene(8, 8))), 400, "invalid_json")


def test_error_bodies_are_utf8_not_escaped(model_dir):
    handler = make_handler(model_dir, max_output_pixels=400)
    _, _, body = one(handler, {"body": encode(Image.new("L", (10, 11)))}, X_Scale="2")
    assert "×2".encode() in body and b"\\u00d7" not in body


def test_two_files_are_refused(handler, scene):
    message = error(one(handler, {"a": encode(scene(8, 8)), "b": encode(scene(8, 8))}), 400, "several_images")
    assert "a, b" in message


def test_input_over_the_pixel_limit_is_refused_from_the_header(model_dir):
    handler = make_handler(model_dir, max_input_pixels=100)
    message = error(one(handler, {"body": encode(Image.new("L", (11, 10)))}), 413, "image_too_large")
    assert "the limit is 100: send it resized to at most 10×9 (its shape)" in message
    assert one(handler, {"body": encode(Image.new("L", (10, 9)))})[0] == 200
    assert one(handler, {"body": encode(Image.new("L", (10, 10)))})[0] == 200


def test_decompression_bomb_header_is_refused(handler):
    png = bytearray(encode(Image.new("L", (1, 1))))
    png[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR width and height ...
    png[29:33] = zlib.crc32(png[12:29]).to_bytes(4, "big")  # ... and its CRC
    limit = MODEL_CONFIG["handler"]["max_input_pixels"]
    assert f"limit of {limit:,} pixels" in error(one(handler, {"body": png}), 413, "image_too_large")


def test_output_over_the_limit_names_the_largest_input(model_dir):
    handler = make_handler(model_dir, max_output_pixels=400)
    assert one(handler, {"body": encode(Image.new("L", (10, 10)))}, X_Scale="2")[0] == 200
    message = error(one(handler, {"body": encode(Image.new("L", (10, 11)))}, X_Scale="2"), 413, "output_too_large")
    assert message.endswith(
        "the limit is 400: at ×2 send at most 9×10 (this image's shape), or ask this image for at most ×1.94"
    )
    assert one(handler, {"body": encode(Image.new("L", (9, 10)))}, X_Scale="2")[0] == 200  # what it said, works
    assert one(handler, {"body": encode(Image.new("L", (10, 11)))}, X_Scale="1.94")[0] == 200
    message = error(one(handler, {"body": encode(Image.new("L", (10, 11)))}, X_Size="30x"), 413, "output_too_large")
    assert message.endswith("ask for at most 19×20 (the same shape)")  # 30×33 asked: 990 pixels
    assert one(handler, {"body": encode(Image.new("L", (10, 11)))}, X_Size="19x20")[0] == 200


def test_answer_over_the_response_limit_is_refused_before_any_work(model_dir, scene, monkeypatch):
    handler = make_handler(model_dir, max_response_bytes=1000)  # 80×80 PNG of the scene: over 1,250 bytes
    monkeypatch.setattr(handler.upscaler, "upscale", lambda *args, **kwargs: pytest.fail("computed"))
    message = error(one(handler, {"body": encode(scene(40, 40))}), 413, "response_too_large")
    assert re.fullmatch(
        r"the answer would be about [0-9,]+ bytes \(image/png, 80×80; estimated before computing "
        r"it\), over the limit of 1,000; ask for image/jpeg or send a smaller image",
        message,
    )
    message = error(one(handler, {"body": encode(scene(40, 40))}, Accept="image/jpeg"), 413, "response_too_large")
    assert message.endswith("over the limit of 1,000; send a smaller image or ask for a smaller size")


def test_answer_the_estimate_let_through_is_still_refused_past_the_limit(model_dir, scene):
    image = scene(40, 40)
    estimate = estimated_bytes(image, (80, 80), "image/png")
    limit = estimate * 100 // 110  # within the margin: computed, and refused by the encoder as it passes the limit
    message = error(
        one(make_handler(model_dir, max_response_bytes=limit), {"body": encode(image)}), 413, "response_too_large"
    )
    assert message == (
        f"the answer as PNG passed the limit of {limit:,} bytes; ask for image/jpeg or "
        "image/webp (Accept), or send a smaller image"
    )


def test_jpeg_side_limit(model_dir):
    handler = make_handler(model_dir, max_input_pixels=10**6, max_output_pixels=4 * 10**6)
    result = one(handler, {"body": encode(Image.new("L", (40_000, 1)))}, Accept="image/jpeg")
    assert "image/png" in error(result, 413, "output_too_large")


# --- batches, failures, settings -------------------------------------------------------------------------------


def test_a_bad_request_fails_alone_in_its_batch(handler, scene):
    results = call(
        handler,
        ({"body": encode(scene(10, 6))}, {}),
        ({"body": b"nope"}, {}),
        ({"body": encode(scene(7, 9))}, {"X-Scale": "3"}),
    )
    assert [code for code, _, _ in results] == [200, 415, 200]
    assert decoded(results[0][2]).size == (20, 12) and decoded(results[2][2]).size == (21, 27)


def test_an_unexpected_failure_is_a_500_for_that_request_only(handler, scene, monkeypatch):
    real = handler.upscaler.upscale

    def flaky(image, scale=None, size=None, stop=None):
        if image.width == 13:
            raise RuntimeError("boom")
        return real(image, scale, size, stop)

    monkeypatch.setattr(handler.upscaler, "upscale", flaky)
    results = call(handler, ({"body": encode(scene(13, 5))}, {}), ({"body": encode(scene(12, 5))}, {}))
    assert [code for code, _, _ in results] == [500, 200]
    assert "boom" not in results[0][2].decode()


def test_missing_weights_fail_at_load(model_dir):
    (model_dir / "weights" / "srcnn_x2.pth").unlink()
    with pytest.raises(RuntimeError, match=r"weights for ×\[2\] are missing"):
        make_handler(model_dir)


def test_default_scale_out_of_range_fails_at_load(model_dir):
    with pytest.raises(ValueError, match="from 1 to 8"):
        make_handler(model_dir, default_scale=9)
    assert decoded(
        one(make_handler(model_dir, default_scale=2.5), {"body": encode(Image.new("L", (4, 4)))})[2]
    ).size == (10, 10)


@pytest.mark.slow  # measures this machine's engines (srcnn.choice)
def test_the_shipped_setting_serves_the_engine_measured_fastest_within_the_cost(tmp_path, scene):
    (tmp_path / "weights").mkdir()
    for scale in SCALES:
        for path in (weight_file(SHIPPED, scale), sidecar_path(weight_file(SHIPPED, scale))):
            shutil.copy2(path, tmp_path / "weights" / path.name)
    assert MODEL_CONFIG["handler"]["precision"] == "auto"
    handler = make_handler(tmp_path, precision="auto", threads=1)
    choice = choose(SHIPPED, "auto", engine_threads=1)  # the handler's measurement, read back from the cache
    chosen = choice.engine
    assert {engine.name for lane in handler.upscaler.lanes for engine in lane.values()} == {chosen}
    assert worst_costs(SHIPPED)[chosen] <= MAX_COST_DB
    image = scene(37, 23)
    expected = upscale(image, load_engines(SHIPPED, name=chosen, tile=choice.tile), 2.5)
    answer = decoded(one(handler, {"body": encode(image)}, X_Scale="2.5")[2])
    assert np.array_equal(np.asarray(answer), np.asarray(expected))


@pytest.mark.parametrize(
    "precision, message",
    [
        ("int8", "no int8 calibration.*make calibrate"),
        ("fp16", "'fp16' does not run on cpu"),
        ("float", "choose one of"),
    ],
)
def test_a_precision_that_cannot_run_fails_at_load(model_dir, precision, message):
    with pytest.raises(ValueError, match=message):
        make_handler(model_dir, precision=precision)


def test_unknown_settings_are_refused():
    with pytest.raises(ValueError, match="max_pixels"):
        Settings.from_yaml({"max_pixels": 5})


def test_limits_fit_together():
    settings = Settings.from_yaml(MODEL_CONFIG["handler"])
    properties = read_properties(ROOT / "config.properties")
    # Photographs: a 50-megapixel upload, and a 12-megapixel one at ×3 (the bar for photographs: 4032×3024 at ×2).
    assert settings.max_input_pixels >= 8192 * 6144 and settings.max_output_pixels >= 4032 * 3024 * 3**2 + 1
    # TorchServe 0.12 kills the worker on an answer over max_response_size, so the handler's cap must be lower.
    assert int(properties["max_response_size"]) >= settings.max_response_bytes
    # The memory a worker holds beyond its code: the answer (Pillow keeps 4 bytes a pixel), its encoding and
    # TorchServe's copy of it in the reply, at most the cap each: at most 1.1 GB, leaving 400 MB of the 1.5 GB
    # bar to the worker itself (make bench measures the real peak).
    assert 4 * settings.max_output_pixels + 2 * settings.max_response_bytes <= 1.1e9
    # Answers of a detailed photograph fit the cap: as JPEG at the output limit, as PNG for a 12-megapixel photo at
    # ×2; measured per pixel on Set14's baboon (the most detailed image of the sets) ×2, bicubic, as the texture.
    with Image.open(ROOT / "data" / "Set14" / "baboon.png") as baboon:
        photo = baboon.convert("RGB").resize((baboon.width * 2, baboon.height * 2), Image.Resampling.BICUBIC)
    for media_type, pixels in (("image/jpeg", settings.max_output_pixels), ("image/png", 8064 * 6048)):
        bytes_per_pixel = len(encode_image(photo, media_type)) / (photo.width * photo.height)
        assert bytes_per_pixel * pixels <= settings.max_response_bytes
    # The largest input, as an 8-bit RGB PNG of a detailed photograph (the baboon at Pillow's default compression,
    # as a user's tools write it), fits the request limit, with a fifth to spare for noisier ones.
    with Image.open(ROOT / "data" / "Set14" / "baboon.png") as baboon:
        png = io.BytesIO()
        baboon.convert("RGB").save(png, "PNG")
        bytes_per_pixel = len(png.getvalue()) / (baboon.width * baboon.height)
    assert 1.2 * bytes_per_pixel * settings.max_input_pixels <= int(properties["max_request_size"])
    # The slowest request the limits allow (just over ×4: a ×2 pass, then ×3, on 40× the input; srcnn.scaling.passes)
    # must end within responseTimeout on one core at 30 GFLOP/s (a slow core in fp32).
    flop = load_model(weight_file(SHIPPED, 2)).flops_per_pixel
    worst = max(network_pixels(settings, factor / 100) for factor in range(101, 801))
    assert worst > 2 * settings.max_output_pixels  # the network's planes, not the answer, set the time
    assert worst * flop / 30e9 <= MODEL_CONFIG["responseTimeout"]


def network_pixels(settings, factor):
    """Pixels the network computes for the largest input the limits allow at `factor`."""
    pixels = min(settings.max_input_pixels, settings.max_output_pixels / factor**2)
    side = math.sqrt(pixels)
    total, scale = 0, 1
    for trained in passes_between((round(side), round(side)), (round(side * factor), round(side * factor))):
        scale *= trained
        total += pixels * scale**2
    return total


def test_a_large_request_with_no_place_left_is_a_503_with_a_retry_after_and_a_small_one_goes_in(model_dir, scene):
    """The shipped minWorkers less one are the places of large requests (handler/admission.py); here every place is
    held, as by the other workers' large requests."""
    handler = make_handler(model_dir, large_output_pixels=100)
    places = max(1, MODEL_CONFIG["minWorkers"] - 1)
    others = [Admission(model_dir / ".admission", 100, admitted=places) for _ in range(places)]
    with contextlib.ExitStack() as held:
        for other in others:
            held.enter_context(other.place((20, 20)))
        context = Context("srcnn", "", {"model": {}}, 2, None, "0.12.0", metrics=Metrics())
        context.request_processor = [RequestProcessor({}), RequestProcessor({})]
        bodies = handler.handle([{"body": encode(scene(8, 6))}, {"body": encode(Image.new("RGB", (5, 5)))}], context)
    assert context.get_response_status(0)[0] == 503 and context.get_response_headers(0)["Retry-After"].isdigit()
    assert json.loads(bodies[0])["type"] == "server_busy"
    assert context.get_response_status(1)[0] == 200 and decoded(bodies[1]).size == (10, 10)  # small: not counted


# --- what an answer says about itself ---------------------------------------------------------------------------


def test_an_answer_says_its_scale_size_weights_and_timing(handler, model_dir, scene):
    context = Context("srcnn", "", {"model": {}}, 1, None, "0.12.0", metrics=Metrics())
    context.request_processor = [RequestProcessor({"X-Scale": "3"})]
    (body,) = handler.handle([{"body": encode(scene(40, 30))}], context)
    headers = context.get_response_headers(0)
    assert decoded(body).size == (120, 90)
    assert (headers["X-Scale"], headers["X-Output-Size"]) == ("3", "120x90")
    digest = hashlib.sha256((model_dir / "weights" / "srcnn_x3.pth").read_bytes()).hexdigest()
    assert headers["X-Weights"] == f"srcnn_x3.pth;sha256={digest[:12]}"
    stages = [part.split(";dur=") for part in headers["Server-Timing"].split(", ")]
    assert [name for name, _ in stages] == ["decode", "upscale", "encode"]
    assert all(float(milliseconds) >= 0 for _, milliseconds in stages)


def test_one_info_line_per_request_and_nothing_louder(handler, scene, caplog):
    caplog.set_level(logging.INFO, logger="handler.srcnn_handler")
    call(handler, ({"body": encode(scene(10, 6))}, {"X-Scale": "4"}), ({"body": b"nope"}, {}))
    lines = [record for record in caplog.records if record.name == "handler.srcnn_handler"]
    assert [record.levelno for record in lines] == [logging.INFO, logging.INFO]
    served, refused = (record.getMessage() for record in lines)
    assert (
        served.startswith("srcnn ")
        and " status=200 error=- scale=4 input=10x6 output=40x24 format=image/png weights=srcnn_x4.pth;sha256="
        in served
    )
    assert all(f"{stage}_ms=" in served for stage in ("decode", "upscale", "encode"))
    assert " status=415 error=not_an_image scale=- input=- " in refused and "upscale_ms" not in refused


def test_several_passes_are_one_header_and_one_log_value(handler, scene, caplog):
    caplog.set_level(logging.INFO, logger="handler.srcnn_handler")
    context = Context("srcnn", "", {"model": {}}, 1, None, "0.12.0", metrics=Metrics())
    context.request_processor = [RequestProcessor({"X-Scale": "8"})]
    handler.handle([{"body": encode(scene(10, 6))}], context)
    weights = context.get_response_headers(0)["X-Weights"]
    assert [part.split(";")[0] for part in weights.split(",")] == ["srcnn_x2.pth", "srcnn_x4.pth"]
    (line,) = (record.getMessage() for record in caplog.records if record.name == "handler.srcnn_handler")
    assert f" weights={weights} " in line and all("=" in pair for pair in line.split()[1:])


# --- KServe v1 and v2, gRPC ------------------------------------------------------------------------------------


def b64(data):
    return base64.b64encode(data).decode()


def test_kserve_v1_answers_predictions_in_base64(handler, scene):
    png = encode(scene(20, 10))
    for instance, size in (
        ({"data": b64(png), "scale": 3}, (60, 30)),
        ({"b64": b64(png)}, (40, 20)),
        (b64(png), (40, 20)),
    ):
        status, content_type, body = one_json(handler, {"instances": [instance]})
        assert (status, content_type) == (200, "application/json"), body
        (prediction,) = json.loads(body)["predictions"]
        assert decoded(base64.b64decode(prediction)).size == size


def test_kserve_v1_errors_keep_our_error_body(handler, scene):
    png = b64(encode(scene(8, 8)))
    assert "not 2 of them" in error(one_json(handler, {"instances": [{"data": png}] * 2}), 400, "invalid_kserve")
    assert '"data"' in error(one_json(handler, {"instances": [{"image": png}]}), 400, "invalid_kserve")
    error(one_json(handler, {"instances": [{"data": png, "scale": 9}]}), 422, "invalid_scale")
    error(one_json(handler, {"instances": [{"data": b64(b"hello")}]}), 415, "not_an_image")


def test_kserve_v2_answers_the_open_inference_protocol(handler, scene):
    request = {
        "id": "req-7",
        "parameters": {"scale": 2},
        "inputs": [
            {
                "name": "image",
                "shape": [-1],
                "datatype": "BYTES",
                "data": [b64(encode(scene(20, 10)))],
                "parameters": {"scale": 4},
            }
        ],
    }
    status, content_type, body = one_json(handler, request)
    assert (status, content_type) == (200, "application/json"), body
    answer = json.loads(body)
    assert (answer["model_name"], answer["id"]) == ("srcnn", "req-7")
    (output,) = answer["outputs"]
    assert {key: output[key] for key in ("name", "shape", "datatype", "parameters")} == {
        "name": "image",
        "shape": [1],
        "datatype": "BYTES",
        "parameters": {"content_type": "image/png"},
    }
    assert decoded(base64.b64decode(output["data"][0])).size == (80, 40)  # the input's parameters win


@pytest.mark.parametrize(
    "tensor, status",
    [
        ({"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}, 400),
        ({"name": "x", "shape": [2], "datatype": "BYTES", "data": ["aGk=", "aGk="]}, 400),
        ({"name": "x", "shape": [1], "datatype": "BYTES", "data": ["@@@"]}, 400),
        ({"name": "x", "shape": [1], "datatype": "BYTES", "data": [b64(b"not an image")]}, 415),
        (
            {
                "name": "x",
                "shape": [1],
                "datatype": "BYTES",
                "data": [b64(encode(Image.new("L", (4, 4))))],
                "parameters": {"scale": 9},
            },
            422,
        ),
    ],
)
def test_kserve_v2_errors_are_the_protocols_error_body(handler, tensor, status):
    code, content_type, body = one_json(handler, {"inputs": [tensor]})
    assert (code, content_type) == (status, "application/json")
    message = json.loads(body)
    assert list(message) == ["error"] and len(message["error"]) > 20


def grpc_call(handler, *rows):
    """Requests as TorchServe's gRPC frontend hands them over: the input map, and no HTTP header (only each
    input's content type, as a dict under its name)."""
    context = Context("srcnn", "", {"model": {}}, len(rows), None, "0.12.0", metrics=Metrics())
    context.request_processor = [RequestProcessor({name: {"content-type": ""} for name in row}) for row in rows]
    bodies = handler.handle(list(rows), context)
    return [(context.get_response_status(i)[0], body) for i, body in enumerate(bodies)]


def test_grpc_input_map_gives_the_image(handler, scene):
    ((status, body),) = grpc_call(handler, {"data": encode(scene(20, 10)), "scale": b"3"})
    assert status == 200 and decoded(body).size == (60, 30)


@pytest.mark.parametrize(
    "row, status, code, kind",
    [
        ({"data": b"just text"}, 400, 415, "not_an_image"),
        ({}, 400, 400, "empty_body"),
        ({"data": encode(Image.new("L", (8, 8))), "scale": b"9"}, 400, 422, "invalid_scale"),
        (
            {"data": encode(Image.new("L", (MODEL_CONFIG["handler"]["max_input_pixels"] + 1, 1)))},
            413,
            413,
            "image_too_large",
        ),
    ],
)
def test_a_refused_grpc_request_is_raised_with_its_status(handler, row, status, code, kind):
    with pytest.raises(PredictionException) as raised:
        grpc_call(handler, row)
    error = json.loads(raised.value.message)
    assert raised.value.error_code == status and (error["code"], error["type"]) == (code, kind)


def test_grpc_refusal_in_a_batch_of_several_stays_per_request(handler, scene):
    results = grpc_call(handler, {"data": encode(scene(8, 8))}, {"data": b"nope"})
    assert [status for status, _ in results] == [200, 415]


def test_requests_are_counted_by_wire_scale_and_outcome(handler, scene):
    metrics = Metrics()
    call(
        handler,
        ({"body": encode(scene(10, 6))}, {"X-Scale": "3"}),
        ({"body": encode(scene(10, 6))}, {}),
        ({"body": b"nope"}, {}),
        (json_body(b"{"), {"Content-Type": "application/json"}),
        metrics=metrics,
    )
    requests = {key[3:]: value for key, value in metrics.counters.items() if key[0] == "SRCNNRequests"}
    assert requests == {
        ("rest", "3", "2xx"): 1,
        ("rest", "2", "2xx"): 1,
        ("rest", "-", "not_an_image"): 1,
        ("rest", "-", "invalid_json"): 1,
    }
    assert metrics.counters[("SRCNNOutputMegapixels", "srcnn", "Model", "3")] == pytest.approx(30 * 18 / 1e6)
    assert metrics.counters[("SRCNNStageMilliseconds", "srcnn", "Model", "upscale")] > 0


@pytest.mark.parametrize("envelope_class", [KServeEnvelope, KServev2Envelope])
def test_torchserves_kserve_envelope_is_taken_off(handler, envelope_class, scene):
    """TorchServe wraps the handler in an envelope when TS_SERVICE_ENVELOPE is set (ts.model_loader); the handler
    points the worker's Service back at itself, so a binary v2 request (which the envelope fails on) is read."""
    service = Service("srcnn", "", {"model": {}}, envelope_class(handler.handle).handle, None, 1)
    assert without_envelope(service.context) and service._entry_point == handler.handle
    assert not without_envelope(service.context)  # nothing left to take off
    png = encode(scene(20, 10))
    header = json.dumps(
        {
            "inputs": [
                {"name": "image", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 4 + len(png)}}
            ]
        }
    ).encode()
    body = header + len(png).to_bytes(4, "little") + png
    status, content_type, answer = one(
        handler, {"body": bytearray(body)}, Inference_Header_Content_Length=str(len(header))
    )
    assert (status, content_type) == (200, "application/json")
    assert decoded(base64.b64decode(json.loads(answer)["outputs"][0]["data"][0])).size == (40, 20)


def test_an_explanation_is_refused_with_a_404_that_says_where_to_go(handler, scene):
    message = error(one(handler, {"body": encode(scene(8, 8))}, explain="True"), 404, "no_explanations")
    assert "/predictions/srcnn" in message


def test_the_describe_header_answers_what_the_service_is(handler, scene):
    ((status, _, body),) = call(handler, ({"body": encode(scene(8, 8))}, {"describe": "True"}))
    described = json.loads(body)
    assert status == 200 and described["model"] == "srcnn" and set(described["weights"]) == {"2", "3", "4"}
    assert (
        described["engine"] == "onnxruntime-fp32"
        and described["settings"]["max_input_pixels"] == MODEL_CONFIG["handler"]["max_input_pixels"]
    )


# A JPEG whose EXIF claims five entries and holds less: Pillow warns "Corrupt EXIF data" as it reads it.
DAMAGED_EXIF = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x05\x00\x0f\x01\x02\x00\x40\x00\x00\x00"


def test_decoder_warnings_are_counted_in_the_requests_line_never_logged_as_warnings(handler, caplog):
    caplog.set_level(logging.INFO)
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        ((status, _, _),) = call(handler, ({"body": encode(Image.new("RGB", (8, 8)), "JPEG", exif=DAMAGED_EXIF)}, {}))
    assert status == 200 and escaped == []
    assert all(record.levelno < logging.WARNING for record in caplog.records)
    (line,) = [record.getMessage() for record in caplog.records if record.getMessage().startswith("srcnn id=")]
    assert line.endswith(
        " warnings=1 warning=Corrupt%20EXIF%20data.%20%20Expecting%20to%20read%2012%20bytes%20but%20only%20got%208.%20"
    )


def test_the_handler_answers_sixteen_bits_as_png_and_eight_as_jpeg_and_counts_the_answer_twice(model_dir):
    handler = make_handler(model_dir, max_output_pixels=2 * 64 * 48)
    body = imagecodecs.png_encode(gradients(24, 32))
    status, content_type, answer = one(handler, {"body": body})
    assert (status, content_type, ihdr(answer)) == (200, "image/png", (16, 2))
    assert imagecodecs.png_decode(answer).shape == (48, 64, 3)
    status, _, answer = one(handler, {"body": body}, X_Scale="2.5")  # 80×60: over half the pixel limit
    assert status == 413 and b"for 16-bit answers" in answer
    status, content_type, answer = one(handler, {"body": body}, X_Scale="2.5", Accept="image/jpeg")
    assert (status, content_type, decoded(answer).size) == (200, "image/jpeg", (80, 60))
