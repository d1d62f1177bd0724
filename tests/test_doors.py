"""The other front doors of the real server: TorchServe's gRPC API (a client built from its own inference.proto)
and KServe's v1 and v2 protocols on the REST port."""

import base64
import io
import json
import re
import time

import grpc
import pytest
import requests
from PIL import Image

from helpers import LIMITS, worker_pids
from tools.grpc_client import load_stubs
from tools.grpc_client import main as grpc_client
from tools.hostile import encode


@pytest.fixture(scope="session")
def grpc_api(server, tmp_path_factory):
    """(stub, messages) of TorchServe's InferenceAPIsService, generated from the inference.proto inside the
    installed TorchServe's frontend jar."""
    messages, services = load_stubs(tmp_path_factory.mktemp("grpc"))
    channel = grpc.insecure_channel(grpc_address(server))
    yield services.InferenceAPIsServiceStub(channel), messages
    channel.close()


def grpc_address(server):
    return f"127.0.0.1:{server.properties['grpc_inference_port']}"


def predict(grpc_api, **inputs):
    stub, messages = grpc_api
    return stub.Predictions(messages.PredictionsRequest(model_name="srcnn", input=inputs), timeout=120)


@pytest.mark.parametrize(
    "sizing, size",
    [({}, (40, 30)), ({"scale": b"3"}, (60, 45)), ({"scale": b"2.5"}, (50, 38)), ({"size": b"x30"}, (40, 30))],
)
def test_grpc_answers_the_upscaled_png(grpc_api, scene, sizing, size):
    inputs = {"data": encode(scene(20, 15))} | sizing
    answer = Image.open(io.BytesIO(predict(grpc_api, **inputs).prediction))
    assert (answer.format, answer.size) == ("PNG", size)


@pytest.mark.parametrize(
    "inputs, code, status, kind",
    [
        ({"data": b"hello, world"}, grpc.StatusCode.INVALID_ARGUMENT, 415, "not_an_image"),
        ({"data": "TRUNCATED"}, grpc.StatusCode.INVALID_ARGUMENT, 400, "corrupt_image"),
        ({"data": "PNG", "scale": b"9"}, grpc.StatusCode.INVALID_ARGUMENT, 422, "invalid_scale"),
        ({"data": b""}, grpc.StatusCode.INVALID_ARGUMENT, 400, "empty_body"),
        ({"data": "HUGE"}, grpc.StatusCode.RESOURCE_EXHAUSTED, 413, "image_too_large"),
    ],
)
def test_grpc_refusals_are_grpc_errors_with_the_json_error(server, grpc_api, scene, inputs, code, status, kind):
    pids = worker_pids(server)
    png = encode(scene(40, 40))
    huge = encode(Image.new("L", (LIMITS["max_input_pixels"] + 1, 1)))
    payloads = {"PNG": png, "TRUNCATED": png[: len(png) // 2], "HUGE": huge}
    inputs = {key: payloads.get(value, value) for key, value in inputs.items()}
    with pytest.raises(grpc.RpcError) as raised:
        predict(grpc_api, **inputs)
    assert raised.value.code() == code
    # TorchServe appends the frontend's exception name as a second line of the description
    error = json.loads(raised.value.details().splitlines()[0])
    assert (error["code"], error["type"]) == (status, kind) and len(error["message"]) > 20
    assert Image.open(io.BytesIO(predict(grpc_api, data=png).prediction)).size == (80, 80)
    assert worker_pids(server) == pids


def test_grpc_refusals_leave_no_traceback_in_the_log(server, grpc_api):
    log = server.log_dir / "model_log.log"
    seen = log.stat().st_size
    with pytest.raises(grpc.RpcError):
        predict(grpc_api, data=b"not an image")
    predict(grpc_api, data=encode(Image.new("L", (4, 4))))  # its log line comes after the refusal's
    written = log.read_bytes()[seen:].decode()
    assert " wire=grpc status=415 error=not_an_image " in written
    assert "Traceback" not in written and "Prediction error" not in written


def test_grpc_ping(grpc_api):
    stub, _ = grpc_api
    from google.protobuf import empty_pb2

    assert json.loads(stub.Ping(empty_pb2.Empty(), timeout=30).health)["status"] == "Healthy"


def kserve_v1(server, instance):
    return requests.post(f"{server.inference_url}/v1/models/srcnn:predict", json={"instances": [instance]}, timeout=120)


def test_kserve_v1_predict(server, scene):
    response = kserve_v1(server, {"data": base64.b64encode(encode(scene(20, 15))).decode(), "scale": 3})
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    (prediction,) = response.json()["predictions"]
    assert Image.open(io.BytesIO(base64.b64decode(prediction))).size == (60, 45)
    assert response.headers["X-Scale"] == "3"
    sized = kserve_v1(server, {"data": base64.b64encode(encode(scene(20, 15))).decode(), "size": "50x"})
    assert Image.open(io.BytesIO(base64.b64decode(sized.json()["predictions"][0]))).size == (50, 38)
    bad = kserve_v1(server, {"data": base64.b64encode(b"text").decode()})
    assert (bad.status_code, bad.json()["type"]) == (415, "not_an_image")


def test_kserve_v2_infer(server, scene):
    request = {
        "id": "42",
        "inputs": [
            {
                "name": "image",
                "shape": [-1],
                "datatype": "BYTES",
                "data": [base64.b64encode(encode(scene(20, 15))).decode()],
            }
        ],
    }
    response = requests.post(f"{server.inference_url}/v2/models/srcnn/infer", json=request, timeout=120)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["model_name"], answer["id"], answer["outputs"][0]["datatype"]) == ("srcnn", "42", "BYTES")
    assert Image.open(io.BytesIO(base64.b64decode(answer["outputs"][0]["data"][0]))).size == (40, 30)
    request["parameters"] = {"scale": 1.5}
    answer = requests.post(f"{server.inference_url}/v2/models/srcnn/infer", json=request, timeout=120).json()
    assert Image.open(io.BytesIO(base64.b64decode(answer["outputs"][0]["data"][0]))).size == (30, 23)
    request["inputs"][0]["data"] = [base64.b64encode(b"text").decode()]
    bad = requests.post(f"{server.inference_url}/v2/models/srcnn/infer", json=request, timeout=120)
    assert bad.status_code == 415 and list(bad.json()) == ["error"] and "PNG, JPEG" in bad.json()["error"]


def test_kserve_v2_health_and_metadata(server):
    for path, key in (("/v2/health/live", "live"), ("/v2/health/ready", "ready")):
        response = requests.get(f"{server.inference_url}{path}", timeout=30)
        assert response.status_code == 200 and response.json() == {key: True}
    metadata = requests.get(f"{server.inference_url}/v2", timeout=30)
    assert metadata.status_code == 200 and metadata.json()["name"] == "Torchserve"


def test_grpc_client_command(server, scene, tmp_path, capsys):
    scene(20, 15).save(tmp_path / "in.png")
    (tmp_path / "text.png").write_bytes(b"not an image at all")
    assert (
        grpc_client(
            [
                str(tmp_path / "in.png"),
                "-o",
                str(tmp_path / "out.png"),
                "--scale",
                "4",
                "--address",
                grpc_address(server),
            ]
        )
        == 0
    )
    assert Image.open(tmp_path / "out.png").size == (80, 60)
    assert (
        grpc_client([str(tmp_path / "text.png"), "-o", str(tmp_path / "bad.png"), "--address", grpc_address(server)])
        == 1
    )
    code, error = capsys.readouterr().err.strip().split(": ", 1)
    assert code == "INVALID_ARGUMENT" and json.loads(error)["type"] == "not_an_image"
    assert not (tmp_path / "bad.png").exists()


def srcnn_metrics(server):
    """{(name, labels without Hostname): value} of the SRCNN* samples on the Prometheus endpoint."""
    text = requests.get(f"{server.properties['metrics_address']}/metrics", timeout=30).text
    samples = {}
    for name, labels, value in re.findall(r"^(SRCNN\w+)\{(.*?),?\} (\S+)$", text, re.M):
        pairs = tuple(pair for pair in re.findall(r'(\w+)="([^"]*)"', labels) if pair[0] != "Hostname")
        samples[name, pairs] = float(value)
    return samples


def test_metrics_count_exactly_what_was_sent(server, scene):
    before = srcnn_metrics(server)
    for body, scale in ((encode(scene(20, 10)), "3"), (encode(scene(10, 10)), "3"), (b"plain text", "3")):
        requests.put(f"{server.inference_url}/predictions/srcnn", data=body, headers={"X-Scale": scale}, timeout=120)
    model = (("ModelName", "srcnn"), ("Level", "Model"))
    expected = {
        ("SRCNNRequests", (*model, ("Wire", "rest"), ("Scale", "3"), ("Outcome", "2xx"))): 2,
        ("SRCNNRequests", (*model, ("Wire", "rest"), ("Scale", "-"), ("Outcome", "not_an_image"))): 1,
        ("SRCNNOutputMegapixels", (*model, ("Scale", "3"))): (60 * 30 + 30 * 30) / 1e6,
    }
    deadline = time.monotonic() + 20  # the frontend reads the workers' metric lines as they come
    while True:
        after = srcnn_metrics(server)
        moved = {key: after.get(key, 0) - before.get(key, 0) for key in expected}
        if all(moved[key] == pytest.approx(value) for key, value in expected.items()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert moved == pytest.approx(expected)
    stages = {dict(labels)["Stage"] for name, labels in after if name == "SRCNNStageMilliseconds"}
    assert stages == {"decode", "upscale", "encode"}
