"""srcnn/engine.py's graphs and tiles: tiled equals one pass at any tile, the packed last layer, which engine
is built by default and by name."""

import numpy as np
import pytest
import torch

from helpers import Recording
from srcnn import SRCNN
from srcnn.bands import TILE_STEP, last_rows, super_resolve_plane, tile_shape
from srcnn.engine import PHASES, OnnxEngine, OpenVinoEngine, TorchEngine, make_engine, onnx_graph

ENGINES = {"onnxruntime": OnnxEngine, "openvino": OpenVinoEngine, "torch": TorchEngine}  # fp32 each


def untiled(model, plane):
    with torch.inference_mode():
        return model(torch.from_numpy(plane / 255.0)[None, None], full_size=True)[0, 0].numpy()


def trained_like(seed):
    torch.manual_seed(seed)
    model = SRCNN().eval()
    with torch.no_grad():  # larger reconstruction weights than the N(0, 0.001) start, as trained ones have
        model.convs[-1].weight.mul_(50)
    return model


@pytest.fixture(scope="module", params=[2, 3, 4], ids=lambda scale: f"x{scale}")
def model(request):
    # One network per scale: the same architecture, different weights (as the shipped files are).
    return trained_like(request.param)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "size",
    [
        (1, 1),
        (1, 300),
        (300, 1),
        (7, 33),
        (128, 128),
        (256, 256),
        (257, 255),
        pytest.param((2 * 256, 2 * 256 + 1), marks=pytest.mark.slow),  # 0.5-1 s each
        (3 * 256 - 5, 17),
        (261, 259),
    ],
)
def test_tiled_equals_one_full_size_pass(model, engine, size):
    plane = np.random.default_rng(sum(size)).uniform(16, 235, size).astype(np.float32)
    tiled = super_resolve_plane(ENGINES[engine](model), plane) / 255.0
    assert tiled.shape == size and tiled.dtype == np.float32
    reference = untiled(model, plane)
    assert np.abs(reference).max() > 0.05  # the network does something
    assert np.abs(tiled - reference).max() <= 1e-5


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("tile", [16, 48, 96])
def test_any_tile_size_gives_the_same_answer(model, engine, tile):
    plane = np.random.default_rng(0).uniform(16, 235, (101, 77)).astype(np.float32)
    result = super_resolve_plane(ENGINES[engine](model), plane, tile) / 255
    assert np.abs(result - untiled(model, plane)).max() <= 1e-5


def test_a_tile_the_engine_cannot_split_is_refused():
    with pytest.raises(ValueError, match="multiple"):
        super_resolve_plane(OnnxEngine(SRCNN()), np.zeros((40, 40), np.float32), 18)


def test_packed_graph_in_valid_mode_matches_the_module():
    model = trained_like(5)
    engine = OnnxEngine(model)
    window = np.random.default_rng(1).uniform(0, 1, (2 * 8 + 6, 2 * 8 + 12)).astype(np.float32)
    with torch.inference_mode():
        reference = model(torch.from_numpy(window)[None, None])[0, 0].numpy()
    assert engine(window).shape == (6, 12)
    assert np.abs(engine(window) - reference).max() <= 1e-5  # float32 sums in another order (AVX2: 1.01e-6)


def test_packed_graph_has_one_output_channel_per_phase():
    graph = onnx_graph(trained_like(0))
    last = {initializer.name: list(initializer.dims) for initializer in graph.graph.initializer}["w2"]
    rows, columns = PHASES
    assert last == [rows * columns, 32, 5 + rows - 1, 5 + columns - 1]


def test_make_engine_defaults_to_the_cpus_reference_and_builds_each_named_engine():
    assert isinstance(make_engine(SRCNN()), OnnxEngine)
    assert isinstance(make_engine(SRCNN(), name="openvino-fp32"), OpenVinoEngine)
    bf16 = make_engine(SRCNN(), name="openvino-bf16")
    assert (type(bf16), bf16.name, bf16.arithmetic) == (OpenVinoEngine, "openvino-bf16", "bf16")


def test_tile_shape_bounds_the_shapes_the_network_sees():
    tile = 128
    assert tile_shape(1000, 1000, tile) == (tile, tile)
    assert tile_shape(1, 1000, tile) == (1, tile)
    assert tile_shape(15, 16, tile) == (15, 16)
    assert tile_shape(33, 20, tile) == (48, 32)
    assert tile_shape(5, 13, tile, PHASES) == (6, 16)  # sides below TILE_STEP round up to the engine's multiple
    assert tile_shape(1000, 300, tile) == (tile, 112)  # 3 tiles of 112 columns, not 3 of 128
    shapes = set()
    for height in range(1, 400):
        for width in range(1, 400):
            rows, columns = tile_shape(height, width, tile)
            shapes |= {(rows, columns), (last_rows(height, rows, 1), columns)}
    assert len(shapes) == (TILE_STEP - 1 + tile // TILE_STEP) ** 2


def test_tiles_pad_a_plane_by_less_than_a_step_a_tile():
    engine = Recording()
    super_resolve_plane(engine, np.zeros((782, 1172), np.float32), 256)
    # 1,172 columns in 5 tiles of 240 (not 5 of 256); 782 rows in 3 bands of 208 and a last of 160 (158 rounded up),
    # not 3 of 256 and a last of 14.
    assert sorted(set(engine.windows)) == [(160 + 16, 240 + 16), (208 + 16, 240 + 16)]
    assert len(engine.windows) == 4 * 5


@pytest.mark.parametrize(
    "height, lanes, rows, bands",
    [
        (782, 2, 208, 4),  # 3 bands of 256 and one of 14 left a lane idle for most of a band
        (1152, 2, 192, 6),  # 4 bands of 256 and one of 128: 5, three for one lane
        (156, 2, 80, 2),  # one band: one lane
        (1024, 16, 64, 16),  # many cores: a band each, not 4 bands for 16 lanes
        (1024, 1, 256, 4),
        (40, 3, 32, 2),  # no band under TILE_STEP rows
        (20, 3, 32, 1),
    ],
)
def test_the_rows_are_cut_into_bands_in_turns_of_the_lanes(height, lanes, rows, bands):
    assert tile_shape(height, 1000, 256, (2, 4), lanes) == (rows, 256)
    assert -(-height // rows) == bands
