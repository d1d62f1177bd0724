"""The tests' fixtures (images, an identity network, the real servers a test can ask for) and their tiers: a test
that asks for a server fixture is marked `server`; the others are marked where they are written."""

import os

import pytest
import torch

from helpers import make_scene
from serving.predictor import Predictor
from serving.server import free_ports, private_server
from srcnn import SRCNN

# The tiers (registered in pyproject.toml): `make test` runs them all; `make test-fast` leaves out `server` and
# `slow`. A test that asks for one of these fixtures has a real server started for it (TorchServe, or the KServe
# predictor), so it is marked `server` here; every other mark is written on the test or its module.
SERVER_FIXTURES = {"server", "own_server", "kserve", "enveloped_server", "predictor", "target"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.server)


@pytest.fixture(autouse=True, scope="session")
def engine_measurements(tmp_path_factory):
    """The engine choice's cache (srcnn.choice) in a folder of the test run's own, for every process it starts:
    the suite measures this machine once and leaves the user's cache alone."""
    os.environ["SRCNN_CACHE_DIR"] = str(tmp_path_factory.mktemp("engine-cache"))
    yield


@pytest.fixture(autouse=True)
def torch_threads():
    """torch's thread count is process-wide and a lane of torch engines sets it to 1 (srcnn.engine): give the
    next test the count it had."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def scene():
    return make_scene


@pytest.fixture
def image_folder(tmp_path):
    """A data dir with a training set 'train' of four scenes and a test set 'test' of two."""

    def build(train=4, test=2, size=(96, 80)):
        for name, count, offset in (("train", train, 0), ("test", test, 100)):
            folder = tmp_path / "data" / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                make_scene(*size, seed=offset + index).save(folder / f"img{index}.png")
        return tmp_path / "data"

    return build


@pytest.fixture
def identity_model():
    """An SRCNN whose output equals its (non-negative) input: a centre tap through every layer."""
    model = SRCNN()
    with torch.no_grad():
        for conv in model.convs:
            conv.weight.zero_()
            conv.bias.zero_()
            centre = conv.kernel_size[0] // 2
            conv.weight[0, 0, centre, centre] = 1.0
    return model.eval()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One running TorchServe shared by the real-server tests; always stopped at the end."""
    instance = private_server(tmp_path_factory.mktemp("torchserve"))
    instance.start(timeout=240)
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def enveloped_server(tmp_path_factory):
    """TorchServe as KServe's TorchServe runtime runs it for a v2 InferenceService: TS_SERVICE_ENVELOPE=kservev2."""
    instance = private_server(tmp_path_factory.mktemp("enveloped"), service_envelope="kservev2")
    instance.start(timeout=240)
    try:
        assert "KServe envelope (TS_SERVICE_ENVELOPE) taken off" in (instance.log_dir / "model_log.log").read_text()
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="session")
def predictor(tmp_path_factory):
    """The KServe predictor on free ports, as `make serve-kserve` starts it."""
    http_port, grpc_port = free_ports(2)
    folder = tmp_path_factory.mktemp("predictor")
    instance = Predictor(http_port, grpc_port, folder, folder)
    instance.start(timeout=240)
    yield instance
    instance.stop()
