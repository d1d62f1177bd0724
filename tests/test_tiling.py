import numpy as np
import pytest
import torch

from srcnn import SRCNN
from srcnn.upscale import TILE, super_resolve_plane, tile_shape


def untiled(model, plane):
    with torch.inference_mode():
        return model(torch.from_numpy(plane / 255.0)[None, None], full_size=True)[0, 0].numpy()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(3)
    model = SRCNN().eval()
    with torch.no_grad():  # larger reconstruction weights than the N(0, 0.001) start, as trained ones have
        model.convs[-1].weight.mul_(50)
    return model


@pytest.mark.parametrize("size", [(1, 1), (1, 300), (300, 1), (7, 33), (TILE, TILE), (TILE + 1, TILE - 1),
                                  (2 * TILE, 2 * TILE + 1), (3 * TILE - 5, 17), (261, 259)])
def test_tiled_equals_one_full_size_pass(model, size):
    plane = np.random.default_rng(sum(size)).uniform(16, 235, size).astype(np.float32)
    tiled = super_resolve_plane(model, plane) / 255.0
    assert tiled.shape == size and tiled.dtype == np.float32
    reference = untiled(model, plane)
    assert np.abs(reference).max() > 0.05  # the network does something
    assert np.abs(tiled - reference).max() <= 1e-5


@pytest.mark.parametrize("tile", [16, 48, 96])
def test_any_tile_size_gives_the_same_answer(model, tile):
    plane = np.random.default_rng(0).uniform(16, 235, (101, 77)).astype(np.float32)
    assert np.abs(super_resolve_plane(model, plane, tile) / 255 - untiled(model, plane)).max() <= 1e-5


def test_tile_shape_bounds_the_shapes_the_network_sees():
    assert tile_shape(1000, 1000) == (TILE, TILE)
    assert tile_shape(1, 1000) == (1, TILE)
    assert tile_shape(15, 16) == (15, 16)
    assert tile_shape(33, 20) == (48, 32)
    shapes = {tile_shape(h, w) for h in range(1, 400) for w in range(1, 400)}
    assert len(shapes) == (15 + TILE // 16) ** 2
