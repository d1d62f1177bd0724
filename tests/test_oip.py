"""handler/oip.py called directly: the Open Inference Protocol's tensors, JSON and binary, read and written, with
the bodies and answers written out here byte by byte from the protocol's text."""

import base64
import json
import struct

import numpy as np
import pytest

from handler import oip
from handler.protocol import ClientError

PNG = b"\x89PNG\r\n\x1a\n fake"


def refused(function, *arguments):
    with pytest.raises(ClientError) as raised:
        function(*arguments)
    assert raised.value.status == 400
    return raised.value.message


def test_a_binary_body_is_split_at_the_headers_length_and_its_elements_read():
    header = json.dumps(
        {
            "inputs": [
                {"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 4 + len(PNG)}}
            ]
        }
    ).encode()
    body = header + len(PNG).to_bytes(4, "little") + PNG
    json_part, binary = oip.split_body(body, str(len(header)))
    request = oip.read_request(json.loads(json_part), binary)
    (tensor,) = request.inputs
    assert (tensor.name, tensor.datatype, tensor.shape, list(tensor.values)) == ("image", "BYTES", (1,), [PNG])
    assert oip.image_of(request.inputs) == PNG


@pytest.mark.parametrize(
    "element",
    [
        base64.b64encode(PNG).decode(),
        base64.b64encode(PNG),
        "data:image/png;base64," + base64.b64encode(PNG).decode(),
        PNG,
    ],
)
def test_a_file_element_is_base64_text_or_the_files_bytes(element):
    assert oip.file_bytes("image", element) == PNG


def test_pixels_keep_their_shape_and_a_minus_one_is_resolved():
    request = oip.read_request(
        {"inputs": [{"name": "p", "datatype": "UINT8", "shape": [2, -1, 3], "data": [[[1, 2, 3]] * 2] * 2}]}
    )
    pixels = oip.image_of(request.inputs)
    assert pixels.shape == (2, 2, 3) and pixels.dtype == np.uint8 and pixels[1, 1].tolist() == [1, 2, 3]


@pytest.mark.parametrize(
    "entry, words",
    [
        ({"name": "x", "datatype": "BYTES", "shape": [2], "data": ["a"]}, "holds 2 elements and the data 1"),
        ({"name": "x", "datatype": "BYTES", "shape": [-1, -1], "data": ["a"]}, "more than one -1"),
        ({"name": "x", "datatype": "FP32", "shape": [1], "data": [0.5]}, "is FP32"),
        ({"name": "x", "datatype": "UINT8", "shape": [1], "data": [256]}, "from 0 to 255"),
        ({"name": "x", "datatype": "BYTES", "shape": [1]}, 'neither "data"'),
        ({"name": "x", "datatype": "BYTES", "shape": "1", "data": ["a"]}, "list of non-negative integers"),
    ],
)
def test_a_tensor_that_is_not_what_it_says_is_refused(entry, words):
    assert words in refused(oip.read_request, {"inputs": [entry]})


@pytest.mark.parametrize(
    "tail, size, words",
    [
        (struct.pack("<I", 9) + b"abc", 7, "past the end"),
        (b"ab", 2, "inside an element's 4-byte length"),
        (struct.pack("<I", 1) + b"a" + b"extra", 5, "5 bytes follow"),
        (b"", 4, "more than the 0 bytes left"),
    ],
)
def test_binary_lengths_that_do_not_add_up_are_refused(tail, size, words):
    request = {"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": size}}]}
    assert words in refused(oip.read_request, request, memoryview(tail))


def test_a_header_length_past_the_body_is_refused():
    assert "is the length of the JSON" in refused(oip.split_body, b"{}", "3")


def test_the_outputs_asked_for_else_the_inputs_kind():
    assert oip.wanted_outputs((), True, False) == (("image", True),)
    assert oip.wanted_outputs((), False, True) == (("pixels", False),)
    assert oip.wanted_outputs((("pixels", True), ("image", False)), False, False) == (
        ("pixels", True),
        ("image", False),
    )
    assert "'image'" in refused(oip.wanted_outputs, (("logits", False),), False, False)


def test_an_answer_in_json_and_in_binary():
    pixels = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    outputs = [
        ("image", False, *oip.output_values("image", None, PNG)),
        ("pixels", True, *oip.output_values("pixels", pixels, None)),
    ]
    body, length = oip.response("srcnn", "7", outputs, "image/png", {"scale": "2"})
    header = json.loads(body[:length])
    assert header == {
        "model_name": "srcnn",
        "id": "7",
        "parameters": {"scale": "2"},
        "outputs": [
            {
                "name": "image",
                "datatype": "BYTES",
                "shape": [1],
                "parameters": {"content_type": "image/png"},
                "data": [base64.b64encode(PNG).decode()],
            },
            {"name": "pixels", "datatype": "UINT8", "shape": [2, 2, 3], "parameters": {"binary_data_size": 12}},
        ],
    }
    assert body[length:] == bytes(range(12))
    only_json, none = oip.response("srcnn", "7", outputs[:1], "image/png")
    assert none is None and json.loads(only_json)["outputs"][0]["data"] == [base64.b64encode(PNG).decode()]
    binary_file, length = oip.response(
        "srcnn", "7", [("image", True, *oip.output_values("image", None, PNG))], "image/png"
    )
    assert binary_file[length:] == struct.pack("<I", len(PNG)) + PNG
