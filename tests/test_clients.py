"""The Open Inference Protocol as its real clients speak it, against the three servers that answer it: TorchServe
(`make serve`), TorchServe under KServe's kservev2 service envelope, and the KServe predictor (`make serve-kserve`).
The clients are tritonclient (HTTP, and gRPC in a process of its own: its stubs and the kserve SDK's declare the
same protobuf package, which one process cannot hold twice) and the kserve SDK, with their defaults."""

import asyncio
import base64
import http.client
import io
import json
import re
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
import requests
import tritonclient.http as triton
import yaml
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig
from PIL import Image
from tritonclient.utils import InferenceServerException

from helpers import worker_pids
from predictor.server import BODY_BUDGET_REQUESTS, BODY_IDLE_SECONDS, BODY_RETRY_SECONDS
from serving.predictor import Predictor
from serving.server import free_ports
from srcnn.files import REPOSITORY as ROOT
from srcnn.files import read_properties
from tools.hostile import encode, sample_image, v2_corpus

CARD = sample_image(24, 16)
PNG = encode(CARD)


@pytest.fixture(params=["torchserve", "enveloped", "predictor"])
def target(request):
    """(base URL, a function that says whether the server is unchanged since, the server's log files)."""
    if request.param == "predictor":
        server = request.getfixturevalue("predictor")
        pid = server.pid()
        return server.inference_url, lambda: server.pid() == pid and server.ready(), [server.log]
    server = request.getfixturevalue("server" if request.param == "torchserve" else "enveloped_server")
    pids = worker_pids(server)
    return (
        server.inference_url,
        lambda: worker_pids(server) == pids,
        [server.log_dir / "model_log.log", server.log_dir / "ts_log.log"],
    )


def logs_since(files):
    """A function giving what `files` gained since this call."""
    sizes = {path: path.stat().st_size if path.exists() else 0 for path in files}
    return lambda: "".join(path.read_bytes()[size:].decode(errors="replace") for path, size in sizes.items())


def host(url):
    return url.split("://", 1)[1]


@pytest.mark.parametrize("case", v2_corpus(), ids=lambda case: case.name)
def test_the_v2_corpus(target, case):
    url, unchanged, logs = target
    written = logs_since(logs)
    problem = case.problem(case.send(requests.Session(), url))
    assert problem is None, problem
    assert unchanged(), "a worker was restarted"
    assert "Traceback" not in written() and "Prediction failed" not in written()


def triton_input(binary):
    """tritonclient's BYTES input holding the card: its file, or in JSON (where elements must be text) base64."""
    tensor = triton.InferInput("image", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([PNG if binary else base64.b64encode(PNG)], dtype=object), binary_data=binary)
    return tensor


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_infers_with_its_defaults(target, binary):
    url, unchanged, _ = target
    client = triton.InferenceServerClient(host(url))
    result = client.infer("srcnn", [triton_input(binary)], parameters={"scale": 3})
    answer = result.as_numpy("image")[0]  # the output is binary: tritonclient asks so when it names no outputs
    assert Image.open(io.BytesIO(answer)).size == (72, 48)
    assert result.get_response()["parameters"]["output_size"] == "72x48"
    asked = triton.InferRequestedOutput("image", binary_data=False)
    text = client.infer("srcnn", [triton_input(binary)], outputs=[asked]).as_numpy("image")[0]
    assert Image.open(io.BytesIO(base64.b64decode(text))).size == (48, 32)
    assert unchanged()


def test_tritonclient_sends_pixels_and_gets_pixels(target):
    url, _, _ = target
    client = triton.InferenceServerClient(host(url))
    pixels = triton.InferInput("pixels", [16, 24, 3], "UINT8")
    pixels.set_data_from_numpy(np.asarray(CARD))
    answer = client.infer(
        "srcnn", [pixels], outputs=[triton.InferRequestedOutput("pixels"), triton.InferRequestedOutput("image")]
    )
    upscaled = answer.as_numpy("pixels")
    assert upscaled.shape == (32, 48, 3) and upscaled.dtype == np.uint8
    assert np.array_equal(upscaled, np.asarray(Image.open(io.BytesIO(answer.as_numpy("image")[0]))))  # one answer


def refused(client_call):
    with pytest.raises(InferenceServerException) as raised:
        client_call()
    return raised.value


@pytest.mark.parametrize(
    "element, parameters, status, words",
    [
        (b"\x00not an image at all", {}, "415", "not an image"),
        (PNG, {"scale": 9}, "422", "from 1 to 8"),
    ],
)
def test_tritonclient_shows_the_refusal(target, element, parameters, status, words):
    url, unchanged, logs = target
    written = logs_since(logs)
    client = triton.InferenceServerClient(host(url))
    tensor = triton.InferInput("image", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([element], dtype=object))
    error = refused(lambda: client.infer("srcnn", [tensor], parameters=parameters))
    assert error.status() == status and words in error.message()
    assert unchanged() and "Traceback" not in written()


def test_tritonclient_is_told_a_shape_that_does_not_fit(target):
    url, _, _ = target
    client = triton.InferenceServerClient(host(url))
    tensor = triton.InferInput("pixels", [16, 24, 3], "UINT8")
    tensor.set_data_from_numpy(np.asarray(CARD))
    tensor._shape = [16, 24, 4]  # what a caller's bookkeeping gets wrong; the client itself checks set_data
    error = refused(lambda: client.infer("srcnn", [tensor]))
    assert error.status() == "400" and "holds 1536 elements and the data 1152" in error.message()


def kserve_v2_request(element=PNG, **parameters):
    tensor = InferInput("image", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([element], dtype=object))  # binary by default
    return InferRequest("srcnn", [tensor], parameters=parameters or None)


def test_the_kserve_sdk_predicts_v1_and_infers_v2(target):
    url, unchanged, _ = target

    async def calls():
        v1 = InferenceRESTClient(RESTConfig(protocol="v1"))
        v2 = InferenceRESTClient(RESTConfig(protocol="v2"))
        predicted = await v1.infer(
            url, {"instances": [{"data": base64.b64encode(PNG).decode(), "scale": 4}]}, model_name="srcnn"
        )
        inferred = await v2.infer(url, kserve_v2_request(scale=2.5), model_name="srcnn")
        with pytest.raises(httpx.HTTPStatusError) as raised:
            await v2.infer(url, kserve_v2_request(b"\xff\xfe text, not an image"), model_name="srcnn")
        return predicted, inferred, raised.value

    predicted, inferred, error = asyncio.run(calls())
    assert Image.open(io.BytesIO(base64.b64decode(predicted["predictions"][0]))).size == (96, 64)
    (output,) = inferred.outputs
    assert (output.name, output.datatype, output.shape) == ("image", "BYTES", [1])
    assert Image.open(io.BytesIO(base64.b64decode(output.as_numpy()[0]))).size == (60, 40)
    assert error.response.status_code == 415 and "the body is not an image" in str(error)
    assert unchanged()


def test_the_predictor_is_ready_and_describes_its_tensors(predictor):
    client = triton.InferenceServerClient(host(predictor.inference_url))
    assert client.is_model_ready("srcnn") and client.is_server_ready()
    metadata = client.get_model_metadata("srcnn")
    assert [(tensor["name"], tensor["datatype"]) for tensor in metadata["inputs"]] == [
        ("image", "BYTES"),
        ("pixels", "UINT8"),
    ]
    assert [tensor["name"] for tensor in metadata["outputs"]] == ["image", "pixels"]
    rest = InferenceRESTClient(RESTConfig(protocol="v2"))
    assert asyncio.run(rest.is_model_ready(predictor.inference_url, "srcnn"))
    v1 = requests.get(f"{predictor.inference_url}/v1/models/srcnn", timeout=30)
    assert v1.json() == {"name": "srcnn", "ready": True}
    assert "SRCNNRequests_total{" in requests.get(f"{predictor.inference_url}/metrics", timeout=30).text


def test_the_kserve_sdk_infers_over_grpc(predictor):
    async def calls():
        client = InferenceGRPCClient(f"127.0.0.1:{predictor.grpc_port}")
        ready = await client.is_model_ready("srcnn")
        answer = await client.infer(kserve_v2_request(scale=3))
        with pytest.raises(Exception) as raised:
            await client.infer(kserve_v2_request(b"not an image"))
        await client.close()
        return ready, answer, raised.value

    ready, answer, error = asyncio.run(calls())
    assert ready and Image.open(io.BytesIO(answer.outputs[0].as_numpy()[0])).size == (72, 48)
    assert "INVALID_ARGUMENT" in str(error.code()) and "the body is not an image" in error.details()


TRITON_GRPC = """
import io, json, sys
import numpy as np
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

client = triton.InferenceServerClient(sys.argv[1])
report = {"ready": client.is_model_ready("srcnn"),
          "inputs": [tensor.name for tensor in client.get_model_metadata("srcnn").inputs]}
def infer(element, headers=None, **parameters):
    tensor = triton.InferInput("image", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([element], dtype=object))
    return client.infer("srcnn", [tensor], parameters=parameters, headers=headers)
report["answer"] = infer(open(sys.argv[2], "rb").read(), scale=2).as_numpy("image")[0].hex()
report["by_metadata"] = infer(open(sys.argv[2], "rb").read(), {"x-scale": "3"}).as_numpy("image")[0].hex()
for name, element, parameters in (("not_an_image", b"nope", {}), ("scale", open(sys.argv[2], "rb").read(),
                                                                  {"scale": 9})):
    try:
        infer(element, **parameters)
    except InferenceServerException as error:
        report[name] = [error.status(), error.message()]
print(json.dumps(report))
"""


def test_tritonclient_over_grpc(predictor, tmp_path):
    (tmp_path / "card.png").write_bytes(PNG)
    run = subprocess.run(
        [sys.executable, "-c", TRITON_GRPC, f"127.0.0.1:{predictor.grpc_port}", str(tmp_path / "card.png")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["ready"] and report["inputs"] == ["image", "pixels"]
    assert Image.open(io.BytesIO(bytes.fromhex(report["answer"]))).size == (48, 32)
    assert Image.open(io.BytesIO(bytes.fromhex(report["by_metadata"]))).size == (72, 48)  # X-Scale as metadata
    assert report["not_an_image"][0] == "StatusCode.INVALID_ARGUMENT" and "not an image" in report["not_an_image"][1]
    assert "StatusCode.INVALID_ARGUMENT" == report["scale"][0] and "from 1 to 8" in report["scale"][1]


def test_the_predictor_closes_a_body_that_stalls(predictor):
    connection = http.client.HTTPConnection("127.0.0.1", predictor.http_port, timeout=BODY_IDLE_SECONDS + 30)
    connection.putrequest("POST", "/v2/models/srcnn/infer")
    connection.putheader("Content-Length", "100000")
    connection.endheaders()
    connection.send(b"x" * 1000)  # then nothing: a slow upload
    started = time.monotonic()
    response = connection.getresponse()
    waited = time.monotonic() - started
    assert response.status == 408 and BODY_IDLE_SECONDS - 1 < waited < BODY_IDLE_SECONDS + 10
    assert json.loads(response.read())["error"] == (
        f"the request body paused for over {BODY_IDLE_SECONDS} s after 1,000 bytes; send it without pauses"
    )
    connection.close()
    assert predictor.ready()


def test_the_predictor_refuses_a_body_over_the_request_limit_before_reading_it(predictor):
    limit = int(read_properties(ROOT / "config.properties")["max_request_size"])
    connection = http.client.HTTPConnection("127.0.0.1", predictor.http_port, timeout=60)
    connection.putrequest("POST", "/v2/models/srcnn/infer")
    connection.putheader("Content-Length", str(limit + 1))
    connection.endheaders()  # no body follows: the answer must come from the header alone
    response = connection.getresponse()
    assert response.status == 413 and f"{limit:,} bytes" in json.loads(response.read())["error"]
    connection.close()
    assert predictor.ready()


def test_the_predictor_holds_bodies_up_to_its_budget_and_refuses_one_more_with_a_retry_after(predictor):
    limit = int(read_properties(ROOT / "config.properties")["max_request_size"])

    def opened(length):
        connection = http.client.HTTPConnection("127.0.0.1", predictor.http_port, timeout=60)
        connection.putrequest("POST", "/v2/models/srcnn/infer")
        connection.putheader("Content-Length", str(length))
        connection.endheaders()
        return connection

    held = []
    for _ in range(BODY_BUDGET_REQUESTS):  # bodies at the limit, arriving slowly: all held
        held.append(opened(limit))
        held[-1].send(b"x" * 1000)
    time.sleep(1)
    refused = opened(limit)  # no body follows: refused from its header
    response = refused.getresponse()
    answer = json.loads(response.read())
    assert (response.status, response.getheader("Retry-After")) == (503, str(BODY_RETRY_SECONDS)), answer
    assert answer["error"].startswith("the server holds as many request bodies as it may")
    refused.close()
    for connection in held:
        connection.close()
    deadline = time.monotonic() + 30  # the held requests end as their connections close, and free the budget
    while (status := requests.put(predictor.inference_url + "/v2/models/srcnn/infer", data=PNG).status_code) == 503:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert status == 200
    lines = [line for line in predictor.log.read_text().splitlines() if "status=503 error=server_busy" in line]
    assert lines and 'outcome="server_busy"' in requests.get(predictor.inference_url + "/metrics", timeout=30).text


@pytest.mark.server  # starts a predictor of its own, with a low threshold for large requests
def test_a_large_request_whose_client_leaves_before_its_turn_is_never_computed(tmp_path):
    """Two large requests: the first computes (×8 of 512², seconds on 2 cores); the second's client gives up after
    a second while it waits for its turn, and the predictor drops it uncomputed (handler/admission.py)."""
    config = yaml.safe_load((ROOT / "handler" / "model-config.yaml").read_text())
    config["handler"].update(large_output_pixels=65_536, large_computing=1)
    (tmp_path / "model-config.yaml").write_text(yaml.safe_dump(config))
    server = Predictor(*free_ports(2), tmp_path, tmp_path, ("--model-config", str(tmp_path / "model-config.yaml")))
    server.start(timeout=240)
    try:
        url = f"{server.inference_url}/v2/models/srcnn/infer"
        first = []
        computing = threading.Thread(
            target=lambda: first.append(
                requests.put(url, data=encode(sample_image(512, 512)), headers={"X-Scale": "8"}, timeout=600)
            )
        )
        computing.start()
        time.sleep(1)  # the first has its turn
        with pytest.raises(requests.ReadTimeout):
            requests.put(url, data=encode(sample_image(64, 64)), headers={"X-Scale": "8"}, timeout=1)
        computing.join()
        assert first[0].status_code == 200
        lines = [line for line in server.log.read_text().splitlines() if "srcnn id=" in line]
        assert any("status=499 error=client_gone" in line and "upscale_ms" not in line for line in lines), lines
        metrics = requests.get(f"{server.inference_url}/metrics", timeout=30).text
        assert 'outcome="client_gone"' in metrics
        # A client that leaves while its answer is computed: given up at the next band, long before the end.
        whole = float(re.search(r"status=200 .*upscale_ms=([0-9.]+)", "\n".join(lines))[1])
        with pytest.raises(requests.ReadTimeout):
            requests.put(url, data=encode(sample_image(512, 512)), headers={"X-Scale": "8"}, timeout=1)
        deadline = time.monotonic() + 60
        while not (
            stopped := re.findall(r"status=499 error=client_gone .*upscale_ms=([0-9.]+)", server.log.read_text())
        ):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert float(stopped[0]) < whole / 2, (stopped, whole)
    finally:
        server.stop()
