"""deploy/, offline: every manifest against the schemas of a current Kubernetes (kubernetes-validate) and the
InferenceServices and the project's ServingRuntime and ClusterServingRuntime against KServe's CRD schemas,
strictly (a misspelt field fails); and the KServe storage layout served as that runtime would serve it, on
loopback."""

import base64
import copy
import io
import json
import subprocess
import sys

import jsonschema
import kubernetes_validate
import pytest
import requests
import yaml
from PIL import Image

from helpers import frontend_bound
from predictor.server import BODY_BUDGET_REQUESTS
from serving.archive import KSERVE, kserve_store
from serving.server import free_ports, kserve_server
from srcnn.files import REPOSITORY as ROOT
from srcnn.files import read_properties
from tools.hostile import encode

KUBERNETES = "1.37.0"  # the newest release kubernetes-validate 1.37.0 bundles
MANIFESTS = sorted((ROOT / "deploy").glob("*/*.yaml"))
DOCUMENTS = [
    (path, index, document)
    for path in MANIFESTS
    for index, document in enumerate(yaml.safe_load_all(path.read_text()))
    if document
]
CRDS = {
    ("serving.kserve.io/v1beta1", "InferenceService"): "inferenceservice-v1beta1.json",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "servingruntime-v1alpha1.json",
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): "clusterservingruntime-v1alpha1.json",
}


def strict(schema):
    """A copy of an OpenAPI schema that refuses unknown fields, as `kubectl apply` (strict field validation) does:
    every object with listed properties and no other rule for the rest gets additionalProperties: false."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    return result


# One validator a kind, its schema checked once (jsonschema.validate checks the 600 KB schema on every call).
STRICT_CRDS = {
    kind: jsonschema.Draft7Validator(strict(json.loads((ROOT / "deploy" / "schemas" / name).read_text())))
    for (_, kind), name in CRDS.items()
}
API_VERSIONS = {kind: api_version for api_version, kind in CRDS}


def validate(document):
    """Raise on a manifest that a cluster of KUBERNETES with KServe would refuse."""
    if document["kind"] in STRICT_CRDS:
        assert document["apiVersion"] == API_VERSIONS[document["kind"]]
        STRICT_CRDS[document["kind"]].validate(document)
        # The CRD's schema leaves metadata open: check it as Kubernetes checks any object's.
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": document["metadata"]}, KUBERNETES, strict=True
        )
    else:
        kubernetes_validate.validate(document, KUBERNETES, strict=True)


def test_there_are_inferenceservices_and_plain_kubernetes_objects():
    kinds = sorted(document["kind"] for _, _, document in DOCUMENTS)
    assert kinds == [
        "ClusterServingRuntime",
        "ClusterServingRuntime",
        "Deployment",
        "HorizontalPodAutoscaler",
        *["InferenceService"] * 6,
        "Service",
        "ServingRuntime",
        "ServingRuntime",
    ]


@pytest.mark.parametrize(
    "path, index, document", DOCUMENTS, ids=[f"{path.relative_to(ROOT)}#{index}" for path, index, _ in DOCUMENTS]
)
def test_every_manifest_validates(path, index, document):
    validate(document)


@pytest.mark.parametrize(
    "kind, where",
    [
        ("InferenceService", ("spec", "predictor")),
        ("InferenceService", ("spec", "predictor", "model")),
        ("ServingRuntime", ("spec",)),
        ("ClusterServingRuntime", ("spec", "containers", 0)),
        ("Deployment", ("spec", "template", "spec", "containers", 0)),
        ("HorizontalPodAutoscaler", ("spec",)),
    ],
)
def test_a_misspelt_field_fails(kind, where):
    document = copy.deepcopy(next(document for _, _, document in DOCUMENTS if document["kind"] == kind))
    node = document
    for key in where:
        node = node[key]
    node["replicaz"] = 3
    with pytest.raises((jsonschema.ValidationError, kubernetes_validate.ValidationError)):
        validate(document)


def test_the_inferenceservices_name_what_kserve_needs():
    services = {
        path.name: document
        for path, _, document in DOCUMENTS
        if document["kind"] == "InferenceService" and path.parent.name == "kserve"
    }
    assert set(services) == {"inferenceservice-v1.yaml", "inferenceservice-v2.yaml", "inferenceservice-v2-gpu.yaml"}
    for name, service in services.items():
        predictor = service["spec"]["predictor"]
        model = predictor["model"]
        assert (model["modelFormat"]["name"], model["runtime"]) == ("pytorch", "srcnn-torchserve")
        assert model["protocolVersion"] == ("v1" if name.endswith("v1.yaml") else "v2")
        assert model["storageUri"] and model["resources"]["requests"]["cpu"]
        assert 1 <= predictor["minReplicas"] < predictor["maxReplicas"] and predictor["scaleTarget"] > 0
    assert (
        services["inferenceservice-v2-gpu.yaml"]["spec"]["predictor"]["model"]["resources"]["limits"]["nvidia.com/gpu"]
        == "1"
    )


def test_the_plain_deployment_has_probes_resources_and_an_autoscaler():
    kinds = {document["kind"]: document for path, _, document in DOCUMENTS if path.parent.name == "kubernetes"}
    (container,) = kinds["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert {"readinessProbe", "livenessProbe", "resources"} <= set(container)
    assert kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == kinds["Deployment"]["metadata"]["name"]
    assert kinds["Service"]["spec"]["selector"] == kinds["Deployment"]["spec"]["selector"]["matchLabels"]


# A TorchServe worker's resident memory with its two lanes loaded, idle: 550 MiB measured by make bench's storm on
# the 2-core AMD EPYC, family 25, model 17 (docs/decisions.md, D16).
WORKER_IDLE_BYTES = 600 * 2**20


def memory_limits(node):
    """Every memory limit under a manifest's `resources`, in bytes."""
    if isinstance(node, list):
        return [limit for item in node for limit in memory_limits(item)]
    if not isinstance(node, dict):
        return []
    found = [limit for value in node.values() for limit in memory_limits(value)]
    memory = node.get("limits", {}).get("memory") if isinstance(node.get("limits"), dict) else None
    if memory is not None:
        found.append(int(memory.removesuffix("Gi")) * 2**30)
    return found


def test_a_torchserve_pod_holds_its_workers_one_large_answer_and_the_waiting_large_inputs():
    """Every worker idle, one large answer computing (at most 1.1 GB beyond a worker, tests/test_handler.py's
    test_limits_fit_together), each other place's decoded input (Pillow keeps 4 bytes a pixel) and the frontend at
    the most its vmargs let it hold."""
    config = yaml.safe_load((ROOT / "handler" / "model-config.yaml").read_text())
    settings, workers = config["handler"], config["minWorkers"]
    waiting = (workers - 1 - settings["large_computing"]) * 4 * settings["max_input_pixels"]
    frontend = frontend_bound(read_properties(KSERVE / "config.properties"))
    need = workers * WORKER_IDLE_BYTES + settings["large_computing"] * 1.1e9 + waiting + frontend
    limits = [
        limit
        for path, _, document in DOCUMENTS
        if path.parent.name in ("kserve", "kubernetes") and "gpu" not in path.name
        for limit in memory_limits(document)
    ]
    assert len(limits) >= 5 and min(limits) >= need, (limits, need)


# The predictor's resident memory, its two Upscalers' lanes loaded, after a few small requests: 586 MiB measured on
# the 2-core AMD EPYC, family 25, model 17.
PREDICTOR_IDLE_BYTES = 700 * 2**20


def test_a_predictor_pod_holds_one_large_answer_the_waiting_inputs_the_small_ones_and_the_bodies():
    """The predictor computes minWorkers requests at once, large ones in minWorkers - 1 places and
    large_computing turns (predictor/model.py): one large answer computing, the other places' decoded inputs, the
    threads left to small requests each at most a large request's answer (4 bytes a pixel in Pillow), and the
    request bodies it holds at once (predictor/server.py)."""
    config = yaml.safe_load((ROOT / "handler" / "model-config.yaml").read_text())
    settings, workers = config["handler"], config["minWorkers"]
    places = max(1, workers - 1)
    waiting = (places - settings["large_computing"]) * 4 * settings["max_input_pixels"]
    small = (workers - places) * 4 * settings["large_output_pixels"]
    bodies = BODY_BUDGET_REQUESTS * int(read_properties(ROOT / "config.properties")["max_request_size"])
    need = PREDICTOR_IDLE_BYTES + settings["large_computing"] * 1.1e9 + waiting + small + bodies
    limits = [
        limit for path, _, document in DOCUMENTS if path.parent.name == "predictor" for limit in memory_limits(document)
    ]
    assert len(limits) >= 3 and min(limits) >= need, (limits, need)


def test_the_runtime_config_follows_kserves_conventions():
    properties = read_properties(KSERVE / "config.properties")
    assert properties["inference_address"] == "http://0.0.0.0:8085"
    assert properties["model_store"] == "/mnt/models/model-store"
    assert (properties["metrics_mode"], properties["ts_open_inference_protocol"]) == ("prometheus", "true")
    snapshot = json.loads(properties["model_snapshot"])["models"]["srcnn"]["1.0"]
    assert snapshot["marName"] == "srcnn.mar"
    config = yaml.safe_load((ROOT / "handler" / "model-config.yaml").read_text())
    for key in ("minWorkers", "maxWorkers", "batchSize", "maxBatchDelay", "responseTimeout"):
        assert snapshot[key] == config[key], key  # the archive's own settings, which the snapshot overrides
    lines = (KSERVE / "config.properties").read_text().splitlines()
    loopback = read_properties(ROOT / "config.properties")
    for position, line in enumerate(lines):  # every setting that differs from the loopback one says why above it
        key = line.split("=", 1)[0]
        if "=" in line and not line.startswith("#") and loopback.get(key) != properties[key]:
            above = position - 1
            while lines[above] and not lines[above].startswith("#"):  # settings grouped under one comment
                above -= 1
            comment = []
            while lines[above].startswith("#"):
                comment.append(lines[above])
                above -= 1
            assert any(text.startswith("# differs") for text in comment), f"{key}: no reason given for differing"


@pytest.fixture(scope="module")
def kserve(tmp_path_factory):
    store = kserve_store(tmp_path_factory.mktemp("kserve") / "store")
    server = kserve_server(store, free_ports(5), tmpdir=store / "tmp")
    server.start(timeout=300)
    yield server
    server.stop()


def test_the_store_holds_the_runtimes_layout(kserve):
    store = kserve.workdir
    assert (store / "config" / "config.properties").read_text() == (KSERVE / "config.properties").read_text()
    assert (store / "model-store" / "srcnn.mar").stat().st_size > 100_000


def test_the_rehearsal_answers_v2_v1_health_and_metrics(kserve, scene):
    png = base64.b64encode(encode(scene(20, 15))).decode()
    v2 = requests.post(
        f"{kserve.inference_url}/v2/models/srcnn/infer",
        timeout=120,
        json={"inputs": [{"name": "image", "shape": [-1], "datatype": "BYTES", "data": [png]}]},
    )
    assert v2.status_code == 200, v2.text
    assert Image.open(io.BytesIO(base64.b64decode(v2.json()["outputs"][0]["data"][0]))).size == (40, 30)
    v1 = requests.post(
        f"{kserve.inference_url}/v1/models/srcnn:predict", json={"instances": [{"data": png}]}, timeout=120
    )
    assert v1.status_code == 200 and Image.open(io.BytesIO(base64.b64decode(v1.json()["predictions"][0]))).size == (
        40,
        30,
    )
    assert requests.get(f"{kserve.inference_url}/v2/health/ready", timeout=30).json() == {"ready": True}
    assert requests.get(f"{kserve.inference_url}/ping", timeout=30).status_code == 200  # the Deployment's probe
    metrics = requests.get(f"{kserve.properties['metrics_address']}/metrics", timeout=30).text
    assert 'SRCNNRequests{ModelName="srcnn",Level="Model",Wire="kserve-v2"' in metrics
    log = (kserve.log_dir / "ts_log.log").read_text()
    assert "Installed custom pip packages" not in log  # the runtime's image has them: no index needed


def test_the_runtimes_run_torchserve_as_kserves_runtime_did_and_nothing_names_the_bundled_one():
    runtimes = {
        document["kind"]: document
        for path, _, document in DOCUMENTS
        if document["kind"].endswith("Runtime") and path.parent.name == "kserve"
    }
    assert runtimes["ServingRuntime"]["spec"] == runtimes["ClusterServingRuntime"]["spec"]  # one runtime, two scopes
    spec = runtimes["ServingRuntime"]["spec"]
    assert {runtime["metadata"]["name"] for runtime in runtimes.values()} == {"srcnn-torchserve"}
    assert "env" not in spec["containers"][0]  # no TS_SERVICE_ENVELOPE: the handler reads KServe v1 and v2 itself
    (container,) = spec["containers"]
    assert container["args"] == [
        "torchserve",
        "--start",
        "--model-store=/mnt/models/model-store",
        "--ts-config=/mnt/models/config/config.properties",
    ]
    assert (
        container["securityContext"]["runAsNonRoot"]
        and spec["annotations"]["prometheus.kserve.io/port"]
        == read_properties(KSERVE / "config.properties")["metrics_address"].rsplit(":", 1)[1]
    )
    assert {"v1", "v2"} <= set(spec["protocolVersions"])
    assert [fmt["name"] for fmt in spec["supportedModelFormats"]] == ["pytorch"]
    for path in sorted((ROOT / "deploy").rglob("*")):
        if path.is_file() and path.parent.name != "schemas":
            assert "kserve-torchserve" not in path.read_text(), path


def test_the_runtime_image_bakes_in_the_pinned_extra_packages():
    dockerfile = (KSERVE / "Dockerfile").read_text()
    assert "ARG BASE=pytorch/torchserve-kfs:0.12.0\nFROM ${BASE}" in dockerfile
    assert "pip install --no-cache-dir -r /tmp/srcnn-requirements.txt" in dockerfile
    extra = [line for line in (KSERVE / "requirements.txt").read_text().splitlines() if line and line[0] != "#"]
    pinned = (ROOT / "requirements.txt").read_text().splitlines()
    assert {"onnxruntime", "onnx", "openvino", "pillow-heif", "imagecodecs"} <= {line.split("==")[0] for line in extra}
    assert all("==" in line and line in pinned for line in extra)  # the versions the project tests
    assert read_properties(KSERVE / "config.properties")["install_py_dep_per_model"] == "false"


PREDICTOR = ROOT / "deploy" / "predictor"


def test_the_predictors_runtime_serves_every_protocol_from_its_image():
    runtimes = {
        document["kind"]: document
        for path, _, document in DOCUMENTS
        if document["kind"].endswith("Runtime") and path.parent == PREDICTOR
    }
    assert runtimes["ServingRuntime"]["spec"] == runtimes["ClusterServingRuntime"]["spec"]
    assert {runtime["metadata"]["name"] for runtime in runtimes.values()} == {"srcnn-kserve"}
    spec = runtimes["ServingRuntime"]["spec"]
    assert spec["protocolVersions"] == ["v1", "v2", "grpc-v2"]
    (container,) = spec["containers"]
    assert container["args"] == ["--model_name={{.Name}}", "--http_port=8080", "--grpc_port=8081"]
    assert spec["annotations"]["prometheus.kserve.io/port"] == "8080" and container["securityContext"]["runAsNonRoot"]
    services = {
        path.name: document["spec"]["predictor"]["model"]
        for path, _, document in DOCUMENTS
        if document["kind"] == "InferenceService" and path.parent == PREDICTOR
    }
    assert {name: model["protocolVersion"] for name, model in services.items()} == {
        "inferenceservice-v1.yaml": "v1",
        "inferenceservice-v2.yaml": "v2",
        "inferenceservice-grpc-v2.yaml": "grpc-v2",
    }
    for model in services.values():
        assert (model["modelFormat"]["name"], model["runtime"]) == ("srcnn", "srcnn-kserve")
        assert "storageUri" not in model  # the weights are in the image
    assert services["inferenceservice-grpc-v2.yaml"]["ports"] == [
        {"name": "h2c", "containerPort": 8081, "protocol": "TCP"}
    ]


def test_the_predictors_image_holds_what_it_imports_pinned():
    dockerfile = (PREDICTOR / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "\nFROM python:3.11" in dockerfile
    copied = {
        word.rstrip("/")
        for line in dockerfile.replace("\\\n", " ").splitlines()
        if line.startswith("COPY ")
        for word in line.split()[1:-1]
    }
    assert {"srcnn", "handler", "predictor", "config.properties"} <= copied
    assert {f"weights/srcnn_x{scale}.{suffix}" for scale in (2, 3, 4) for suffix in ("pth", "json")} <= copied
    pinned = (ROOT / "requirements.txt").read_text().splitlines()
    assert "torch==2.13.0" in dockerfile and "torch==2.13.0" in pinned
    installed = [line for line in (PREDICTOR / "requirements.txt").read_text().splitlines() if line[:1] not in "#"]
    # srcnn.codec's decoders among them: Pillow, pillow-heif (HEIC) and imagecodecs (16-bit PNG and TIFF).
    needed = {"kserve", "onnxruntime", "openvino", "numpy", "pillow", "pillow-heif", "imagecodecs"}
    assert needed <= {line.split("==")[0] for line in installed}
    assert all(line in pinned for line in installed)  # the versions the tests ran


@pytest.mark.slow
def test_the_predictor_imports_nothing_of_torchserve():
    code = "import sys; sys.modules['ts'] = None; import predictor.__main__, predictor.model, predictor.server"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
