"""The real TorchServe, started from srcnn.mar on free loopback ports, driven with curl and requests."""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pytest
import requests
from PIL import Image

from helpers import LIMITS, assert_faithful, frontend_bound, make_photo, predictions_url, worker_pids
from serving.server import running_torchserve
from srcnn import upscale
from srcnn.color import rgb_to_y
from srcnn.files import REPOSITORY as ROOT
from srcnn.files import read_properties
from srcnn.metrics import psnr, shave
from tools.hostile import encode

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="drives the curl binary, not installed here")


def curl(*arguments, timeout):
    """Run `curl -sS` with `arguments`: its completed process, output as text."""
    return subprocess.run(["curl", "-sS", *arguments], capture_output=True, text=True, timeout=timeout)


def curl_to(path, *arguments, write_out="%{http_code}", timeout=120):
    """`curl` with the answer's body written to `path`: its stdout is `write_out` filled in."""
    return curl(*arguments, "-o", str(path), "-w", write_out, timeout=timeout)


@needs_curl
def test_curl_upload_gives_a_png_of_twice_the_size(server, scene, tmp_path):
    scene(101, 67).save(tmp_path / "in.png")
    result = curl_to(
        tmp_path / "out.png",
        "-T",
        str(tmp_path / "in.png"),
        predictions_url(server),
        write_out="%{http_code} %{content_type}",
    )
    assert result.stdout == "200 image/png", result.stderr
    answer = Image.open(tmp_path / "out.png")
    assert (answer.format, answer.mode, answer.size) == ("PNG", "RGB", (202, 134))


@needs_curl
@pytest.mark.parametrize("accept", ["image/png", "image/jpeg"])
def test_a_phone_photo_comes_back_upright_with_its_profile_and_metadata(server, tmp_path, accept):
    (tmp_path / "photo.jpg").write_bytes(make_photo(64, 48))  # 48 wide, 64 high when upright
    result = curl_to(
        tmp_path / "big", "-T", str(tmp_path / "photo.jpg"), "-H", f"Accept: {accept}", predictions_url(server)
    )
    assert result.stdout == "200", result.stderr
    assert_faithful((tmp_path / "big").read_bytes(), (96, 128))


@needs_curl
def test_curl_multipart_scale_and_accept(server, scene, tmp_path):
    scene(30, 20).save(tmp_path / "in.png")
    result = curl_to(
        tmp_path / "out",
        "-F",
        f"data=@{tmp_path / 'in.png'}",
        "-F",
        "scale=4",
        "-H",
        "Accept: image/webp",
        predictions_url(server),
        write_out="%{http_code} %{content_type}",
    )
    assert result.stdout == "200 image/webp", result.stderr
    assert Image.open(tmp_path / "out").size == (120, 80)


@needs_curl
def test_form_encoded_body_is_told_the_fix(server, tmp_path):
    (tmp_path / "form.txt").write_text("image=abc")
    result = curl("--data-binary", f"@{tmp_path / 'form.txt'}", predictions_url(server), timeout=120)
    answer = json.loads(result.stdout)
    assert (answer["code"], answer["type"]) == (415, "form_body")
    assert "Content-Type: image/png" in answer["message"]


@needs_curl
def test_curl_data_binary_image_without_content_type(server, scene, tmp_path):
    # curl labels the PNG as a form. TorchServe's frontend parses it before the handler runs and, when the bytes
    # hold a '%' not followed by two hex digits, answers 500 ErrorDataDecoderException itself (docs/usage.md, Limits).
    pids = worker_pids(server)
    scene(30, 20).save(tmp_path / "in.png")
    result = curl(
        "--data-binary", f"@{tmp_path / 'in.png'}", predictions_url(server), "-w", "\n%{http_code}", timeout=120
    )
    body, status = result.stdout.rsplit("\n", 1)
    assert (status, json.loads(body)["type"]) in (("415", "form_body"), ("500", "ErrorDataDecoderException"))
    good = requests.put(predictions_url(server), data=(tmp_path / "in.png").read_bytes(), timeout=120)
    assert good.status_code == 200
    assert worker_pids(server) == pids


def test_requests_with_scale_header_and_binary_body(server, scene):
    response = requests.post(
        predictions_url(server),
        data=encode(scene(25, 15)),
        headers={"X-Scale": "3", "Content-Type": "image/png"},
        timeout=120,
    )
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (75, 45)


def test_shipped_weights_beat_bicubic(server, scene):
    truth = scene(192, 144, seed=7, noise=1)
    low = truth.resize((96, 72), Image.Resampling.BICUBIC)
    response = requests.put(predictions_url(server), data=encode(low), timeout=120)
    answer = np.asarray(Image.open(io.BytesIO(response.content)))
    bicubic = np.asarray(upscale(low, None, 2))
    reference = rgb_to_y(np.asarray(truth))

    def score(image):
        return psnr(shave(reference, 2), shave(rgb_to_y(image), 2))

    assert score(answer) > score(bicubic) + 0.5


BAD_REQUESTS = [
    # (description, requests.post keyword arguments, status, type)
    ("empty body", {"data": b""}, 400, "empty_body"),
    (
        "form-encoded body",
        {"data": "PNG", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        415,
        "form_body",
    ),
    ("text", {"data": b"hello", "headers": {"Content-Type": "text/plain"}}, 415, "not_an_image"),
    ("random bytes", {"data": bytes(range(256)) * 8, "headers": {"Content-Type": "image/png"}}, 415, "not_an_image"),
    ("JSON without image", {"json": {"picture": "x"}}, 400, "invalid_json"),
    ("bad scale", {"data": "PNG", "headers": {"X-Scale": "0.5"}}, 422, "invalid_scale"),
    ("scale nine", {"data": "PNG", "headers": {"X-Scale": "9"}}, 422, "invalid_scale"),
    ("size zero", {"data": "PNG", "headers": {"X-Size": "0x0"}}, 422, "invalid_size"),
    ("no acceptable format", {"data": "PNG", "headers": {"Accept": "application/json"}}, 406, "not_acceptable"),
    ("over the input limit", {"data": "BIG"}, 413, "image_too_large"),
    ("over the output limit", {"data": "WIDE", "headers": {"X-Scale": "4"}}, 413, "output_too_large"),
]


@pytest.mark.parametrize("description, arguments, status, kind", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_input_gets_its_4xx_and_the_worker_lives(server, scene, description, arguments, status, kind):
    pids = worker_pids(server)
    side = int(LIMITS["max_output_pixels"] ** 0.5) // 4  # ×4 of side × side is exactly the output limit
    payloads = {
        "PNG": encode(scene(8, 8)),
        "BIG": encode(Image.new("L", (LIMITS["max_input_pixels"] + 1, 1))),
        "WIDE": encode(Image.new("L", (side + 1, side))),
    }
    arguments = dict(arguments)
    if arguments.get("data") in payloads:
        arguments["data"] = payloads[arguments["data"]]
        arguments.setdefault("headers", {}).setdefault("Content-Type", "image/png")
    response = requests.post(predictions_url(server), timeout=120, **arguments)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert (body["code"], body["type"]) == (status, kind) and len(body["message"]) > 20
    good = requests.put(predictions_url(server), data=payloads["PNG"], timeout=120)
    assert good.status_code == 200
    assert worker_pids(server) == pids


def test_request_over_max_request_size_is_refused_by_torchserve(server, scene):
    pids = worker_pids(server)
    limit = int(server.properties["max_request_size"])
    response = requests.put(predictions_url(server), data=b"\0" * (limit + 1), timeout=120)
    assert response.status_code == 413
    under = requests.put(predictions_url(server), data=b"\0" * (limit - 1024), timeout=120)
    assert under.status_code == 415 and under.json()["type"] == "not_an_image"
    assert requests.put(predictions_url(server), data=encode(scene(8, 8)), timeout=120).status_code == 200
    assert worker_pids(server) == pids


def test_eight_large_bodies_at_once_leave_the_frontend_inside_its_bounds(server, scene):
    """The bar for the frontend's memory: 8 clients at once each sending 190 MiB of random bytes get 413 from the
    header, the frontend's resident memory (sampled every 0.1 s) staying under 3 GB; then 8 at once each sending
    random bytes just under max_request_size, the frontend inside what its vmargs allow (tests/helpers.py,
    frontend_bound); every process lives and the next request is served."""
    frontend = psutil.Process(running_torchserve(server.tmpdir))
    pids = worker_pids(server)
    limit = int(server.properties["max_request_size"])

    def send(size):
        body = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
        return requests.put(predictions_url(server), data=body, timeout=300).status_code

    def at_once(sizes):
        """The statuses of one request of each size sent at once, and the frontend's peak meanwhile."""
        peak, done = [frontend.memory_info().rss], threading.Event()

        def sample():
            while not done.wait(0.1):
                peak.append(frontend.memory_info().rss)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            with ThreadPoolExecutor(len(sizes)) as pool:
                return list(pool.map(send, sizes)), max(peak)
        finally:
            done.set()
            sampler.join()

    over, peak = at_once([190 * 2**20 + index for index in range(8)])
    assert over == [413] * 8 and peak < 3e9, f"frontend peak {peak / 2**30:.2f} GiB"
    # Answered by the handler (415: random bytes), or, where the frontend's bounded memory is full of bodies, by the
    # frontend itself (507 Insufficient Storage, docs/usage.md); never more memory than the vmargs allow.
    under, peak = at_once([limit - 4096 - index for index in range(8)])
    assert set(under) <= {415, 507} and under.count(415) >= 4, under
    assert peak <= frontend_bound(server.properties), f"frontend peak {peak / 2**30:.2f} GiB"
    assert frontend.is_running() and worker_pids(server) == pids
    assert requests.put(predictions_url(server), data=encode(scene(8, 8)), timeout=120).status_code == 200


def test_metrics_are_served_for_prometheus(server):
    metrics_url = server.properties["metrics_address"]
    text = requests.get(f"{metrics_url}/metrics", timeout=30).text
    assert "ts_inference_requests_total" in text


def test_model_api_is_off_and_every_address_is_loopback(server):
    properties = read_properties(ROOT / "config.properties")
    assert properties["enable_model_api"] == "false"
    for key in ("inference_address", "management_address", "metrics_address"):
        assert properties[key].startswith("http://127.0.0.1:")
    assert properties["grpc_inference_address"] == properties["grpc_management_address"] == "127.0.0.1"
    response = requests.post(f"{server.management_url}/models", params={"url": "srcnn.mar"}, timeout=30)
    assert response.status_code >= 400
    assert "srcnn" in json.dumps(requests.get(f"{server.management_url}/models", timeout=30).json())


@needs_curl
@pytest.mark.parametrize(
    ("header", "size", "factor", "weights"),
    [
        ("X-Scale: 2.5", (100, 75), "2.5", ["srcnn_x3.pth"]),
        ("X-Size: 80x", (80, 60), "2", ["srcnn_x2.pth"]),
        ("X-Scale: 8", (320, 240), "8", ["srcnn_x2.pth", "srcnn_x4.pth"]),
    ],
)
def test_curl_any_scale_or_size(server, scene, tmp_path, header, size, factor, weights):
    scene(40, 30).save(tmp_path / "in.png")
    result = curl_to(
        tmp_path / "out.png",
        "-T",
        str(tmp_path / "in.png"),
        "-H",
        header,
        predictions_url(server),
        "-D",
        str(tmp_path / "headers"),
    )
    assert result.stdout == "200", result.stderr
    assert Image.open(tmp_path / "out.png").size == size
    lines = (tmp_path / "headers").read_text().splitlines()[1:]
    headers = {key.lower(): value for key, value in (line.split(": ", 1) for line in lines if ": " in line)}
    assert headers["x-scale"] == factor
    assert [part.split(";")[0] for part in headers["x-weights"].split(",")] == weights


@needs_curl
def test_curl_scale_nine_is_a_422_with_a_message(server, scene, tmp_path):
    scene(40, 30).save(tmp_path / "in.png")
    result = curl("-T", str(tmp_path / "in.png"), "-H", "X-Scale: 9", predictions_url(server), timeout=120)
    body = json.loads(result.stdout)
    assert (body["code"], body["type"]) == (422, "invalid_scale") and "from 1 to 8" in body["message"]


def test_an_answer_says_what_was_done(server, scene):
    response = requests.put(predictions_url(server), data=encode(scene(40, 30)), headers={"X-Scale": "3"}, timeout=120)
    assert response.status_code == 200 and Image.open(io.BytesIO(response.content)).size == (120, 90)
    sidecar = json.loads((ROOT / "weights" / "srcnn_x3.json").read_text())
    assert (response.headers["X-Scale"], response.headers["X-Output-Size"]) == ("3", "120x90")
    assert response.headers["X-Weights"] == f"srcnn_x3.pth;sha256={sidecar['sha256'][:12]}"
    assert [part.split(";")[0] for part in response.headers["Server-Timing"].split(", ")] == [
        "decode",
        "upscale",
        "encode",
    ]


def written_since(log, seen, expected, seconds=10):
    """What `log` gained past byte `seen`, once that holds `expected` or after `seconds` (the frontend copies the
    worker's output into the log as it comes)."""
    deadline = time.monotonic() + seconds
    while expected not in log.read_bytes()[seen:].decode() and time.monotonic() < deadline:
        time.sleep(0.1)
    return log.read_bytes()[seen:].decode()


@pytest.mark.parametrize(
    "body, expected",
    [
        (b'{"image": ', "not JSON: Expecting value at line 1, column 11 (byte 10)"),
        (b'[{"image": "iVBORw0KGgo="}]', "the JSON body is list, not an object"),
        (b'{"picture": "iVBORw0KGgo="}', "no \"image\" key (it has 'picture')"),
    ],
)
def test_malformed_json_is_a_400_without_a_traceback(server, body, expected):
    log = server.log_dir / "model_log.log"
    seen = log.stat().st_size
    response = requests.post(
        predictions_url(server), data=body, headers={"Content-Type": "application/json"}, timeout=120
    )
    assert (response.status_code, response.json()["type"]) == (400, "invalid_json")
    assert expected in response.json()["message"]
    written = written_since(log, seen, " status=400 error=invalid_json ")
    assert " status=400 error=invalid_json " in written
    assert "Traceback" not in written and "Failed json decoding" not in written and "WARNING" not in written


def caught_signals(pid):
    """The signals process `pid` has handlers for (/proc/<pid>/status, its SigCgt mask)."""
    status = Path(f"/proc/{pid}/status").read_text()
    mask = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
    return {number for number in range(1, 65) if mask >> (number - 1) & 1}


def test_a_worker_writes_its_threads_stacks_on_sigusr1_and_goes_on(server, scene):
    log = server.log_dir / "model_log.log"
    seen = log.stat().st_size
    pids = worker_pids(server)
    assert signal.SIGUSR1 in caught_signals(pids[0])  # else the signal's default action would end the worker
    os.kill(pids[0], signal.SIGUSR1)
    written = written_since(log, seen, "model_service_worker.py")
    assert "most recent call first" in written and "model_service_worker.py" in written  # its main thread's stack
    assert worker_pids(server) == pids
    assert requests.put(predictions_url(server), data=encode(scene(40, 30)), timeout=120).status_code == 200


def test_start_refuses_in_one_line_and_leaves_the_archive_alone(server, tmp_path):
    archive = Path(server.properties["model_store"]) / "srcnn.mar"
    before = archive.stat().st_mtime_ns
    # A TMPDIR of its own: a TorchServe the user runs (its pid file in /tmp) must not change which refusal this is.
    result = subprocess.run(
        [sys.executable, "-m", "serving", "start", "--config", str(server.config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "is taken by another program" in result.stderr, result.stderr
    assert f"(inference_address in {server.config})" in result.stderr
    assert archive.stat().st_mtime_ns == before


@needs_curl
@pytest.mark.slow  # three photographs, about a minute of computing on 2 cores
@pytest.mark.parametrize(
    "size, scale, source, accept, expected",
    [
        ((4032, 3024), 2, "JPEG", None, (8064, 6048)),  # a 12-megapixel phone photo
        ((1920, 1080), 4, "PNG", None, (7680, 4320)),  # a full-HD frame
        ((6000, 4000), 2, "JPEG", "image/jpeg", (12000, 8000)),  # a 24-megapixel camera photo
    ],
)
def test_photographs_are_answered_at_their_full_size(server, tmp_path, size, scale, source, accept, expected):
    with Image.open(ROOT / "data" / "Set14" / "baboon.png") as baboon:
        baboon.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(tmp_path / "photo", format=source)
    headers = ["-H", f"X-Scale: {scale}"] + (["-H", f"Accept: {accept}"] if accept else [])
    result = curl_to(tmp_path / "big", "-T", str(tmp_path / "photo"), *headers, predictions_url(server), timeout=600)
    assert result.stdout == "200", (result.stderr, (tmp_path / "big").read_bytes()[:300])
    with Image.open(tmp_path / "big") as answer:
        assert (answer.format, answer.size) == ({"image/jpeg": "JPEG"}.get(accept, "PNG"), expected)


@needs_curl
@pytest.mark.slow  # two 12-megapixel photographs at ×2, half a minute each on 2 cores
@pytest.mark.parametrize(
    "format, options", [("HEIF", {"quality": 90}), ("AVIF", {"quality": 90, "speed": 10})], ids=["HEIC", "AVIF"]
)
def test_iphone_and_avif_photos_are_answered_upright_with_their_profile(server, tmp_path, format, options):
    (tmp_path / "photo").write_bytes(make_photo(4032, 3024, 6, format, **options))  # pillow-heif writes HEIC
    result = curl_to(
        tmp_path / "big",
        "-T",
        str(tmp_path / "photo"),
        "-H",
        "Accept: image/jpeg",
        predictions_url(server),
        timeout=600,
    )
    assert result.stdout == "200", (result.stderr, (tmp_path / "big").read_bytes()[:300])
    assert_faithful((tmp_path / "big").read_bytes(), (6048, 8064))


def test_the_management_api_describes_the_service(server):
    described = requests.get(f"{server.management_url}/models/srcnn?customized=true", timeout=60).json()
    metadata = described[0]["customizedMetadata"]
    assert metadata["model"] == "srcnn" and set(metadata["weights"]) == {"2", "3", "4"}
    assert metadata["settings"]["default_scale"] == LIMITS["default_scale"]
