"""The wire formats a request arrives in and its answer leaves in, free of TorchServe:

- `rest`: the image as the raw body, one multipart file field, or JSON {"image": "<base64>", "scale": 2.5};
  the answer is the image itself (`/predictions/srcnn`).
- `kserve-v1`: {"instances": [{"data": "<base64>", "scale": 3}]} -> {"predictions": ["<base64>"]}
  (`POST /v1/models/srcnn:predict`).
- `kserve-v2`, the Open Inference Protocol: {"id": …, "inputs": [{"name": …, "shape": [-1], "datatype": "BYTES",
  "data": ["<base64>"]}], "parameters": {"scale": 3}} -> {"model_name", "id", "outputs": [{"name", "shape",
  "datatype": "BYTES", "parameters": {"content_type"}, "data": ["<base64>"]}]}, errors as {"error": "<message>"}
  (`POST /v2/models/srcnn/infer`).
- `grpc`: TorchServe's `InferenceAPIsService/Predictions`, input map {"data": <image>, "scale": b"3"}; the answer
  is the image. TorchServe's gRPC frontend passes no HTTP headers (the worker lists only each input's content
  type, as a dict under its name), which is how such a request is told apart (`is_grpc`).

- `kserve-v1-envelope`, `kserve-v2-envelope`: the same KServe requests when TorchServe runs with a service
  envelope (TS_SERVICE_ENVELOPE=kserve or kservev2, as KServe's TorchServe runtime sets from an InferenceService's
  `serviceEnvelope` label): the envelope parses the JSON and hands over each instance (v1) or input with its
  `data` reduced to the first element (v2), and wraps what the handler returns, so the answer is the image as
  base64 text and an error its JSON as text.

Wherever a request can carry a "scale", it can carry a "size" ("1920x1080", "1920x" or "x1080") instead.

Bodies arrive as the bytes sent (the handler turns TorchServe's own decoding off), so JSON is parsed here, where a
parse error becomes a 400 that gives its position. Only an envelope hands over parsed JSON: text values (str) in a
request's data are what tell it apart. KServe clients send one image a request: parallel requests
spread over the workers, where several images in one request would run one after another.
"""

import base64
import binascii
import json
from dataclasses import dataclass, replace

from handler.protocol import SEND_HINT, ClientError

REST, KSERVE_V1, KSERVE_V2, GRPC = "rest", "kserve-v1", "kserve-v2", "grpc"
V1_ENVELOPE, V2_ENVELOPE = "kserve-v1-envelope", "kserve-v2-envelope"
JSON_SHAPE = ('JSON bodies must look like {"image": "<base64 of the image file>", "scale": 2}, or KServe\'s '
              '{"instances": [{"data": "<base64>"}]} (v1) or {"inputs": [{"name": "image", "shape": [-1], '
              '"datatype": "BYTES", "data": ["<base64>"]}]} (v2)')


SIZING = ("scale", "size")  # the keys and form fields that say how large the answer is


@dataclass(frozen=True)
class Upload:
    """What one request carries before decoding: the image file's bytes, the wire format of the answer, the
    scale and size as sent (None where the body names none), and for KServe v2 the output's name and the
    inference id."""

    data: bytes
    wire: str = REST
    scale: object = None
    size: object = None
    output_name: str = "output-0"
    inference_id: str | None = None


def sizing(fields):
    """The scale and size of a JSON object or form, as Upload's keywords (None where absent)."""
    return {key: fields.get(key) for key in SIZING} if isinstance(fields, dict) else {}


def is_grpc(headers):
    """Whether a request's headers (TorchServe's dict) hold no HTTP header, as a gRPC request's do."""
    return not any(isinstance(value, str) for value in headers.values())


def read_upload(row, headers):
    """The Upload of one request's data (a dict, or what an envelope made of it) and headers."""
    if isinstance(row, str) or (isinstance(row, dict) and isinstance(row.get("data", row.get("b64")), str)):
        return envelope_upload(row)
    content_type = next((value for key, value in headers.items() if key.lower() == "content-type"), "") or ""
    media_type = content_type.split(";")[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        raise ClientError(415, "form_body", "the body was sent as an HTML form (curl --data-binary without a "
                                            f"Content-Type); {SEND_HINT}")
    parts = {name: value for name, value in row.items() if value not in (None, "", b"", bytearray())}
    fields = {key: parts.pop(key, None) for key in SIZING}
    if media_type == "application/json" and "body" in parts:
        upload = json_upload(parts["body"])  # a scale or size in the JSON wins over the form fields
        return upload if upload.scale is not None or upload.size is not None else replace(upload, **fields)
    wire = GRPC if is_grpc(headers) else REST
    if len(parts) > 1:
        raise ClientError(400, "several_images", f"the request has {len(parts)} parts ({', '.join(sorted(parts))})"
                                                 "; send exactly one image, and the scale as a 'scale' field")
    if not parts:
        return Upload(b"", wire, **fields)
    (name, value), = parts.items()
    if isinstance(value, str):  # text, had TorchServe decoded it
        return Upload(value.encode("utf-8", "surrogateescape"), wire, **fields)
    if not isinstance(value, (bytes, bytearray)):  # JSON, had TorchServe parsed it
        raise ClientError(400, "invalid_field", f"the field {name!r} holds JSON, not an image file")
    return Upload(bytes(value), wire, **fields)


def json_upload(raw):
    """The Upload of a JSON body given as the bytes sent: ours, KServe v1 or KServe v2, told apart by their keys."""
    try:
        body = json.loads(bytes(raw))
    except json.JSONDecodeError as error:
        raise ClientError(400, "invalid_json", f"the body is labelled application/json but is not JSON: "
                                               f"{error.msg} at line {error.lineno}, column {error.colno} (byte "
                                               f"{error.pos}); {JSON_SHAPE}") from None
    except ValueError as error:  # not UTF-8/16/32, or an integer of more than 4,300 digits
        raise ClientError(400, "invalid_json", f"the body is labelled application/json but is not JSON: "
                                               f"{str(error)[:80]}; {JSON_SHAPE}") from None
    if not isinstance(body, dict):
        raise ClientError(400, "invalid_json", f"the JSON body is {type(body).__name__ if body is not None else 'null'}"
                                               f", not an object; {JSON_SHAPE}")
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
        raise ClientError(400, "invalid_kserve", f'a KServe v1 instance is an object with the base64 image under '
                                                 f'"data" (or "b64"), as in {shape}')
    key = "data" if "data" in instance else "b64"
    return Upload(base64_image(instance[key], f'the instance\'s "{key}"'), KSERVE_V1, **sizing(instance))


def kserve_v2_upload(body):
    shape = '{"inputs": [{"name": "image", "shape": [-1], "datatype": "BYTES", "data": ["<base64>"]}]}'
    tensor = one_item(body["inputs"], "input", shape)
    if not isinstance(tensor, dict) or tensor.get("datatype") != "BYTES" or "data" not in tensor:
        raise ClientError(400, "invalid_kserve", f'a KServe v2 input holds the image as BYTES, as in {shape}')
    data = tensor["data"]
    encoded = data if isinstance(data, str) else one_item(data, "image in the input's data", shape)
    parameters = {}
    for source in (body.get("parameters"), tensor.get("parameters")):  # the input's own win
        if isinstance(source, dict):
            parameters.update(source)
    name, inference_id = tensor.get("name"), body.get("id")
    return Upload(base64_image(encoded, "the input's data"), KSERVE_V2, **sizing(parameters),
                  output_name=name if isinstance(name, str) and name else "output-0",
                  inference_id=inference_id if isinstance(inference_id, str) else None)


def envelope_upload(row):
    """The Upload of one instance (v1) or input (v2) as a KServe service envelope hands it over, parsed."""
    if isinstance(row, str):
        return Upload(base64_image(row, "the instance"), V1_ENVELOPE)
    if "datatype" not in row:
        key = "data" if "data" in row else "b64"
        return Upload(base64_image(row[key], f'the instance\'s "{key}"'), V1_ENVELOPE, **sizing(row))
    if row["datatype"] != "BYTES":
        error = ClientError(400, "invalid_kserve", "a KServe v2 input holds the image as BYTES: "
                                                   '{"name": "image", "shape": [-1], "datatype": "BYTES", "data": '
                                                   '["<base64>"]}')
        error.wire = V2_ENVELOPE
        raise error
    parameters = row.get("parameters") if isinstance(row.get("parameters"), dict) else {}
    return Upload(base64_image(row["data"], "the input's data"), V2_ENVELOPE, **sizing(parameters),
                  output_name=str(row.get("name") or "output-0"))


def base64_image(text, where):
    """Bytes of a base64 text (a data: URL's prefix dropped), else a 400 naming `where` it came from."""
    if not isinstance(text, str):
        raise ClientError(400, "invalid_json", f"{where} holds {type(text).__name__}, not base64 text; {JSON_SHAPE}")
    encoded = text.split(",", 1)[1] if text.startswith("data:") else text
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ClientError(400, "invalid_base64", f"{where} is not valid base64") from None


def answer(image_bytes, media_type, upload, model_name, request_id):
    """(body, content type) of a successful answer in the upload's wire format."""
    if upload.wire in (V1_ENVELOPE, V2_ENVELOPE):  # the envelope puts it into its own JSON
        return base64.b64encode(image_bytes).decode(), "application/json"
    if upload.wire == KSERVE_V1:
        return json.dumps({"predictions": [base64.b64encode(image_bytes).decode()]}).encode(), "application/json"
    if upload.wire == KSERVE_V2:
        output = {"name": upload.output_name, "shape": [1], "datatype": "BYTES",
                  "parameters": {"content_type": media_type}, "data": [base64.b64encode(image_bytes).decode()]}
        body = {"model_name": model_name, "id": upload.inference_id or request_id, "outputs": [output]}
        return json.dumps(body).encode(), "application/json"
    return image_bytes, media_type


def error_body(error, wire):
    """The JSON body of a ClientError in a wire format: the Open Inference Protocol's {"error"} for KServe v2,
    {"code", "type", "message"} otherwise; as text for an envelope to wrap."""
    if wire in (KSERVE_V2, V2_ENVELOPE):
        body = json.dumps({"error": error.message}, ensure_ascii=False).encode()
    else:
        body = error.body()
    return body.decode() if wire in (V1_ENVELOPE, V2_ENVELOPE) else body
