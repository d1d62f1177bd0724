"""A corpus of hostile and odd requests, generated (never downloaded), each with the answer it must get.

Used by the real-server tests and by the soak run. `limits` are the handler's settings (model-config.yaml) and
the server's `max_request_size`.
"""

import base64
import io
import json
import struct
import zlib
from dataclasses import dataclass, field

import imagecodecs
import numpy as np
import pillow_heif
from PIL import Image

pillow_heif.register_heif_opener()  # Pillow writes HEIC here too


@dataclass(frozen=True)
class Case:
    """One request to `route` and what it must get: a status in `statuses`; for errors from the handler a JSON
    body whose type is in `kinds` (no `kinds`: an error TorchServe itself answers); for images an answer of `size`;
    for a 200 in JSON an object with the keys `answer_keys`."""

    name: str
    data: bytes | None = None
    headers: dict = field(default_factory=dict)
    files: dict | None = None
    form: dict | None = None
    json: object = None
    statuses: tuple = (200,)
    kinds: tuple = ()
    size: tuple | None = None
    heavy: bool = False  # seconds of work or megabytes of traffic: left out of the soak mix
    route: str = "/predictions/srcnn"
    answer_keys: tuple = ()
    mode: str | None = None  # the answer's Pillow mode, where it matters (transparency kept)

    def send(self, session, base_url, timeout=300):
        return session.post(
            base_url + self.route,
            data=self.form if self.files else self.data,
            headers=self.headers,
            files=self.files,
            json=self.json,
            timeout=timeout,
        )

    def problem(self, response):
        """None if `response` is the answer this case must get, else what is wrong with it."""
        if response.status_code not in self.statuses:
            return f"{self.name}: status {response.status_code} not in {self.statuses}: {response.text[:200]}"
        if response.status_code == 200:
            if self.answer_keys:
                answer = response.json()
                missing = set(self.answer_keys) - set(answer if isinstance(answer, dict) else ())
                return f"{self.name}: the answer {response.text[:100]} lacks {sorted(missing)}" if missing else None
            if self.size is not None:
                with Image.open(io.BytesIO(response.content)) as answer:
                    if answer.size != self.size:
                        return f"{self.name}: answer is {answer.size}, not {self.size}"
                    if self.mode and answer.mode != self.mode:
                        return f"{self.name}: answer is {answer.mode}, not {self.mode}"
            return None
        if not self.kinds:  # answered by TorchServe's frontend before the handler (its 413 has no body)
            return None
        try:
            body = response.json()
        except ValueError:
            return f"{self.name}: {response.status_code} without a JSON body: {response.text[:200]}"
        if body.get("type") not in self.kinds or body.get("code") != response.status_code:
            return f"{self.name}: error body {body} not of types {self.kinds}"
        if len(body.get("message", "")) < 20:
            return f"{self.name}: message too short to help: {body}"
        return None


def encode(image, format="PNG", **options):
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def sample_image(width, height, mode="RGB"):
    """A small deterministic image with edges and gradients."""
    x = np.linspace(0, 255, width)[None, :] * np.ones((height, 1))
    y = np.linspace(0, 255, height)[:, None] * np.ones((1, width))
    pixels = np.stack([x, y, 255 - x], -1).astype(np.uint8)
    pixels[height // 3 : 2 * height // 3, width // 3 : 2 * width // 3] = 255
    return Image.fromarray(pixels).convert(mode)


def png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def raw_png(width, height, bit_depth, colour_type, rows):
    """A PNG written by hand (for what Pillow will not write, e.g. 16-bit RGB), or with a forged header."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    data = b"".join(b"\0" + row for row in rows)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(data))
        + png_chunk(b"IEND", b"")
    )


def hidden_under_alpha(image):
    """`image` as RGBA, fully transparent on its left half, red hidden under that transparency."""
    pixels = np.asarray(image.convert("RGBA")).copy()
    pixels[:, : image.width // 2] = (255, 0, 0, 0)
    return Image.fromarray(pixels)


def with_exif_orientation(image, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", exif=exif)


def corpus(max_input_pixels, max_output_pixels, max_request_size):
    """At least 40 kinds of request, each with its expected answer."""
    card = sample_image(24, 16)
    png = encode(card)
    jpeg = encode(card, "JPEG", quality=90)
    image = {"Content-Type": "image/png"}
    x2 = (48, 32)
    not_image = dict(statuses=(415,), kinds=("not_an_image",))
    corrupt = dict(statuses=(400,), kinds=("corrupt_image",))
    bad_scale = dict(statuses=(422,), kinds=("invalid_scale",))
    bad_size = dict(statuses=(422,), kinds=("invalid_size",))

    bad_crc = bytearray(png)
    bad_crc[-20] ^= 0xFF  # inside IDAT's CRC
    scan = bytearray(encode(sample_image(64, 64), "JPEG", quality=90))
    start = scan.index(b"\xff\xda") + 20
    scan[start : start + 200] = bytes((b * 7 + 3) % 256 for b in scan[start : start + 200]).replace(b"\xff", b"\x00")
    bomb = raw_png(100_000, 100_000, 8, 0, [])
    deep = (np.asarray(card.convert("RGBA"), np.uint16) * 257) ^ 0x5A  # 16 bits, the low byte not the high one
    deep_png = imagecodecs.png_encode(deep)
    frames = [Image.new("RGB", (10, 6), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    animated = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    rgb16 = raw_png(5, 3, 16, 2, [(np.arange(15, dtype=">u2") * 4000).tobytes()] * 3)
    grey16 = encode(Image.fromarray(np.full((4, 6), 40000, np.uint16)))
    float_tiff = encode(Image.fromarray(np.linspace(0, 1, 30, dtype=np.float32).reshape(5, 6)), "TIFF")
    # ×4 answers of exactly max_output_pixels, and of one input row more
    side = int(max_output_pixels**0.5) // 4
    # A table of cases, one a line where it fits: left as written.
    # fmt: off
    cases = [
        Case("empty body", b"", statuses=(400,), kinds=("empty_body",)),
        Case("random bytes", np.random.default_rng(0).bytes(4096), headers=image, **not_image),
        Case("text", b"hello, world\n" * 20, headers={"Content-Type": "text/plain"}, **not_image),
        Case("JSON without image", json={"hello": "world"}, statuses=(400,), kinds=("invalid_json",)),
        Case("JSON with bad base64", json={"image": "@@@"}, statuses=(400,), kinds=("invalid_base64",)),
        Case("JSON number", json=1_000_000_000, statuses=(400,), kinds=("invalid_json",)),
        Case("JSON array", json=[{"image": "iVBORw0KGgo="}], statuses=(400,), kinds=("invalid_json",)),
        Case("JSON null", b"null", headers={"Content-Type": "application/json"}, statuses=(400,),
             kinds=("invalid_json",)),
        Case("truncated JSON", b'{"image": ', headers={"Content-Type": "application/json"}, statuses=(400,),
             kinds=("invalid_json",)),
        Case("JSON that is not UTF-8", b'{"image": "\xff\xfe"}', headers={"Content-Type": "application/json"},
             statuses=(400,), kinds=("invalid_json",)),
        Case("HTML", b"<!doctype html><html><body>hi</body></html>", headers={"Content-Type": "text/html"},
             **not_image),
        Case("SVG", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
             headers={"Content-Type": "image/svg+xml"}, **not_image),
        Case("PDF", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", headers={"Content-Type": "application/pdf"},
             **not_image),
        Case("ZIP", b"PK\x03\x04" + bytes(26) + b"PK\x05\x06" + bytes(18), headers={"Content-Type": "application/zip"},
             **not_image),
        Case("PNG cut in its signature", png[:6], headers=image, statuses=(400, 415),
             kinds=("corrupt_image", "not_an_image")),
        Case("PNG cut in IHDR", png[:20], headers=image, statuses=(400, 415), kinds=("corrupt_image", "not_an_image")),
        Case("PNG cut in IDAT", png[: len(png) // 2], headers=image, **corrupt),
        Case("PNG without IEND", png[:-12], headers=image, size=x2),
        Case("JPEG cut in its header", jpeg[:40], headers=image, statuses=(400, 415),
             kinds=("corrupt_image", "not_an_image")),
        Case("JPEG cut in its scan", jpeg[: len(jpeg) * 2 // 3], headers=image, **corrupt),
        Case("PNG with a bad CRC", bytes(bad_crc), headers=image, **corrupt),
        Case("JPEG with scrambled Huffman data", bytes(scan), headers=image, statuses=(200, 400),
             kinds=("corrupt_image",), size=(128, 128)),
        Case("decompression bomb header", bomb, headers=image, statuses=(413,), kinds=("image_too_large",)),
        Case("PNG claiming zero width", raw_png(0, 5, 8, 0, []), headers=image, statuses=(400, 415),
             kinds=("corrupt_image", "not_an_image")),
        Case("1×1", encode(Image.new("RGB", (1, 1), (1, 2, 3))), headers=image, size=(2, 2)),
        Case("1×N", encode(sample_image(1, 57)), headers=image, size=(2, 114)),
        Case("N×1", encode(sample_image(57, 1)), headers=image, size=(114, 2)),
        Case("16-bit grey PNG", grey16, headers=image, size=(12, 8)),
        Case("16-bit RGB PNG", rgb16, headers=image, size=(10, 6)),
        Case("palette PNG", encode(card.convert("P")), headers=image, size=x2),
        Case("LA PNG", encode(card.convert("LA")), headers=image, size=x2),
        Case("CMYK JPEG", encode(card.convert("CMYK"), "JPEG"), headers=image, size=x2),
        Case("CMYK TIFF", encode(card.convert("CMYK"), "TIFF"), headers=image, size=x2),
        Case("I;16 TIFF", encode(Image.fromarray(np.full((4, 6), 1000, np.uint16)), "TIFF"), headers=image,
             size=(12, 8)),
        Case("float TIFF", float_tiff, headers=image, size=(12, 10)),
        Case("animated GIF", animated, headers=image, size=(20, 12)),
        *[Case(f"EXIF orientation {o}", with_exif_orientation(card, o), headers=image,
               size=x2 if o <= 4 else x2[::-1]) for o in range(1, 9)],
        Case("multipart without a file", files={"scale": (None, "2")}, statuses=(400,), kinds=("empty_body",)),
        Case("multipart with two files", files={"a": ("a.png", png), "b": ("b.png", png)}, statuses=(400,),
             kinds=("several_images",)),
        Case("multipart file and scale", files={"data": ("a.png", png)}, form={"scale": "3"}, size=(72, 48)),
        Case("PNG labelled text/plain", png, headers={"Content-Type": "text/plain"}, size=x2),
        Case("PNG labelled application/json", png, headers={"Content-Type": "application/json"}, statuses=(400,),
             kinds=("invalid_json",)),
        Case("form-encoded body", b"image=abc", headers={"Content-Type": "application/x-www-form-urlencoded"},
             statuses=(415,), kinds=("form_body",)),
        *[Case(f"scale {value!r}", png, headers={**image, "X-Scale": value}, **bad_scale)
          for value in ("0", "-2", "0.5", "9", "1e9", "x", "")],
        Case("scale 2.5", png, headers={**image, "X-Scale": "2.5"}, size=(60, 40)),
        Case("size 50x", png, headers={**image, "X-Size": "50x"}, size=(50, 33)),
        *[Case(f"size {value!r}", png, headers={**image, "X-Size": value}, **bad_size)
          for value in ("0x0", "x", "1000x", "23x16", "64x48x1")],
        Case("scale and size", png, headers={**image, "X-Scale": "2", "X-Size": "48x32"}, **bad_size),
        Case("JSON scale 9", json={"image": "iVBORw0KGgo=", "scale": 9}, statuses=(400, 422),
             kinds=("invalid_scale", "corrupt_image", "not_an_image")),
        Case("Accept nothing we make", png, headers={**image, "Accept": "application/json"}, statuses=(406,),
             kinds=("not_acceptable",)),
        Case("body just under max_request_size", bytes(max_request_size - 4096), headers=image, heavy=True,
             **not_image),
        Case("body over max_request_size", bytes(max_request_size + 1), headers=image, statuses=(413,), heavy=True),
        Case("input one pixel over max_input_pixels", encode(Image.new("L", (max_input_pixels + 1, 1))),
             headers=image, statuses=(413,), kinds=("image_too_large",)),
        Case("answer exactly at max_output_pixels", encode(sample_image(side, side, "L")),
             headers={**image, "X-Scale": "4"}, size=(4 * side, 4 * side), heavy=True),
        Case("answer one input row over max_output_pixels", encode(sample_image(side, side + 1, "L")),
             headers={**image, "X-Scale": "4"}, statuses=(413,), kinds=("output_too_large",)),
        *(Case(f"PNG {kind} with a tRNS colour key", encode(keyed, transparency=key), headers=image, size=x2,
               mode=mode) for kind, keyed, key, mode in (
                   ("1-bit", card.convert("1"), 0, "LA"), ("grey", card.convert("L"), 87, "LA"),
                   # answered as a 16-bit grey-and-alpha PNG, which Pillow reads as RGBA
                   ("16-bit grey", Image.fromarray(np.asarray(card.convert("L"), np.uint16) * 257), 87 * 257, "RGBA"),
                   ("RGB", card, tuple(np.asarray(card)[0, 0].tolist()), "RGBA"))),
        *(Case(f"{format} header cut short", encode(card, format)[:cut], headers=image, **corrupt)
          for format, cut in (("PNG", 12), ("JPEG", 20), ("TIFF", 12), ("GIF", 8), ("WEBP", 14), ("AVIF", 40),
                              ("HEIF", 40), ("QOI", 10), ("DDS", 40))),
        Case("HEIC", encode(card, "HEIF"), headers=image, size=x2, mode="RGB"),
        Case("AVIF", encode(card, "AVIF"), headers=image, size=x2, mode="RGB"),
        *(Case(f"{format}, a format Pillow reads", encode(card, format), headers=image, size=x2)
          for format in ("TGA", "PPM", "SGI", "PCX", "QOI", "DDS")),
        Case("RGBA PNG hiding red under alpha 0", encode(hidden_under_alpha(card)), headers=image, size=x2,
             mode="RGBA"),
        Case("16-bit RGBA PNG (libpng)", deep_png, headers=image, size=x2, mode="RGBA"),
        Case("16-bit RGB TIFF (libtiff)", imagecodecs.tiff_encode(deep[..., :3]), headers=image, size=x2),
        Case("16-bit PNG cut short in its data", deep_png[: len(deep_png) // 2], headers=image, **corrupt),
        Case("an explanation asked for", png, headers=image, route="/explanations/srcnn", statuses=(404,),
             kinds=("no_explanations",)),
        Case("KServe v1 explain", json={"instances": [base64.b64encode(png).decode()]},
             route="/v1/models/srcnn:explain", statuses=(404,), kinds=("no_explanations",)),
        Case("the describe header", png, headers={**image, "describe": "True"},
             answer_keys=("model", "weights", "engine", "settings")),
    ]
    # fmt: on
    return cases


V2_PATH = "/v2/models/srcnn/infer"
BINARY_HEADER = "Inference-Header-Content-Length"


@dataclass(frozen=True)
class V2Case:
    """One Open Inference Protocol request to V2_PATH and what it must get: a status in `statuses`; an error as
    the protocol's {"error": "<message>"}; an answer whose output `output` is an image of `size` (BYTES) or pixels
    of `shape` (UINT8), or, for a KServe v1 body sent there, a v1 answer."""

    name: str
    body: bytes
    headers: dict = field(default_factory=dict)
    statuses: tuple = (400,)
    output: str = "image"
    size: tuple | None = None
    shape: tuple | None = None

    def send(self, session, base_url, timeout=120):
        return session.post(base_url + V2_PATH, data=self.body, headers=self.headers, timeout=timeout)

    def problem(self, response):
        """None if `response` is the answer this case must get, else what is wrong with it."""
        if response.status_code not in self.statuses:
            return f"{self.name}: status {response.status_code} not in {self.statuses}: {response.text[:200]}"
        if response.status_code != 200:
            try:
                message = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                return f"{self.name}: {response.status_code} without the protocol's error body: {response.text[:200]}"
            return None if isinstance(message, str) and len(message) >= 20 else f"{self.name}: {message!r} says little"
        outputs = v2_outputs(response)
        if "predictions" in outputs:  # a KServe v1 body is answered in v1
            return (
                None
                if image_size(base64.b64decode(outputs["predictions"][0])) == self.size
                else f"{self.name}: v1 answer of the wrong size"
            )
        if self.output not in outputs:
            return f"{self.name}: no output {self.output!r} in {sorted(outputs)}"
        datatype, shape, values = outputs[self.output]
        if datatype == "BYTES":
            return None if image_size(values[0]) == self.size else f"{self.name}: answer is not {self.size}"
        return (
            None
            if tuple(shape) == self.shape and len(values) == np.prod(shape)
            else f"{self.name}: pixels of shape {shape}, not {self.shape}"
        )


def v2_outputs(response):
    """{name: (datatype, shape, elements)} of a v2 answer, JSON or binary (BYTES elements as bytes), written from
    the protocol's text; a v1 answer as it is."""
    length = int(response.headers.get(BINARY_HEADER, len(response.content)))
    answer = json.loads(response.content[:length])
    if "predictions" in answer:
        return answer
    outputs, offset = {}, length
    for output in answer["outputs"]:
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is None:
            data = output["data"]
            values = [base64.b64decode(item) for item in data] if output["datatype"] == "BYTES" else data
        else:
            raw, offset = response.content[offset : offset + size], offset + size
            if output["datatype"] == "BYTES":
                values, at = [], 0
                while at < len(raw):
                    (count,) = struct.unpack_from("<I", raw, at)
                    values.append(raw[at + 4 : at + 4 + count])
                    at += 4 + count
            else:
                values = list(raw)
        outputs[output["name"]] = (output["datatype"], output["shape"], values)
    return outputs


def image_size(data):
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def v2_corpus():
    """Open Inference Protocol requests of every shape its clients send, well and badly formed, with their
    answers: JSON and binary tensors, BYTES files and UINT8 pixels, and what the binary extension can get wrong."""
    card = sample_image(24, 16)
    png, pixels = encode(card), np.asarray(card)
    as_json = {"Content-Type": "application/json"}

    def request(*inputs, **extra):
        return json.dumps({"inputs": list(inputs), **extra}).encode()

    def file_input(data=None, shape=(1,), **extra):
        return {
            "name": "image",
            "datatype": "BYTES",
            "shape": list(shape),
            "data": [base64.b64encode(png).decode()] if data is None else data,
            **extra,
        }

    def binary(inputs, tail, header_length=None, **extra):
        """A binary-extension body: the JSON of `inputs`, then `tail`; the header names the JSON's length."""
        header = request(*inputs, **extra)
        return header + tail, {BINARY_HEADER: str(len(header) if header_length is None else header_length)}

    element = struct.pack("<I", len(png)) + png
    good_binary, good_headers = binary(
        [{"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(element)}}],
        element,
    )
    cases = [
        V2Case("v2 JSON", request(file_input()), as_json, (200,), size=(48, 32)),
        V2Case("v2 JSON without a Content-Type (tritonclient)", request(file_input()), {}, (200,), size=(48, 32)),
        V2Case("v2 binary BYTES (tritonclient's default)", good_binary, good_headers, (200,), size=(48, 32)),
        V2Case(
            "v2 binary BYTES as octet-stream (kserve SDK)",
            good_binary,
            {**good_headers, "Content-Type": "application/octet-stream"},
            (200,),
            size=(48, 32),
        ),
        V2Case(
            "v2 binary output asked for",
            request(file_input(), outputs=[{"name": "image", "parameters": {"binary_data": True}}]),
            {},
            (200,),
            size=(48, 32),
        ),
        V2Case("v2 scale 3 in parameters", request(file_input(parameters={"scale": 3})), {}, (200,), size=(72, 48)),
        V2Case(
            "v2 UINT8 pixels in JSON",
            request({"name": "pixels", "datatype": "UINT8", "shape": [16, 24, 3], "data": pixels.reshape(-1).tolist()}),
            {},
            (200,),
            output="pixels",
            shape=(32, 48, 3),
        ),
        V2Case(
            "v2 UINT8 grey pixels in binary",
            *binary(
                [{"name": "pixels", "datatype": "UINT8", "shape": [16, 24], "parameters": {"binary_data_size": 384}}],
                pixels[..., 0].tobytes(),
            ),
            (200,),
            output="pixels",
            shape=(32, 48),
        ),
        V2Case(
            "v2 KServe v1 body on the v2 route",
            json.dumps({"instances": [base64.b64encode(png).decode()]}).encode(),
            {},
            (200,),
            size=(48, 32),
        ),
        V2Case("v2 not an image", request(file_input([base64.b64encode(b"hello, world").decode()])), {}, (415,)),
        V2Case("v2 invalid base64", request(file_input(["%%%"])), {}, (400,)),
        V2Case("v2 not JSON", b"{inputs: nope", as_json),
        V2Case("v2 not UTF-8", b"{\xff\xfe\xfd", as_json),
        V2Case("v2 JSON array", b"[1, 2]", as_json),
        V2Case("v2 inputs not a list", json.dumps({"inputs": {"name": "image"}}).encode(), as_json),
        V2Case("v2 no inputs", request(), as_json),
        V2Case("v2 two inputs", request(file_input(), file_input()), as_json),
        V2Case("v2 FP32 input", request({"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}), as_json),
        V2Case("v2 empty tensor", request(file_input([], shape=(0,))), as_json),
        V2Case("v2 shape larger than the data", request(file_input(shape=(3,))), as_json),
        V2Case("v2 two images in one tensor", request(file_input([base64.b64encode(png).decode()] * 2, (2,))), as_json),
        V2Case("v2 no data", request({"name": "image", "datatype": "BYTES", "shape": [1]}), as_json),
        V2Case("v2 number as BYTES data", request(file_input([7])), as_json),
        V2Case(
            "v2 UINT8 value 300",
            request({"name": "pixels", "datatype": "UINT8", "shape": [1, 1, 3], "data": [300, 0, 0]}),
            as_json,
        ),
        V2Case(
            "v2 UINT8 of rank 1",
            request({"name": "pixels", "datatype": "UINT8", "shape": [6], "data": [0] * 6}),
            as_json,
        ),
        V2Case(
            "v2 UINT8 of two channels",
            request({"name": "pixels", "datatype": "UINT8", "shape": [1, 1, 2], "data": [0, 0]}),
            as_json,
        ),
        V2Case("v2 unknown output", request(file_input(), outputs=[{"name": "logits"}]), as_json),
        V2Case("v2 scale 9", request(file_input(parameters={"scale": 9})), as_json, (422,)),
        V2Case("v2 binary header past the body", good_binary, {BINARY_HEADER: str(len(good_binary) + 1)}),
        V2Case("v2 binary header not a number", good_binary, {BINARY_HEADER: "twelve"}),
        V2Case(
            "v2 binary size past the body",
            *binary(
                [
                    {
                        "name": "image",
                        "datatype": "BYTES",
                        "shape": [1],
                        "parameters": {"binary_data_size": len(element) + 9},
                    }
                ],
                element,
            ),
        ),
        V2Case(
            "v2 bytes after the tensors",
            *binary(
                [
                    {
                        "name": "image",
                        "datatype": "BYTES",
                        "shape": [1],
                        "parameters": {"binary_data_size": len(element)},
                    }
                ],
                element + b"extra",
            ),
        ),
        V2Case(
            "v2 BYTES element longer than its tensor",
            *binary(
                [{"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 8}}],
                struct.pack("<I", 1000) + b"abcd",
            ),
        ),
        V2Case("v2 binary JSON header not JSON", b"\x89PNG\r\n" + png, {BINARY_HEADER: "6"}),
    ]
    return cases
