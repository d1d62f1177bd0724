"""The request protocol of the SRCNN service, free of TorchServe: where the image, the scale and the answer's
format come from, the handler's settings, the client error every mistake becomes, and what a request reports
about itself (response headers and one log line).

Bodies arrive as the bytes the client sent (the handler turns TorchServe's own JSON and text decoding off), so a
JSON body is parsed here, where a parse error can become a 400 that gives its position.

It lives apart from srcnn_handler.py because TorchServe wants exactly one class in the handler module.
"""

import base64
import binascii
import json
import re
from dataclasses import dataclass, field, fields

from srcnn.codec import ENCODE_FORMATS, CorruptImage, EmptyImage, ImageTooLarge, NotAnImage, UnsupportedFormat

SCALES = (2, 3, 4)
STATUS = {EmptyImage: 400, CorruptImage: 400, NotAnImage: 415, UnsupportedFormat: 415, ImageTooLarge: 413}
SEND_HINT = ("send the image as the request body (curl -T img.png URL, or --data-binary @img.png with "
             "-H 'Content-Type: image/png'), as one multipart file field (-F data=@img.png), or as JSON "
             '{"image": "<base64>"}')
JSON_SHAPE = 'JSON bodies must look like {"image": "<base64 of the image file>", "scale": 2}'
SCALE_HINT = "set it with the X-Scale header, a 'scale' form field or the \"scale\" key of a JSON body"


class ClientError(Exception):
    """A mistake in one request: answered with `status` and a JSON body, never raised past the handler."""

    def __init__(self, status, kind, message):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message

    @classmethod
    def from_image_error(cls, error):
        message = f"{error}; {SEND_HINT}" if isinstance(error, EmptyImage) else str(error)
        return cls(STATUS.get(type(error), 400), error.kind, message)

    def body(self):
        return json.dumps({"code": self.status, "type": self.kind, "message": self.message},
                          ensure_ascii=False).encode()


@dataclass(frozen=True)
class Settings:
    """The `handler:` section of model-config.yaml."""

    default_scale: int = 2
    max_input_pixels: int = 4_194_304
    max_output_pixels: int = 16_777_216
    max_response_bytes: int = 75_497_472  # keep at or below config.properties' max_response_size
    threads: int = 0  # the engine's intra-op threads per worker; 0 keeps its default (one per core)

    @classmethod
    def from_yaml(cls, section):
        known = {field.name for field in fields(cls)}
        unknown = set(section or {}) - known
        if unknown:
            raise ValueError(f"unknown handler settings in model-config.yaml: {sorted(unknown)}")
        return cls(**(section or {}))


@dataclass(frozen=True)
class Job:
    """One parsed request: the decoded image (a PIL image in one of srcnn.upscale.SUPPORTED_MODES), the scale
    and the media type of the answer."""

    image: object
    scale: int
    media_type: str


def header(headers, name):
    """Case-insensitive look-up of a request header; None when absent."""
    for key, value in headers.items():
        if key.lower() == name.lower() and isinstance(value, str):
            return value
    return None


def parse_scale(value, allowed):
    """A scale given as text, bytes or a JSON number -> int in `allowed`, else a 422 ClientError."""
    text = value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else value
    if isinstance(text, int) and not isinstance(text, bool):
        scale = text
    elif isinstance(text, str) and re.fullmatch(r"\s*[0-9]{1,4}\s*", text):
        scale = int(text)
    else:
        scale = None
    if scale not in allowed:
        choices = ", ".join(map(str, allowed))
        shown = text if isinstance(text, str) else value
        raise ClientError(422, "invalid_scale", f"scale must be one of {choices}, not {str(shown)[:40]!r}; "
                                                f"{SCALE_HINT}")
    return scale


def choose_media_type(accept):
    """The answer's media type from an Accept header: the first acceptable of PNG, JPEG, WebP; PNG by default."""
    if not accept:
        return "image/png"
    offers = []
    for position, part in enumerate(accept.split(",")):
        media, *parameters = [piece.strip().lower() for piece in part.split(";")]
        quality = 1.0
        for parameter in parameters:
            if parameter.startswith("q="):
                try:
                    quality = float(parameter[2:])
                except ValueError:
                    quality = 0.0
        if quality > 0:
            offers.append((-quality, position, media))
    for _, _, media in sorted(offers):
        if media in ENCODE_FORMATS:
            return media
        if media in ("*/*", "image/*"):
            return "image/png"
    raise ClientError(406, "not_acceptable", f"answers can be {', '.join(ENCODE_FORMATS)}; the request's Accept "
                                             f"header {accept[:80]!r} allows none of them")


def json_image_and_scale(raw):
    """The image bytes and the scale (or None) of a JSON body given as the bytes sent."""
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
    if "image" not in body:
        keys = ", ".join(repr(key[:20]) for key in list(body)[:5]) or "no keys"
        raise ClientError(400, "invalid_json", f'the JSON object has no "image" key (it has {keys}); {JSON_SHAPE}')
    if not isinstance(body["image"], str):
        raise ClientError(400, "invalid_json", f'the "image" key holds {type(body["image"]).__name__}, not base64 '
                                               f"text; {JSON_SHAPE}")
    encoded = body["image"].split(",", 1)[1] if body["image"].startswith("data:") else body["image"]
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ClientError(400, "invalid_base64", 'the "image" key of the JSON body is not valid base64') from None
    return data, body.get("scale")


def image_and_scale_fields(row, content_type=""):
    """The image bytes and the scale field (or None) of one request's data dict; `content_type` is the request's
    Content-Type header (a body labelled application/json is parsed as JSON)."""
    parts = {name: value for name, value in row.items() if value not in (None, "", b"", bytearray())}
    scale = parts.pop("scale", None)
    if content_type.split(";")[0].strip().lower() == "application/json" and "body" in parts:
        data, json_scale = json_image_and_scale(parts["body"])
        return data, json_scale if json_scale is not None else scale
    if len(parts) > 1:
        raise ClientError(400, "several_images", f"the request has {len(parts)} parts ({', '.join(sorted(parts))})"
                                                 "; send exactly one image, and the scale as a 'scale' field")
    if not parts:
        return b"", scale
    (name, value), = parts.items()
    if isinstance(value, str):  # text, had TorchServe decoded it
        return value.encode("utf-8", "surrogateescape"), scale
    if not isinstance(value, (bytes, bytearray)):  # JSON, had TorchServe parsed it
        raise ClientError(400, "invalid_field", f"the field {name!r} holds JSON, not an image file")
    return bytes(value), scale


@dataclass
class Trace:
    """What one request did, for its response headers and its log line: sizes as (width, height), stage
    durations in milliseconds, and the outcome (an HTTP status and, for errors, the error type)."""

    request_id: str = ""
    scale: int | None = None
    input_size: tuple | None = None
    output_size: tuple | None = None
    media_type: str | None = None
    weights: str | None = None
    stages: dict = field(default_factory=dict)
    status: int = 200
    error: str | None = None

    def headers(self):
        """Response headers of a 200: what was done, by which weights, and how long each stage took."""
        width, height = self.output_size
        return {
            "X-Scale": str(self.scale),
            "X-Output-Size": f"{width}x{height}",
            "X-Weights": self.weights,
            "Server-Timing": ", ".join(f"{stage};dur={ms:.1f}" for stage, ms in self.stages.items()),
        }

    def log_line(self):
        """One line of key=value pairs (values without spaces), for grep and log shippers alike."""
        def size(pair):
            return f"{pair[0]}x{pair[1]}" if pair else "-"

        values = {"id": self.request_id or "-", "status": self.status, "error": self.error or "-",
                   "scale": self.scale or "-", "input": size(self.input_size), "output": size(self.output_size),
                   "format": self.media_type or "-", "weights": self.weights or "-",
                   **{f"{stage}_ms": f"{ms:.1f}" for stage, ms in self.stages.items()}}
        return "srcnn " + " ".join(f"{key}={value}" for key, value in values.items())
