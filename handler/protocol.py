"""The request protocol of the SRCNN service, free of TorchServe: the scale or size and the answer's format,
the handler's settings, the client error every mistake becomes, and what a request reports about itself (response
headers and one log line). Where the image comes from, in each wire format, is handler/wire.py.

It lives apart from srcnn_handler.py because TorchServe wants exactly one class in the handler module.
"""

import base64
import binascii
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from urllib.parse import quote

from srcnn.codec import (
    ENCODE_FORMATS,
    CorruptImage,
    EmptyImage,
    ImageError,
    ImageTooLarge,
    NotAnImage,
    OutputTooLarge,
    ResponseTooLarge,
    UnsupportedFormat,
)
from srcnn.scaling import ScaleError, largest_scale, largest_size, output_size, parse_scale, parse_size

STATUS = {
    EmptyImage: 400,
    CorruptImage: 400,
    NotAnImage: 415,
    UnsupportedFormat: 415,
    ImageTooLarge: 413,
    OutputTooLarge: 413,
    ResponseTooLarge: 413,
}
SEND_HINT = (
    "send the image as the request body (curl -T img.png URL, or --data-binary @img.png with "
    "-H 'Content-Type: image/png'), as one multipart file field (-F data=@img.png), or as JSON "
    '{"image": "<base64>"}'
)
HINTS = {
    "scale": "set it with the X-Scale header, a 'scale' form field or the \"scale\" key of a JSON body",
    "size": "set it with the X-Size header, a 'size' form field or the \"size\" key of a JSON body",
}


class ClientError(Exception):
    """A request refused: a mistake in it, or a server too busy to take it now (503, with a Retry-After in
    `headers`); answered with `status`, the `headers` and a JSON body, never raised past the handler."""

    def __init__(self, status, kind, message):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message
        self.wire = None  # set where the request's wire format is known before the mistake (handler/wire.py)
        self.headers = {}

    @classmethod
    def from_image_error(cls, error):
        message = f"{error}; {SEND_HINT}" if isinstance(error, EmptyImage) else str(error)
        return cls(STATUS.get(type(error), 400), error.kind, message)

    @classmethod
    def answering(cls, error):
        """The ClientError that answers `error` raised while serving one request: itself, an ImageError's, or for
        anything else (a fault, which the caller logs with its traceback) a 500."""
        if isinstance(error, ClientError):
            return error
        if isinstance(error, ImageError):
            return cls.from_image_error(error)
        return cls(500, "internal_error", "the server failed on this image; the log has the details")

    def body(self):
        """{"code", "type", "message"}, and the message again as "error": what a KServe client reads (the
        handler cannot tell a body that is not JSON sent to the v2 route from one sent elsewhere)."""
        return json.dumps(
            {"code": self.status, "type": self.kind, "message": self.message, "error": self.message}, ensure_ascii=False
        ).encode()


def decode_base64(text, where):
    """The bytes base64 `text` holds (a data: URL's prefix dropped), else a 400 naming `where` it came from."""
    encoded = text.split(",", 1)[1] if text.startswith("data:") else text
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ClientError(400, "invalid_base64", f"{where} is not valid base64") from None


@dataclass(frozen=True)
class Settings:
    """The `handler:` section of model-config.yaml."""

    default_scale: int | float = 2
    max_input_pixels: int = 50_331_648
    max_output_pixels: int = 150_994_944
    max_response_bytes: int = 134_217_728  # keep at or below config.properties' max_response_size
    threads: int = 0  # the lanes one request computes on; 0: one a core (srcnn.cores)
    # A request is large when its answer has more pixels than this; large requests are admitted one worker fewer
    # than the server has, and compute `large_computing` at a time (handler/admission.py).
    large_output_pixels: int = 16_777_216
    large_computing: int = 1
    precision: str = "auto"  # the network's engine: "auto", an arithmetic or an engine (srcnn.choice.settings)

    @classmethod
    def from_yaml(cls, section):
        known = {field.name for field in fields(cls)}
        unknown = set(section or {}) - known
        if unknown:
            raise ValueError(f"unknown handler settings in model-config.yaml: {sorted(unknown)}")
        return cls(**(section or {}))


@dataclass(frozen=True)
class Job:
    """One parsed request: the decoded image (a PIL image in one of srcnn.bands.SUPPORTED_MODES), the size of
    the answer as (width, height), its media type, and the handler.wire.Upload it came in (its wire format
    shapes the answer)."""

    image: object
    size: tuple
    media_type: str
    upload: object


def header(headers, name):
    """Case-insensitive look-up of a request header; None when absent."""
    for key, value in headers.items():
        if key.lower() == name.lower() and isinstance(value, str):
            return value
    return None


def requested_sizing(headers, upload, default_scale):
    """(scale, size) a request asks for, one of them None (see srcnn.scaling): from the X-Scale or X-Size header
    or the upload's "scale" or "size" (a header and a field that both give one must agree), else
    `default_scale`. A malformed value, or both a scale and a size, is a 422 ClientError."""
    chosen = {}
    for key, name, parse in (("scale", "X-Scale", parse_scale), ("size", "X-Size", parse_size)):
        sent = [value for value in (header(headers, name), getattr(upload, key)) if value is not None]
        try:
            values = {parse(value) for value in sent}
        except ScaleError as error:
            raise ClientError(422, f"invalid_{key}", f"{error}; {HINTS[key]}") from None
        if len(values) > 1:
            raise ClientError(422, f"invalid_{key}", f"the {name} header and the '{key}' field disagree; send one")
        if values:
            chosen[key] = values.pop()
    if len(chosen) == 2:
        raise ClientError(422, "invalid_size", "the request gives both a scale and a size; send one of them")
    if not chosen:
        return default_scale, None
    return chosen.get("scale"), chosen.get("size")


def factor_label(scale, input_size, output_size):
    """The factor an answer was made at, as text: the scale asked for ("2", "2.5"), else, for a size, each
    side's factor ("1.6", or "1.6x1.5" where the aspect ratio changed)."""
    if scale is not None:
        return f"{scale:g}"
    factors = [f"{output / given:.4g}" for given, output in zip(input_size, output_size)]
    return factors[0] if factors[0] == factors[1] else "x".join(factors)


def what_fits(input_size, scale, output, limits):
    """What a user can send instead of a request whose answer is over max_output_pixels: at its scale, the
    largest input of its shape, and the largest scale for this image; for a size, the largest of its shape."""
    if scale is None:
        return "ask for at most {}×{} (the same shape)".format(*largest_size(output, limits.max_output_pixels))
    fitting = largest_size(input_size, limits.max_output_pixels / parse_scale(scale) ** 2)
    while output_size(fitting, scale)[0] * output_size(fitting, scale)[1] > limits.max_output_pixels:
        fitting = largest_size(fitting, fitting[0] * fitting[1] - 1)  # rounding up of the sides at this scale
    largest = largest_scale(input_size, limits.max_output_pixels)
    return f"at ×{scale} send at most {fitting[0]}×{fitting[1]} (this image's shape)" + (
        f", or ask this image for at most ×{largest}" if largest else ""
    )


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
    raise ClientError(
        406,
        "not_acceptable",
        f"answers can be {', '.join(ENCODE_FORMATS)}; the request's Accept header {accept[:80]!r} allows none of them",
    )


@dataclass
class Trace:
    """What one request did, for its response headers and its log line: sizes as (width, height), stage
    durations in milliseconds, and the outcome (an HTTP status and, for errors, the error type)."""

    request_id: str = ""
    wire: str = "rest"
    scale: str | None = None  # the factor done, "2.5", or "1.6x1.5" where a size changes the aspect ratio
    input_size: tuple | None = None
    output_size: tuple | None = None
    media_type: str | None = None
    weights: str | None = None
    stages: dict = field(default_factory=dict)
    status: int = 200
    error: str | None = None
    warnings: list = field(default_factory=list)  # what the decoder warned of (srcnn.codec.decode_image)

    @contextmanager
    def timed(self, stage):
        """Time the block as `stage` (milliseconds in `stages`), whether it ends or raises."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.stages[stage] = (time.perf_counter() - started) * 1000

    def done(self):
        """What a 200 did, by which weights: {"scale", "output_size", "weights"} (a v2 answer's parameters)."""
        return {"scale": self.scale, "output_size": "{}x{}".format(*self.output_size), "weights": self.weights}

    def headers(self):
        """Response headers of a 200: what was done, by which weights, and how long each stage took."""
        done = self.done()
        return {
            "X-Scale": done["scale"],
            "X-Output-Size": done["output_size"],
            "X-Weights": done["weights"],
            "Server-Timing": ", ".join(f"{stage};dur={ms:.1f}" for stage, ms in self.stages.items()),
        }

    def labels(self, trained_scales):
        """(scale, outcome) as the service's metrics count a request: the scale when it is one of
        `trained_scales`, "other" for any other factor or size, "-" when none was read; "2xx", "5xx" or the error
        type (a load refusal, server_busy, included)."""
        scale = self.scale if self.scale in {str(scale) for scale in trained_scales} else "other" if self.scale else "-"
        outcome = "2xx" if self.status < 300 else "5xx" if self.error in (None, "internal_error") else self.error
        return scale, outcome

    def log_line(self):
        """One line of key=value pairs (values without spaces), for grep and log shippers alike; where the decoder
        warned, how many times and the first warning (URL-quoted)."""

        def size(pair):
            return f"{pair[0]}x{pair[1]}" if pair else "-"

        values = {
            "id": self.request_id or "-",
            "wire": self.wire,
            "status": self.status,
            "error": self.error or "-",
            "scale": self.scale or "-",
            "input": size(self.input_size),
            "output": size(self.output_size),
            "format": self.media_type or "-",
            "weights": self.weights or "-",
            **{f"{stage}_ms": f"{ms:.1f}" for stage, ms in self.stages.items()},
        }
        if self.warnings:
            values.update(warnings=len(self.warnings), warning=quote(self.warnings[0][:100]))
        return "srcnn " + " ".join(f"{key}={value}" for key, value in values.items())
