"""Coverage-guided fuzzing (atheris) of the handler's request parsing and image decoding path.

    python -m tools.fuzz [--seconds 600] [--corpus .cache/fuzz-corpus] [--log .cache/fuzz.log]

Each input is one request: its first byte picks the body's shape (raw, multipart, JSON with a base64 image, or
the payload itself sent as JSON), the Content-Type and the Accept header, its second byte the X-Scale header,
the rest is the payload. Bodies are bytes, as TorchServe hands them over with its decoding off (the handler
turns it off). It runs through the handler's whole path for one request (`_answer`: parse, decode, upscale,
encode) with small pixel limits. An answer of 500 (a fault: anything but the handler's client errors, ClientError
and the ImageError that becomes one, which the handler logs with its traceback) is a crash.

libFuzzer's own output goes to the log file; the command ends with one verdict line (PASS or FAIL, inputs run,
coverage edges, corpus size) and exits 0 only on PASS.
"""

import argparse
import base64
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import atheris
import imagecodecs
import numpy as np
from PIL import Image  # Image itself is imported by tools.hostile anyway; its format plugins are instrumented below
from ts.context import Context, RequestProcessor
from ts.torch_handler.base_handler import BaseHandler  # noqa: F401  (imported here: not instrumented)

from srcnn import SRCNN, save_state_dict
from srcnn.weights import SCALES, weight_file
from tools.hostile import encode, hidden_under_alpha, sample_image


def instrumented_imports():
    """Import, with coverage instrumentation, what parses requests and images (Pillow's format plugins, the codec,
    the protocol, the handler); torch and TorchServe, imported above, are left alone. Only the fuzzing child
    calls this: instrumenting is slow and chatty."""
    with atheris.instrument_imports():
        Image.init()
        from handler.protocol import Trace
        from handler.srcnn_handler import SRCNNHandler
    return SimpleNamespace(Trace=Trace, SRCNNHandler=SRCNNHandler)


CONTENT_TYPES = ("image/png", "application/x-www-form-urlencoded", "text/plain", "")
ACCEPTS = (None, "image/jpeg", "image/webp", "*/*", "application/json", "image/png;q=0", "image/*;q=abc", "")
SCALE_CHARACTERS = "0123456789.-xe "


def make_handler(folder, targets):
    for scale in SCALES:
        save_state_dict(SRCNN(), weight_file(Path(folder) / "weights", scale))
    handler = targets.SRCNNHandler()
    # Random weights have no int8 calibration; the arithmetic is not what the fuzzer explores.
    limits = {"max_input_pixels": 4096, "max_output_pixels": 65536, "threads": 1, "precision": "onnxruntime-fp32"}
    handler.initialize(
        Context("srcnn", str(folder), {"model": {}}, 1, None, "0.12.0", model_yaml_config={"handler": limits})
    )
    return handler


def request(data):
    """Fuzzer bytes -> (headers, TorchServe data dict)."""
    flags = data[0] if data else 0
    scale = SCALE_CHARACTERS[data[1] % len(SCALE_CHARACTERS)] if len(data) > 1 else None
    payload = data[2:]
    headers = {"Content-Type": CONTENT_TYPES[flags & 3]}
    if flags & 4 and scale is not None:
        headers["X-Scale"] = scale * (1 + (flags >> 7))
    accept = ACCEPTS[(flags >> 3) & 7]
    if accept is not None:
        headers["Accept"] = accept
    shape = (flags >> 5) & 3
    if shape == 0:
        row = {"body": bytearray(payload)}
    elif shape == 1:
        row = {"data": bytearray(payload), "scale": bytearray((scale or "").encode())}
    else:
        headers["Content-Type"] = "application/json"
        if shape == 2:
            payload = json.dumps({"image": base64.b64encode(payload).decode(), "scale": scale}).encode()
        row = {"body": bytearray(payload)}
    return headers, row


def make_target(handler, targets):
    def one_input(data):
        headers, row = request(data)
        handler.context = Context("srcnn", "", {"model": {}}, 1, None, "0.12.0")
        handler.context.request_processor = [RequestProcessor(headers)]
        trace = targets.Trace()
        handler._answer(0, row, trace)  # the request's whole path: a fault is logged with its traceback, a 500
        if trace.status >= 500:
            raise AssertionError(f"a {trace.status} ({trace.error}) for this input: the log above has the traceback")

    return one_input


def seeds(folder):
    """Small valid images of every input format and kind of transparency and depth, as fuzzer inputs (flags 0: raw
    body, PNG content type)."""
    folder.mkdir(parents=True, exist_ok=True)
    card = sample_image(12, 8)
    deep = np.asarray(card.convert("RGBA"), np.uint16) * 257
    formats = ("JPEG", "WEBP", "HEIF", "AVIF", "BMP", "TIFF", "GIF", "TGA", "PPM", "ICO", "SGI", "PCX", "QOI", "DDS")
    for name, data in {
        "png": encode(card),
        **{format.lower(): encode(card, format) for format in formats},
        "grey16": encode(Image.new("I;16", (5, 4), 3000)),
        "palette": encode(card.convert("P")),
        "trns-grey": encode(card.convert("L"), transparency=87),
        "trns-rgb": encode(card, transparency=tuple(np.asarray(card)[0, 0].tolist())),
        "hidden-under-alpha": encode(hidden_under_alpha(card)),
        "png16-rgba": imagecodecs.png_encode(deep),
        "tiff16-rgb": imagecodecs.tiff_encode(deep[..., :3]),
    }.items():
        (folder / f"seed-{name}").write_bytes(b"\x04\x02" + data)


def fuzz(seconds, corpus):
    """Run libFuzzer in this process; it exits the process when done."""
    targets = instrumented_imports()  # before anything loads Pillow's format plugins (seeds() would)
    seeds(corpus)
    with tempfile.TemporaryDirectory() as folder:
        atheris.Setup(
            [sys.argv[0], f"-max_total_time={seconds}", "-rss_limit_mb=4096", "-print_final_stats=1", str(corpus)],
            make_target(make_handler(folder, targets), targets),
        )
        atheris.Fuzz()


def verdict(returncode, output, seconds):
    """One line from libFuzzer's output: PASS or FAIL, inputs run, coverage edges and corpus entries."""
    runs = re.search(r"Done (\d+) runs", output) or re.search(r"stat::number_of_executed_units: (\d+)", output)
    status = re.findall(r"cov: (\d+) ft: \d+ corp: (\d+)", output)
    figures = (f"{int(runs.group(1)):,} inputs" if runs else "unknown inputs") + (
        f", {int(status[-1][0]):,} coverage edges, {int(status[-1][1]):,} corpus entries" if status else ""
    )
    if returncode == 0 and runs:
        return f"fuzz: PASS, no crash in {seconds} s: {figures}"
    crash = re.search(r"Test unit written to (\S+)", output)
    reproducer = f"; reproducer {crash.group(1)}" if crash else ""
    return f"fuzz: FAIL (exit status {returncode}) after {figures}{reproducer}"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--corpus", type=Path, default=Path(".cache/fuzz-corpus"))
    parser.add_argument("--log", type=Path, default=Path(".cache/fuzz.log"), help="libFuzzer's own output")
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)  # the child below
    args = parser.parse_args(argv)
    if args.in_process:
        fuzz(args.seconds, args.corpus)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    with args.log.open("w") as log:
        child = ["--in-process", "--seconds", str(args.seconds), "--corpus", str(args.corpus)]
        result = subprocess.run([sys.executable, "-m", "tools.fuzz", *child], stdout=log, stderr=subprocess.STDOUT)
    output = args.log.read_text(errors="replace")
    line = verdict(result.returncode, output, args.seconds)
    if not line.startswith("fuzz: PASS"):
        print(output[-3000:], file=sys.stderr)
    print(f"{line}; log {args.log}")
    return 0 if line.startswith("fuzz: PASS") else 1


if __name__ == "__main__":
    sys.exit(main())
