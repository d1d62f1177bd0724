"""The wire formats a request arrives in and its answer leaves in, free of TorchServe:

- `rest`: the image as the raw body, one multipart file field, or JSON {"image": "<base64>", "scale": 2.5};
  the answer is the image itself (`/predictions/srcnn`).
- `kserve-v1`: {"instances": [{"data": "<base64>", "scale": 3}]} -> {"predictions": ["<base64>"]}
  (`POST /v1/models/srcnn:predict`).
- `kserve-v2`, the Open Inference Protocol (`POST /v2/models/srcnn/infer`), JSON or with the binary tensor
  extension, whatever the Content-Type (handler/oip.py has its tensors) -> {"model_name", "id", "outputs"}, errors
  as {"error": "<message>"}.
- `grpc`: TorchServe's `InferenceAPIsService/Predictions`, input map {"data": <image>, "scale": b"3"}; the answer
  is the image. TorchServe's gRPC frontend passes no HTTP headers (the worker lists only each input's content
  type, as a dict under its name), which is how such a request is told apart (`is_grpc`).

A body that starts with `{` is read as JSON whatever its Content-Type (no image format starts so), as is one whose
request carries the Inference-Header-Content-Length header: tritonclient sends no Content-Type at all, and the
kserve SDK labels binary tensors application/octet-stream.

Wherever a request can carry a "scale", it can carry a "size" ("1920x1080", "1920x" or "x1080") instead.

Bodies arrive as the bytes sent (the handler turns TorchServe's own decoding off), so JSON is parsed here, where a
parse error becomes a 400 that gives its position. KServe clients send one image a request: parallel requests
spread over the workers, where several images in one request would run one after another.
"""

import base64
import json
from dataclasses import dataclass, replace

from handler import oip
from handler.protocol import SEND_HINT, ClientError, decode_base64, header

REST, KSERVE_V1, KSERVE_V2, GRPC = "rest", "kserve-v1", "kserve-v2", "grpc"
JSON_SHAPE = (
    'JSON bodies must look like {"image": "<base64 of the image file>", "scale": 2}, or KServe\'s '
    '{"instances": [{"data": "<base64>"}]} (v1) or {"inputs": [{"name": "image", "shape": [-1], '
    '"datatype": "BYTES", "data": ["<base64>"]}]} (v2)'
)


SIZING = ("scale", "size")  # the keys and form fields that say how large the answer is


@dataclass(frozen=True)
class Upload:
    """What one request carries before decoding: the image file's bytes (or, from a v2 UINT8 input, its decoded
    pixels as an (H, W[, C]) uint8 array), the wire format of the answer, the scale and size as sent (None where
    the body names none), and for KServe v2 the inference id and the outputs to answer as (name, binary) pairs."""

    data: object
    wire: str = REST
    scale: object = None
    size: object = None
    inference_id: str | None = None
    outputs: tuple = ()


def sizing(fields):
    """The scale and size of a JSON object or form, as Upload's keywords (None where absent)."""
    return {key: fields.get(key) for key in SIZING} if isinstance(fields, dict) else {}


def is_grpc(headers):
    """Whether a request's headers (TorchServe's dict) hold no HTTP header, as a gRPC request's do."""
    return not any(isinstance(value, str) for value in headers.values())


def read_upload(row, headers):
    """The Upload of one request's data (TorchServe's dict of its body or form fields) and headers."""
    json_length = header(headers, oip.HEADER)
    if json_length is not None:
        try:
            head, binary = oip.split_body(row.get("body") or b"", json_length)
            return kserve_v2_upload(parse_json(head), binary)
        except ClientError as error:
            error.wire = KSERVE_V2
            raise
    media_type = (header(headers, "Content-Type") or "").split(";")[0].strip().lower()
    if (
        media_type != "application/json"
        and isinstance(row.get("body"), (bytes, bytearray))
        and bytes(row["body"][:64]).lstrip().startswith(b"{")
    ):
        media_type = "application/json"
    if media_type == "application/x-www-form-urlencoded":
        raise ClientError(
            415,
            "form_body",
            f"the body was sent as an HTML form (curl --data-binary without a Content-Type); {SEND_HINT}",
        )
    parts = {name: value for name, value in row.items() if value not in (None, "", b"", bytearray())}
    fields = {key: parts.pop(key, None) for key in SIZING}
    if media_type == "application/json" and "body" in parts:
        upload = json_upload(parts["body"])  # a scale or size in the JSON wins over the form fields
        return upload if upload.scale is not None or upload.size is not None else replace(upload, **fields)
    wire = GRPC if is_grpc(headers) else REST
    if len(parts) > 1:
        raise ClientError(
            400,
            "several_images",
            f"the request has {len(parts)} parts ({', '.join(sorted(parts))})"
            "; send exactly one image, and the scale as a 'scale' field",
        )
    if not parts:
        return Upload(b"", wire, **fields)
    ((name, value),) = parts.items()
    if isinstance(value, str):  # text, had TorchServe decoded it
        return Upload(value.encode("utf-8", "surrogateescape"), wire, **fields)
    if not isinstance(value, (bytes, bytearray)):  # JSON, had TorchServe parsed it
        raise ClientError(400, "invalid_field", f"the field {name!r} holds JSON, not an image file")
    return Upload(bytes(value), wire, **fields)


def parse_json(raw):
    """The object a JSON body holds, else a 400 that says where it stopped being JSON."""
    not_json = "the body is read as JSON (labelled so, or starting with {) but is not JSON"
    try:
        body = json.loads(bytes(raw))
    except json.JSONDecodeError as error:
        raise ClientError(
            400,
            "invalid_json",
            f"{not_json}: {error.msg} at line {error.lineno}, column {error.colno} (byte {error.pos}); {JSON_SHAPE}",
        ) from None
    except ValueError as error:  # not UTF-8/16/32, or an integer of more than 4,300 digits
        raise ClientError(400, "invalid_json", f"{not_json}: {str(error)[:80]}; {JSON_SHAPE}") from None
    if not isinstance(body, dict):
        raise ClientError(
            400,
            "invalid_json",
            f"the JSON body is {type(body).__name__ if body is not None else 'null'}, not an object; {JSON_SHAPE}",
        )
    return body


def json_upload(raw):
    """The Upload of a JSON body given as the bytes sent: ours, KServe v1 or KServe v2, told apart by their keys."""
    body = parse_json(raw)
    for key, wire, read in (("instances", KSERVE_V1, kserve_v1_upload), ("inputs", KSERVE_V2, kserve_v2_upload)):
        if key in body:
            try:
                return read(body)
            except ClientError as error:
                error.wire = wire  # answered in the protocol's own error format
                raise
    if "image" not in body:
        keys = ", ".join(repr(key[:20]) for key in list(body)[:5]) or "no keys"
        raise ClientError(400, "invalid_json", f'the JSON object has no "image" key (it has {keys}); {JSON_SHAPE}')
    return Upload(base64_image(body["image"], 'the "image" key'), **sizing(body))


def one_item(items, what, shape):
    """The single element of a KServe list, else a 400 that says what to send."""
    if not isinstance(items, list) or len(items) != 1:
        count = f"{len(items)} of them" if isinstance(items, list) else f"a {type(items).__name__}"
        raise ClientError(400, "invalid_kserve", f"send exactly one {what} a request, as in {shape}, not {count}")
    return items[0]


def kserve_v1_upload(body):
    shape = '{"instances": [{"data": "<base64>", "scale": 3}]}'
    instance = one_item(body["instances"], "instance", shape)
    if isinstance(instance, str):
        return Upload(base64_image(instance, "the instance"), KSERVE_V1)
    if not isinstance(instance, dict) or not ({"data", "b64"} & set(instance)):
        raise ClientError(
            400,
            "invalid_kserve",
            f'a KServe v1 instance is an object with the base64 image under "data" (or "b64"), as in {shape}',
        )
    key = "data" if "data" in instance else "b64"
    return Upload(base64_image(instance[key], f'the instance\'s "{key}"'), KSERVE_V1, **sizing(instance))


def kserve_v2_upload(body, binary=b""):
    """The Upload of a v2 inference request: its parsed JSON and the binary tensors after it."""
    return request_upload(oip.read_request(body, binary))


def request_upload(request):
    """The Upload of an oip.Request: the image of its one input, the scale or size from its parameters (the
    input's own win over the request's), the outputs it wants."""
    image = oip.image_of(request.inputs)
    parameters = {**request.parameters, **request.inputs[0].parameters}
    outputs = oip.wanted_outputs(request.outputs, request.binary_outputs, not isinstance(image, bytes))
    return Upload(image, KSERVE_V2, **sizing(parameters), inference_id=request.id, outputs=outputs)


def base64_image(text, where):
    """Bytes of a base64 text (a data: URL's prefix dropped), else a 400 naming `where` it came from."""
    if not isinstance(text, str):
        raise ClientError(400, "invalid_json", f"{where} holds {type(text).__name__}, not base64 text; {JSON_SHAPE}")
    return decode_base64(text, where)


def answer(image, encode, media_type, upload, model_name, request_id, done=None):
    """(body, content type, extra headers) of a successful answer in the upload's wire format; `encode()` gives
    the image's file (called only where the answer holds it); `done` (handler.protocol.Trace.done) goes into a v2
    answer's parameters."""
    if upload.wire == KSERVE_V2:
        outputs = [
            (name, binary, *oip.output_values(name, image, encode() if name == oip.IMAGE else None))
            for name, binary in upload.outputs
        ]
        body, json_length = oip.response(model_name, upload.inference_id or request_id, outputs, media_type, done)
        if json_length is None:
            return body, "application/json", {}
        return body, "application/octet-stream", {oip.HEADER: str(json_length)}
    if upload.wire == KSERVE_V1:
        body = json.dumps({"predictions": [base64.b64encode(encode()).decode()]}).encode()
        return body, "application/json", {}
    return encode(), media_type, {}


def error_body(error, wire):
    """The JSON body of a ClientError in a wire format: the Open Inference Protocol's {"error"} for KServe v2,
    {"code", "type", "message", "error"} otherwise."""
    if wire == KSERVE_V2:
        return json.dumps({"error": error.message}, ensure_ascii=False).encode()
    return error.body()
