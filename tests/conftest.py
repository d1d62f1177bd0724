"""Images the tests make themselves: gradients, edges, text and noise, deterministic per seed."""

import io
import os

import numpy as np
import pytest
import torch
import yaml
from PIL import Image, ImageCms, ImageDraw

from serving import MODEL_CONFIG as MODEL_CONFIG_FILE
from serving.predictor import Predictor
from serving.server import free_ports, private_server
from srcnn import SRCNN

MODEL_CONFIG = yaml.safe_load(MODEL_CONFIG_FILE.read_text())


# The tiers (registered in pyproject.toml): `make test` runs them all; `make test-fast` leaves out these two.
# A real server, started for the test: TorchServe, or the KServe predictor.
SERVER_FIXTURES = {"server", "own_server", "kserve", "enveloped_server", "predictor", "target"}
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


@pytest.fixture(autouse=True)
def torch_threads():
    """torch's thread count is process-wide and a lane of torch engines sets it to 1 (srcnn.engine): give the
    next test the count it had."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
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


SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()  # an ICC profile's bytes


def make_photo(width, height, orientation=6):
    """A phone photograph's JPEG bytes: the scene stored sideways (`orientation` 6 means "turn it 90° clockwise to
    view"), an sRGB ICC profile, EXIF Make, DateTime, its pixel dimensions and 72 dpi. Viewed upright it is
    `height` wide and `width` high."""
    exif = Image.Exif()
    exif.update({0x010F: "Phonemaker", 0x0132: "2026:12:01 10:20:30", 0x0112: orientation, 0x011A: 72.0,
                 0x011B: 72.0})
    exif.get_ifd(0x8769).update({0xA002: width, 0xA003: height})
    buffer = io.BytesIO()
    make_scene(width, height).save(buffer, "JPEG", quality=95, icc_profile=SRGB, exif=exif.tobytes(), dpi=(72, 72))
    return buffer.getvalue()


def assert_faithful(answer, size):
    """`answer` (image bytes) is an upright `size` image that carries make_photo's profile and metadata."""
    with Image.open(io.BytesIO(answer)) as image:
        exif = image.getexif()
        assert image.size == size
        assert image.info.get("icc_profile") == SRGB
        assert (exif.get(0x010F), exif.get(0x0132), exif.get(0x0112)) == ("Phonemaker", "2026:12:01 10:20:30", 1)
        assert {tag: exif.get_ifd(0x8769).get(tag) for tag in (0xA002, 0xA003)} == {0xA002: size[0], 0xA003: size[1]}
        return image.info, exif


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


def predictions_url(server):
    return f"{server.inference_url}/predictions/srcnn"


def worker_pids(server):
    return sorted(worker["pid"] for worker in server.workers())
