"""Images the tests make themselves: gradients, edges, text and noise, deterministic per seed."""

import socket

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from handler.deploy import ROOT, Server, build_archive, read_properties
from srcnn import SRCNN


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


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def make_server(workdir, drop=(), **settings):
    """A TorchServe on the repository's config.properties and srcnn.mar, moved to free loopback ports, a
    private model store, log folder and pid file under `workdir`; `settings` override properties and `drop`
    removes some. Not started."""
    build_archive(workdir / "model_store")
    inference, management, metrics, grpc_inference, grpc_management = free_ports(5)
    properties = read_properties(ROOT / "config.properties")
    properties.update(
        inference_address=f"http://127.0.0.1:{inference}",
        management_address=f"http://127.0.0.1:{management}",
        metrics_address=f"http://127.0.0.1:{metrics}",
        grpc_inference_port=str(grpc_inference),
        grpc_management_port=str(grpc_management),
        model_store=str(workdir / "model_store"),
        **settings,
    )
    config = workdir / "config.properties"
    config.write_text("".join(f"{key}={value}\n" for key, value in properties.items() if key not in drop))
    return Server(config=config, workdir=workdir, tmpdir=workdir / "tmp")


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One running TorchServe shared by the real-server tests; always stopped at the end."""
    instance = make_server(tmp_path_factory.mktemp("torchserve"))
    instance.start(timeout=240)
    yield instance
    instance.stop()


def predictions_url(server):
    return f"{server.inference_url}/predictions/srcnn"


def worker_pids(server):
    return [worker["pid"] for worker in server.workers()]
