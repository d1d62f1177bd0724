"""Images the tests make themselves: gradients, edges, text and noise, deterministic per seed."""

import os

import numpy as np
import pytest
import torch
import yaml
from PIL import Image, ImageDraw

from serving import MODEL_CONFIG as MODEL_CONFIG_FILE
from serving.server import private_server
from srcnn import SRCNN

MODEL_CONFIG = yaml.safe_load(MODEL_CONFIG_FILE.read_text())


# The tiers (registered in pyproject.toml): `make test` runs them all; `make test-fast` leaves out these two.
SERVER_FIXTURES = {"server", "own_server", "kserve"}  # a real TorchServe, started for the test
SERVER_MODULES = {"test_readme", "test_faults", "test_hostile"}  # sequences and servers of their own
SLOW_MODULES = {"test_train", "test_fuzz", "test_scaling", "test_evaluate", "test_pictures", "test_compare"}


def pytest_collection_modifyitems(items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        if module in SERVER_MODULES or SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.server)
        if module in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True, scope="session")
def engine_measurements(tmp_path_factory):
    """The engine choice's cache (srcnn.choice) in a folder of the test run's own, for every process it starts:
    the suite measures this machine once and leaves the user's cache alone."""
    os.environ["SRCNN_CACHE_DIR"] = str(tmp_path_factory.mktemp("engine-cache"))
    yield
LIMITS = MODEL_CONFIG["handler"]  # the shipped handler settings, limits and all


def make_scene(width, height, seed=0, noise=6.0):
    """An RGB test card: colour gradients, hard edges, a circle, text and Gaussian noise of `noise` levels."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, width)[None, :]
    y = np.linspace(0, 1, height)[:, None]
    pixels = np.stack([255 * x * np.ones_like(y), 255 * y * np.ones_like(x), 128 + 100 * np.sin(9 * x + 5 * y)], -1)
    pixels += rng.normal(0, noise, pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.rectangle([width // 8, height // 8, width // 3, height // 2], fill=(250, 250, 30))
    draw.ellipse([width // 2, height // 4, width - 4, height - 4], outline=(10, 10, 10), width=3)
    draw.line([0, height - 1, width - 1, 0], fill=(255, 255, 255), width=2)
    for row in range(4, height - 10, 14):
        draw.text((4, row), "SRCNN 9-5-5", fill=(0, 0, 0))
    return image


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


def predictions_url(server):
    return f"{server.inference_url}/predictions/srcnn"


def worker_pids(server):
    return sorted(worker["pid"] for worker in server.workers())
