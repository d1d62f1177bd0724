"""The Open Inference Protocol (KServe v2) as its clients send it, free of TorchServe and of KServe's SDK.

The model's tensors, as its metadata declares them (`INPUTS`, `OUTPUTS`):

- input `image`, BYTES, shape [1]: the image file. In JSON, where bytes must be text, the element is the file in
  base64 (a `data:` URL's prefix is dropped); in binary form (the binary tensor extension, the default of
  tritonclient and of the kserve SDK) it is the file's bytes, or base64 text of them.
- input `pixels`, UINT8, shape [H, W, 3], [H, W, 4] or [H, W]: decoded pixels (RGB, RGBA or grey), as a numpy
  user sends them with `set_data_from_numpy`.
- output `image`, BYTES, shape [1]: the answer's file (PNG, or the `Accept` header's format), base64 in JSON.
- output `pixels`, UINT8: the answer's pixels, with as many channels as the input's.

An input is read by its datatype whatever its name; a request names the outputs it wants, else it gets the kind it
sent (a file for a file, pixels for pixels). A dimension of -1 in an input's shape stands for what its data holds;
every other shape must hold exactly the elements sent. Outputs are binary when the request asks for it (an output's
`binary_data` parameter, else the request's `binary_data_output`) and always over gRPC.

The binary tensor extension: the JSON header's length in bytes in the HTTP header `Inference-Header-Content-Length`,
then each binary tensor's bytes in order, an input's JSON saying `"parameters": {"binary_data_size": N}` instead of
`data`; a BYTES tensor's bytes are each element as a 4-byte little-endian length and its bytes.
"""

import base64
import json
import math
import re
import struct
from dataclasses import dataclass

import numpy as np

from handler.protocol import ClientError, decode_base64
from srcnn.codec import eight_bit

HEADER = "Inference-Header-Content-Length"
IMAGE, PIXELS = "image", "pixels"
# The model's metadata: the same two tensors in and out (pixels may also be [H, W]).
INPUTS = OUTPUTS = (
    {"name": IMAGE, "datatype": "BYTES", "shape": [1]},
    {"name": PIXELS, "datatype": "UINT8", "shape": [-1, -1, -1]},
)
SHAPE_HINT = (
    'send one input: {"name": "image", "datatype": "BYTES", "shape": [1], "data": ["<base64 of the file>"]}, '
    'or the pixels as {"name": "pixels", "datatype": "UINT8", "shape": [H, W, 3]} (or [H, W, 4], [H, W])'
)
BASE64_TEXT = re.compile(rb"[A-Za-z0-9+/\r\n]+={0,2}")


def mistake(message, kind="invalid_kserve"):
    """A 400 ClientError of this protocol."""
    return ClientError(400, kind, message)


@dataclass(frozen=True)
class Tensor:
    """One input as sent: its name, datatype, shape (a -1 resolved), its elements, flat (bytes or str for
    BYTES, uint8 for UINT8), and its parameters."""

    name: str
    datatype: str
    shape: tuple
    values: np.ndarray
    parameters: dict


def checked_shape(name, shape, count):
    """`shape` (a list of ints, at most one -1) with its -1 resolved so that it holds `count` elements; else a 400
    that says what the data holds."""
    if not isinstance(shape, list) or not all(isinstance(side, int) and side >= -1 for side in shape):
        raise mistake(f"input {name!r}: the shape is a list of non-negative integers, not {str(shape)[:60]}")
    if shape.count(-1) > 1:
        raise mistake(f"input {name!r}: the shape {shape} has more than one -1")
    if -1 in shape:
        known = math.prod(side for side in shape if side != -1)
        if known == 0 or count % known:
            raise mistake(f"input {name!r}: {count} elements do not fill the shape {shape}")
        shape = [count // known if side == -1 else side for side in shape]
    if math.prod(shape) != count:
        raise mistake(f"input {name!r}: the shape {shape} holds {math.prod(shape)} elements and the data {count}")
    return tuple(shape)


def check_datatype(name, datatype):
    if datatype not in ("BYTES", "UINT8"):
        raise mistake(
            f"input {name!r} is {datatype}; this model reads BYTES (an image file) or UINT8 (pixels): {SHAPE_HINT}"
        )


def tensor(name, datatype, shape, values, parameters=None):
    """A Tensor of the datatypes this model reads, its elements checked against its shape."""
    check_datatype(name, datatype)
    values = np.asarray(values).reshape(-1)
    return Tensor(
        name,
        datatype,
        checked_shape(name, shape, values.size),
        values,
        parameters if isinstance(parameters, dict) else {},
    )


def bytes_elements(name, raw):
    """The elements of a BYTES tensor's binary form (each a 4-byte little-endian length and its bytes)."""
    elements, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise mistake(f"input {name!r}: its binary data ends inside an element's 4-byte length")
        (length,) = struct.unpack_from("<I", raw, offset)
        if offset + 4 + length > len(raw):
            raise mistake(f"input {name!r}: an element claims {length:,} bytes, past the end of its binary data")
        elements.append(bytes(raw[offset + 4 : offset + 4 + length]))
        offset += 4 + length
    array = np.empty(len(elements), dtype=object)
    array[:] = elements
    return array


def json_elements(name, datatype, data):
    """The elements of a tensor's JSON `data` (nested lists are read in row-major order), or of a gRPC tensor's
    typed contents."""
    if datatype == "BYTES":
        flat = np.asarray(data, dtype=object).reshape(-1) if isinstance(data, list) else np.asarray([data], object)
        if not all(isinstance(value, (str, bytes)) for value in flat):
            raise mistake(f"input {name!r}: BYTES data in JSON are strings (the file in base64)")
        return flat
    try:
        values = np.asarray(data, dtype=np.int64)
    except (ValueError, TypeError, OverflowError):
        raise mistake(f"input {name!r}: UINT8 data are integers from 0 to 255") from None
    if values.size and (values.min() < 0 or values.max() > 255):
        raise mistake(f"input {name!r}: UINT8 data are integers from 0 to 255")
    return values.astype(np.uint8)


@dataclass(frozen=True)
class Request:
    """A v2 inference request: its id, its parameters, its inputs and the outputs it asks for as
    (name, binary) pairs (empty: the outputs of the input's kind)."""

    id: str | None
    parameters: dict
    inputs: tuple
    outputs: tuple
    binary_outputs: bool


def split_body(body, json_length):
    """(JSON header, binary part) of a v2 body whose JSON is `json_length` bytes long (the HTTP header HEADER)."""
    body = bytes(body)
    try:
        length = int(json_length)
    except ValueError:
        length = -1
    if not 0 <= length <= len(body):
        raise mistake(
            f"the {HEADER} header says {json_length[:20]!r}, but the body is {len(body):,} bytes: it is "
            f"the length of the JSON that starts the body"
        )
    return body[:length], memoryview(body)[length:]


def read_request(request, binary=b""):
    """The Request of a v2 inference request: its parsed JSON, and the binary tensors that followed it."""
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise mistake(f'an inference request is an object with a list of "inputs"; {SHAPE_HINT}')
    inputs, offset = [], 0
    for entry in request["inputs"]:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("name"), str)
            or not isinstance(entry.get("datatype"), str)
        ):
            raise mistake(f'each input is an object with a "name", a "datatype" and a "shape"; {SHAPE_HINT}')
        name, datatype = entry["name"], entry["datatype"]
        check_datatype(name, datatype)
        parameters = entry.get("parameters") if isinstance(entry.get("parameters"), dict) else {}
        size = parameters.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise mistake(
                    f"input {name!r}: binary_data_size {size} is more than the {len(binary) - offset:,} "
                    f"bytes left after the JSON header"
                )
            raw, offset = binary[offset : offset + size], offset + size
            values = bytes_elements(name, raw) if datatype == "BYTES" else np.frombuffer(raw, np.uint8)
        elif "data" in entry:
            values = json_elements(name, datatype, entry["data"])
        else:
            raise mistake(f'input {name!r} has neither "data" nor a binary_data_size parameter')
        inputs.append(tensor(name, datatype, entry.get("shape"), values, parameters))
    if offset != len(binary):
        raise mistake(f"{len(binary) - offset:,} bytes follow the binary tensors that the inputs declare")
    parameters = request.get("parameters") if isinstance(request.get("parameters"), dict) else {}
    outputs = []
    for entry in request.get("outputs") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise mistake('each requested output is an object with a "name": "image" or "pixels"')
        wanted = entry.get("parameters") if isinstance(entry.get("parameters"), dict) else {}
        outputs.append((entry["name"], bool(wanted.get("binary_data", parameters.get("binary_data_output")))))
    inference_id = request.get("id")
    return Request(
        inference_id if isinstance(inference_id, str) else None,
        parameters,
        tuple(inputs),
        tuple(outputs),
        bool(parameters.get("binary_data_output")),
    )


def image_of(inputs):
    """The one input's image: a file's bytes (BYTES) or an (H, W[, C]) uint8 array (UINT8)."""
    if len(inputs) != 1:
        raise mistake(f"the request has {len(inputs)} inputs; {SHAPE_HINT}")
    (sent,) = inputs
    if sent.datatype == "BYTES":
        if sent.values.size != 1:
            raise mistake(
                f"input {sent.name!r} holds {sent.values.size} elements; send one image a request "
                f"(parallel requests spread over the workers)"
            )
        return file_bytes(sent.name, sent.values[0])
    if len(sent.shape) not in (2, 3) or (len(sent.shape) == 3 and sent.shape[2] not in (1, 3, 4)):
        raise mistake(
            f"input {sent.name!r}: pixels have the shape [H, W, 3] (RGB), [H, W, 4] (RGBA) or [H, W] "
            f"(grey), not {list(sent.shape)}"
        )
    return sent.values.reshape(sent.shape)


def file_bytes(name, element):
    """An image file's bytes from a BYTES element: base64 text (str, or bytes that are all base64), else raw."""
    if isinstance(element, bytes) and not BASE64_TEXT.fullmatch(element):
        return element
    return decode_base64(element.decode("ascii") if isinstance(element, bytes) else element, f"input {name!r}")


def wanted_outputs(request_outputs, binary_outputs, sent_pixels):
    """(name, binary) of each output to answer: those asked for (known names only), else the input's kind."""
    for name, _ in request_outputs:
        if name not in (IMAGE, PIXELS):
            raise mistake(
                f"this model's outputs are {IMAGE!r} (the image file) and {PIXELS!r} (its pixels), not {name[:40]!r}"
            )
    return tuple(request_outputs) or ((PIXELS if sent_pixels else IMAGE, binary_outputs),)


def output_values(name, image, encoded):
    """(datatype, shape, values) of an output: the encoded file as one BYTES element, or the image's pixels (8 bits
    a channel, a 16-bit image's rounded)."""
    if name == IMAGE:
        element = np.empty(1, dtype=object)
        element[0] = encoded
        return "BYTES", [1], element
    pixels = np.asarray(eight_bit(image))
    return "UINT8", list(pixels.shape), pixels


def response(model_name, inference_id, outputs, media_type, parameters=None):
    """(body, JSON length or None) of a v2 answer: `outputs` are (name, binary, datatype, shape, values)."""
    described, raw = [], []
    for name, binary, datatype, shape, values in outputs:
        entry = {"name": name, "datatype": datatype, "shape": shape}
        if name == IMAGE:
            entry["parameters"] = {"content_type": media_type}
        if binary:
            data = (
                b"".join(struct.pack("<I", len(item)) + item for item in values)
                if datatype == "BYTES"
                else np.ascontiguousarray(values).tobytes()
            )
            entry.setdefault("parameters", {})["binary_data_size"] = len(data)
            raw.append(data)
        else:
            entry["data"] = (
                [base64.b64encode(item).decode() for item in values]
                if datatype == "BYTES"
                else values.reshape(-1).tolist()
            )
        described.append(entry)
    answer = {"model_name": model_name, "id": inference_id, "outputs": described}
    if parameters:
        answer["parameters"] = parameters
    header = json.dumps(answer).encode()
    return (header + b"".join(raw), len(header)) if raw else (header, None)
