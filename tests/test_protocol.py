"""The pure request functions, called directly: handler/protocol.py (scale, size, Accept, trace) and
handler/wire.py (where the image is in each wire format, and how the answer goes back), without a handler."""

import base64
import json

import pytest

from handler.protocol import ClientError, Settings, Trace, choose_media_type, factor_label, requested_sizing
from handler.wire import GRPC, KSERVE_V1, KSERVE_V2, REST, Upload, answer, error_body, json_upload, read_upload

PNG = b"\x89PNG\r\n\x1a\n fake"
B64 = base64.b64encode(PNG).decode()


def refusal(function, *arguments):
    with pytest.raises(ClientError) as raised:
        function(*arguments)
    return raised.value.status, raised.value.kind


@pytest.mark.parametrize(
    "headers, upload, expected",
    [
        ({}, Upload(PNG), (2, None)),
        ({"x-scale": "3"}, Upload(PNG), (3, None)),
        ({}, Upload(PNG, scale="2.5"), (2.5, None)),
        ({"X-Size": "64x"}, Upload(PNG), (None, (64, None))),
        ({"X-Scale": "3"}, Upload(PNG, scale=3), (3, None)),  # header and field agree
    ],
)
def test_the_sizing_comes_from_a_header_or_the_upload_else_the_default(headers, upload, expected):
    assert requested_sizing(headers, upload, 2) == expected


@pytest.mark.parametrize(
    "headers, upload, kind",
    [
        ({"X-Scale": "9"}, Upload(PNG), "invalid_scale"),
        ({"X-Scale": "3"}, Upload(PNG, scale="4"), "invalid_scale"),
        ({"X-Scale": "3", "X-Size": "64x48"}, Upload(PNG), "invalid_size"),
        ({"X-Size": "0x0"}, Upload(PNG), "invalid_size"),
    ],
)
def test_a_bad_or_contradictory_sizing_is_a_422(headers, upload, kind):
    assert refusal(requested_sizing, headers, upload, 2) == (422, kind)


def test_factor_labels_say_what_was_done():
    assert factor_label(2.5, (10, 10), (25, 25)) == "2.5"
    assert factor_label(None, (10, 20), (16, 32)) == "1.6"
    assert factor_label(None, (10, 20), (16, 30)) == "1.6x1.5"


@pytest.mark.parametrize(
    "accept, expected",
    [
        (None, "image/png"),
        ("image/webp", "image/webp"),
        ("image/jpeg;q=0.5, image/webp;q=0.9", "image/webp"),
        ("text/html, image/*", "image/png"),
        ("*/*", "image/png"),
        ("image/webp;q=0, image/jpeg", "image/jpeg"),
    ],
)
def test_the_answer_format_follows_accept(accept, expected):
    assert choose_media_type(accept) == expected


def test_an_accept_that_allows_no_image_format_is_a_406():
    assert refusal(choose_media_type, "text/html, application/json") == (406, "not_acceptable")


def test_settings_refuse_unknown_keys_and_keep_defaults():
    assert Settings.from_yaml(None) == Settings()
    assert Settings.from_yaml({"threads": 1}).threads == 1
    with pytest.raises(ValueError, match="max_pixels"):
        Settings.from_yaml({"max_pixels": 1})


def test_the_trace_gives_headers_and_one_spaceless_log_line():
    trace = Trace(
        request_id="r1",
        scale="2",
        input_size=(4, 3),
        output_size=(8, 6),
        media_type="image/png",
        weights="srcnn_x2.pth;sha256=abc",
        stages={"decode": 1.25, "upscale": 10.0},
    )
    assert trace.headers() == {
        "X-Scale": "2",
        "X-Output-Size": "8x6",
        "X-Weights": "srcnn_x2.pth;sha256=abc",
        "Server-Timing": "decode;dur=1.2, upscale;dur=10.0",
    }
    assert trace.log_line() == (
        "srcnn id=r1 wire=rest status=200 error=- scale=2 input=4x3 output=8x6 "
        "format=image/png weights=srcnn_x2.pth;sha256=abc decode_ms=1.2 upscale_ms=10.0"
    )


@pytest.mark.parametrize(
    "row, headers, expected",
    [
        ({"body": bytearray(PNG)}, {"Content-Type": "image/png"}, Upload(PNG, REST)),
        (
            {"data": PNG, "scale": bytearray(b"3")},
            {"content-type": "multipart/form-data"},
            Upload(PNG, REST, scale=b"3"),
        ),
        ({"data": PNG, "scale": b"4"}, {}, Upload(PNG, GRPC, scale=b"4")),  # no HTTP header: gRPC
        (
            {"body": json.dumps({"image": B64, "size": "64x"}).encode()},
            {"Content-Type": "application/json"},
            Upload(PNG, REST, size="64x"),
        ),
        # tritonclient labels nothing: a body that starts with { is JSON
        (
            {
                "body": json.dumps(
                    {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [B64]}]}
                ).encode()
            },
            {"Accept": "*/*"},
            Upload(PNG, KSERVE_V2, outputs=(("image", False),)),
        ),
    ],
)
def test_the_upload_is_found_in_every_shape_a_request_arrives_in(row, headers, expected):
    assert read_upload(row, headers) == expected


@pytest.mark.parametrize(
    "row, headers, status, kind",
    [
        ({"body": b"a=b"}, {"Content-Type": "application/x-www-form-urlencoded"}, 415, "form_body"),
        ({"a": PNG, "b": PNG}, {"Content-Type": "multipart/form-data"}, 400, "several_images"),
        ({"body": b"{not json"}, {"Content-Type": "application/json"}, 400, "invalid_json"),
        ({"body": b'{"image": "%%%"}'}, {"Content-Type": "application/json"}, 400, "invalid_base64"),
    ],
)
def test_malformed_requests_are_client_errors(row, headers, status, kind):
    assert refusal(read_upload, row, headers) == (status, kind)


def test_kserve_bodies_are_told_apart_by_their_keys():
    v1 = json_upload(json.dumps({"instances": [{"b64": B64, "scale": 3}]}).encode())
    assert (v1.data, v1.wire, v1.scale) == (PNG, KSERVE_V1, 3)
    v2 = json_upload(
        json.dumps(
            {
                "id": "7",
                "inputs": [{"name": "img", "shape": [-1], "datatype": "BYTES", "data": [B64]}],
                "parameters": {"size": "x80"},
            }
        ).encode()
    )
    assert (v2.data, v2.wire, v2.size, v2.inference_id) == (PNG, KSERVE_V2, "x80", "7")
    assert refusal(json_upload, json.dumps({"instances": [{"data": B64}, {"data": B64}]}).encode()) == (
        400,
        "invalid_kserve",
    )


def test_answers_and_errors_take_the_shape_of_their_wire():
    def encode():
        return PNG

    assert answer(None, encode, "image/png", Upload(PNG, REST), "srcnn", "r") == (PNG, "image/png", {})
    body, media_type, headers = answer(None, encode, "image/png", Upload(PNG, KSERVE_V1), "srcnn", "r")
    assert media_type == "application/json" and json.loads(body) == {"predictions": [B64]} and headers == {}
    error = ClientError(413, "too_large", "smaller, please")
    assert json.loads(error_body(error, REST)) == {
        "code": 413,
        "type": "too_large",
        "message": "smaller, please",
        "error": "smaller, please",
    }
    assert json.loads(error_body(error, KSERVE_V2)) == {"error": "smaller, please"}
