"""Reduced-precision engines: int8 (its calibration and graph) and bf16, against fp32 and the paper protocol."""

import json
import shutil

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import srcnn.engine
from bench.precision import costs, dead_leaves, held_out
from srcnn import SRCNN, save_state_dict
from srcnn.bands import super_resolve_plane
from srcnn.choice import MAX_COST_DB, candidates, worst_costs
from srcnn.engine import (
    ENGINES,
    INT8_ARITHMETICS,
    GraphEngine,
    TorchEngine,
    cell_activations,
    load_engine,
    make_engine,
    onnx_graph,
    openvino_core,
    to_bfloat16,
)
from srcnn.imaging import resize_plane
from srcnn.quantize import FALLBACK_RANGE, LEVELS, equalized, quantize_weight, split_weight
from srcnn.weights import SCALES, SHIPPED, load_model, read_sidecar, sidecar_path, weight_file
from training.calibrate import main as calibrate_main
from training.data import DATA_DIR, ground_truth_y, list_images, read_y
from training.evaluate import EvaluateConfig, engine_table, evaluate


@pytest.fixture(scope="module", params=SCALES, ids=lambda scale: f"x{scale}")
def scale(request):
    return request.param


def network_input(scale, size):
    """What the engine sees: a crop of a Set14 photograph's bicubic upscale by `scale`, (height, width) = size."""
    y = read_y(list_images(DATA_DIR / "Set14")[2])
    low = resize_plane(y, (y.shape[1] // scale, y.shape[0] // scale))
    return resize_plane(low, (low.shape[1] * scale, low.shape[0] * scale))[: size[0], : size[1]]


REDUCED = [name for name, (_, precision) in ENGINES["cpu"].items() if precision != "fp32"]
INT8 = [name for name, (_, precision) in ENGINES["cpu"].items() if precision in INT8_ARITHMETICS]
OPENVINO_INT8 = [name for name in INT8 if name.startswith("openvino")]


@pytest.mark.parametrize("name", REDUCED)
@pytest.mark.parametrize("size, tile", [((200, 232), 64), ((101, 77), 48), ((33, 300), 256), ((1, 9), 16)])
def test_tiled_equals_one_full_size_pass_of_the_same_engine(scale, name, size, tile):
    engine = load_engine(weight_file(SHIPPED, scale), name=name)
    plane = network_input(scale, size)
    tiled = super_resolve_plane(engine, plane, tile)
    multiple = engine.multiple  # one pass needs whole phases: pad the plane's far edges, then crop
    padded_size = [-(-side // step) * step for side, step in zip(size, multiple)]
    window = np.pad(
        plane / 255.0,
        [(engine.border, engine.border + padded - side) for side, padded in zip(size, padded_size)],
        mode="edge",
    ).astype(np.float32)
    whole = engine(window)[: size[0], : size[1]] * 255.0
    assert engine.fallbacks == 0  # every tile ran in the engine's own precision
    assert np.abs(tiled - whole).max() <= 1e-3


def pixel_patterns(scale, side=64):
    """What drives int8 past its range: full-contrast 1-pixel patterns and uniform noise, as the network sees
    them after the bicubic upscale."""
    rows, columns = np.indices((side, side))
    patterns = {
        "checkerboard": (rows + columns) % 2,
        "2-pixel checkerboard": (rows // 2 + columns // 2) % 2,
        "stripes": columns % 2,
        "noise": np.random.default_rng(scale).random((side, side)),
    }
    return {
        name: resize_plane((pattern * 255).astype(np.float32), (side * scale, side * scale))
        for name, pattern in patterns.items()
    }


@pytest.mark.slow  # a second each: an engine built and run on large planes
@pytest.mark.parametrize("name", INT8)
def test_int8_runs_a_tile_past_its_calibrated_range_in_fp32(scale, name):
    int8 = load_engine(weight_file(SHIPPED, scale), name=name, engine_threads=1)
    fp32 = int8.fp32  # the same runtime's fp32 engine
    planes = {"photograph": network_input(scale, (256, 256)), **pixel_patterns(scale, 256 // scale)}
    for pattern, plane in planes.items():  # at the engine's own tile (256²: one tile a pattern)
        before = int8.fallbacks
        mine, theirs = super_resolve_plane(int8, plane), super_resolve_plane(fp32, plane)
        if pattern == "photograph":
            assert int8.fallbacks == before and 0 < np.abs(mine - theirs).max() < 6.0
        else:
            assert int8.fallbacks > before and np.array_equal(mine, theirs), pattern


def checkerboard_window(scale, contrast, side=96):
    """A `side`² network input: a 1-pixel checkerboard of `contrast` about mid-grey, bicubic-upscaled by `scale`."""
    rows, columns = np.indices((side // scale, side // scale))
    board = (((rows + columns) % 2 - 0.5) * contrast + 0.5) * 255
    return resize_plane(board.astype(np.float32), (side, side)) / np.float32(255.0)


@pytest.mark.parametrize("name", OPENVINO_INT8)
def test_the_block_guard_finds_what_the_largest_first_layer_activation_says(scale, name):
    """OpenVINO's guard reads 8-bit block maxima and recomputes the blocks at the 8-bit top: its verdict is
    torch's on the whole first layer, for checkerboards whose contrast takes them under the 8-bit top, between it
    and the range, and past the range."""
    path = weight_file(SHIPPED, scale)
    engine, calibration = load_engine(path, name=name, engine_threads=1), read_sidecar(path)["int8"]
    first = equalized(load_model(path), calibration).convs[0]
    top, limit = (factor * calibration["input_step"] * LEVELS for factor in (1, FALLBACK_RANGE))
    largest = {}
    for contrast in (0.2, 0.3, 0.4, 0.5, 0.6, 1.0):
        window = checkerboard_window(scale, contrast)
        with torch.inference_mode():
            largest[contrast] = float(torch.relu(first(torch.from_numpy(window)[None, None])).max())
        assert engine.past_range(window, engine.run(window[None, None])[1]) == (largest[contrast] > limit), contrast
    assert min(largest.values()) < top and max(largest.values()) > limit
    assert any(top < value < limit for value in largest.values())  # checked block by block, and not past


def test_the_block_guard_sees_the_blocks_cut_short_at_a_windows_far_edges():
    path = weight_file(SHIPPED, 2)
    engine, calibration = load_engine(path, name="openvino-int8", engine_threads=1), read_sidecar(path)["int8"]
    window = np.full((98, 100), 0.5, np.float32)  # a first layer of 90 × 92: the last blocks 2 rows and 4 columns
    rows, columns = np.indices((8, 8))
    window[-8:, -8:] = (rows + columns) % 2  # full contrast in the far corner alone
    with torch.inference_mode():
        activations = torch.relu(
            equalized(load_model(path), calibration).convs[0](torch.from_numpy(window)[None, None])
        )
    past = np.argwhere(activations[0].numpy() > FALLBACK_RANGE * calibration["input_step"] * LEVELS)
    assert len(past) and past[:, 1].min() >= 88 and past[:, 2].min() >= 88  # in those blocks only
    assert engine.past_range(window, engine.run(window[None, None])[1])


def test_a_tile_with_more_cells_at_the_top_than_are_checked_runs_in_fp32(monkeypatch):
    engine = load_engine(weight_file(SHIPPED, 2), name="openvino-int8", engine_threads=1)
    window = checkerboard_window(2, 0.4)  # past the 8-bit top, not the range
    assert not engine.past_range(window, engine.run(window[None, None])[1])
    int8 = engine(window)
    monkeypatch.setattr(srcnn.engine, "MAX_CHECKED_CELLS", 10)
    assert np.array_equal(engine(window), engine.fp32(window)) and engine.fallbacks == 1
    assert not np.array_equal(int8, engine.fp32(window))


def test_cell_activations_are_the_first_layer_over_each_cells_block():
    generator = torch.Generator().manual_seed(0)
    plane, weight, bias = (
        torch.rand(37, 45, generator=generator),
        torch.randn(5, 9, 9, generator=generator),
        torch.randn(5),
    )
    expected = torch.nn.functional.conv2d(plane[None, None], weight[:, None], bias)[0].numpy()  # (5, 29, 37)
    cells = np.array([[0, 0, 0], [4, 1, 2], [2, 3, 4], [2, 3, 0]])  # the last two: blocks cut short at the edges
    found = cell_activations(plane.numpy(), weight.numpy(), bias.numpy(), cells).reshape(-1, 8, 8)
    for (channel, row, column), block in zip(cells, found):
        rows, columns = np.minimum(np.arange(8) + 8 * row, 28), np.minimum(np.arange(8) + 8 * column, 36)
        assert np.allclose(block, expected[channel][np.ix_(rows, columns)], atol=1e-4)


@pytest.mark.parametrize("block_guard", [False, True])
def test_openvino_keeps_the_quantizer_in_the_first_layer_only_with_the_block_guard(block_guard):
    weights = weight_file(SHIPPED, 2)
    graph = onnx_graph(load_model(weights), read_sidecar(weights)["int8"], block_guard=block_guard)
    core = openvino_core()
    compiled = core.compile_model(
        core.read_model(graph.SerializeToString(), b""), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    layers = [op.get_rt_info()["layerType"].astype(str) for op in compiled.get_runtime_model().get_ops()]
    assert ("FakeQuantize" in layers) == (not block_guard)  # a FakeQuantize of its own: a pass over the fp32 layer


@pytest.mark.slow  # Set5 and Set14 through the engines
@pytest.mark.parametrize("name", OPENVINO_INT8)
def test_photographs_run_int8_throughout(scale, name):
    """The range guard recomputes at most 2% of Set5's and Set14's tiles in fp32, at the int8 engines' tile."""
    int8 = load_engine(weight_file(SHIPPED, scale), name=name, engine_threads=1)  # 256² tiles, as served
    tiles = 0
    for set_name in ("Set5", "Set14"):
        for path in list_images(DATA_DIR / set_name):
            y = read_y(path)
            low = resize_plane(y, (y.shape[1] // scale, y.shape[0] // scale))
            plane = resize_plane(low, (y.shape[1], y.shape[0]))
            super_resolve_plane(int8, plane)
            tiles += len(range(0, y.shape[0], int8.tile)) * len(range(0, y.shape[1], int8.tile))
    assert tiles > 80 and int8.fallbacks <= 0.02 * tiles


@pytest.mark.slow  # Set5 and Set14 through the engines
def test_the_engines_auto_may_choose_cost_what_their_sidecars_say_and_at_most_the_limit_on_set5(scale):
    chosen, excluded = candidates("auto", "cpu", worst_costs(SHIPPED))
    assert {"openvino-int8", "openvino-int8-bf16", "onnxruntime-int8"} <= set(chosen)  # `make evaluate-precision`
    assert set(excluded) == {"openvino-bf16", "torch-bf16"}  # 0.048 dB at ×2 on Set5
    records = evaluate(
        EvaluateConfig(DATA_DIR, ("Set5",), (scale,), ("srcnn",), SHIPPED, None, "cpu", ("onnxruntime-fp32", *chosen))
    )
    psnr = {record["engine"]: record["psnr_y"] for record in records}
    recorded = read_sidecar(weight_file(SHIPPED, scale))["costs"]["engines"]
    for name in chosen:
        assert psnr["onnxruntime-fp32"] - psnr[name] <= MAX_COST_DB
        assert psnr["onnxruntime-fp32"] - psnr[name] == pytest.approx(recorded[name]["Set5"], abs=1e-3)


def test_dead_leaves_cover_the_picture_with_many_leaves_the_same_for_a_seed():
    picture = dead_leaves(0)
    assert picture.shape == (256, 256, 3) and picture.dtype == np.uint8
    assert not (picture == 0).all(axis=-1).any()  # no pixel of the black ground left
    assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 5_000  # leaves and their anti-aliased edges
    assert np.array_equal(picture, dead_leaves(0)) and not np.array_equal(picture, dead_leaves(1))


@pytest.mark.slow  # 8 pictures and 11 photographs through two engines
def test_the_engines_auto_may_choose_cost_at_most_the_limit_on_unseen_images(scale):
    """Dead leaves (bench.precision) and T91's held-out photographs: neither the recorded costs nor the int8
    calibration read them."""
    chosen, _ = candidates("auto", "cpu", worst_costs(SHIPPED))
    sets = {"dead leaves": [ground_truth_y(dead_leaves(seed)) for seed in range(8)], "T91": held_out(DATA_DIR)}
    for name in chosen:
        for set_name, cost in costs(sets, SHIPPED, name, scale).items():
            assert cost <= MAX_COST_DB, (name, set_name)


def test_the_engine_table_gives_each_cost_against_fp32():
    records = [
        {"set": "Set5", "scale": 2, "method": "srcnn", "engine": name, "psnr_y": psnr}
        for name, psnr in (("onnxruntime-fp32", 36.93), ("openvino-int8", 36.915), ("torch-bf16", 36.90))
    ]
    rows = engine_table(records).splitlines()
    assert rows[0] == (
        "| set | scale | onnxruntime-fp32 PSNR-Y (dB) | openvino-int8 PSNR-Y (dB) | openvino-int8 cost "
        "(dB) | torch-bf16 PSNR-Y (dB) | torch-bf16 cost (dB) |"
    )
    assert rows[2] == "| Set5 | ×2 | 36.930 | 36.915 | 0.015 | 36.900 | 0.030 |"


def test_the_equalized_network_computes_the_same_function():
    torch.manual_seed(0)
    model = SRCNN().eval()
    calibration = {
        "first_factors": torch.rand(64).add(0.05).tolist(),
        "mapping_factors": torch.rand(32).add(0.05).tolist(),
        "bias_correction": [0.0] * 32,
    }
    x = torch.rand(1, 1, 40, 40)
    with torch.inference_mode():
        assert torch.allclose(equalized(model, calibration)(x), model(x), atol=1e-5)
        shifted = equalized(model, {**calibration, "bias_correction": [0.5] * 32})
        assert not torch.allclose(shifted(x), model(x), atol=1e-3)


def test_weights_are_rounded_per_output_channel():
    weight = torch.tensor([[1.0, -0.5, 0.25, 0.0], [10.0, -5.0, 2.5, 0.0]])[:, :, None, None]
    integers, steps = quantize_weight(weight)
    assert integers.dtype == torch.int8
    assert integers[:, :, 0, 0].tolist() == [[127, -64, 32, 0], [127, -64, 32, 0]]  # 63.5 rounds to even: 64
    assert steps.tolist() == pytest.approx([1 / 127, 10 / 127])


def test_onnx_runtime_runs_the_mapping_layer_as_one_int8_convolution(tmp_path):
    calibration = json.loads(sidecar_path(weight_file(SHIPPED, 2)).read_text())["int8"]
    options = onnxruntime.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    onnxruntime.InferenceSession(
        onnx_graph(load_model(weight_file(SHIPPED, 2)), calibration).SerializeToString(),
        options,
        providers=["CPUExecutionProvider"],
    )
    operators = [node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node]
    assert operators.count("QLinearConv") == 1 and operators.count("Conv") == 2


def test_a_weight_split_in_two_int8_halves_adds_up_to_it():
    weight = torch.randn(8, 32, 6, 8, generator=torch.Generator().manual_seed(0))
    integers, steps = split_weight(weight)
    assert integers.dtype == torch.int8 and integers.shape == (16, 32, 6, 8)
    halves = integers.float() * steps[:, None, None, None]
    largest = weight.abs().amax(dim=(1, 2, 3))[:, None, None, None]
    assert ((halves[:8] + halves[8:] - weight).abs() <= largest / 64_000).all()
    assert ((halves[:8] - weight).abs() > largest / 1_000).any()  # the first half alone is int8's rounding


def openvino_convolutions(graph):
    """{convolution: (the precision it computes in, its output's)} as OpenVINO's CPU plugin runs `graph`."""
    core = openvino_core()
    compiled = core.compile_model(
        core.read_model(graph.SerializeToString(), b""), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    return {
        op.get_friendly_name().split("/")[0]: tuple(
            op.get_rt_info()[key].astype(str) for key in ("runtimePrecision", "outputPrecisions")
        )
        for op in compiled.get_runtime_model().get_ops()
        if op.get_rt_info()["layerType"].astype(str) == "Convolution"
    }


@pytest.mark.parametrize("bf16_first", [False, True])
def test_openvino_runs_the_mapping_and_reconstruction_layers_in_8_bits_and_the_first_in_fp32_or_bf16(bf16_first):
    # Where the CPU has no bfloat16 instructions, OpenVINO's plugin says so and computes the rounded operands in fp32.
    has_bf16 = "BF16" in openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    first = "bf16" if bf16_first and has_bf16 else "f32"
    weights = weight_file(SHIPPED, 2)
    graph = onnx_graph(  # as OpenVinoEngine builds it
        load_model(weights),
        read_sidecar(weights)["int8"],
        int8_reconstruction=True,
        bf16_first=bf16_first,
        block_guard=True,
    )
    # The first layer's output (its bias added) and the last layer's stay fp32: bfloat16 would round them.
    assert openvino_convolutions(graph) == {
        "conv0" if not bf16_first else "conv0_bf16": (first, "f32"),
        "conv1": ("u8", "u8"),
        "out_halves": ("u8", "f32"),
    }


def test_bfloat16_rounds_to_nearest_ties_to_even_as_torch_does():
    step = 2.0**-8  # bfloat16's spacing in [1, 2) is 2⁻⁷: these fall on, between and halfway between its values
    values = np.array([1 + k * step / 2 for k in range(-8, 17)] + [-0.3, 0.2 + 2**-10 * 0.7, 3e-39], np.float32)
    values = np.concatenate([values, np.random.default_rng(0).normal(size=1000).astype(np.float32)])
    expected = torch.from_numpy(values).to(torch.bfloat16).float().numpy()
    assert np.array_equal(to_bfloat16(values), expected)
    assert not np.array_equal(values.view(np.uint32) & 0xFFFF0000, expected.view(np.uint32))  # not truncation


@pytest.mark.parametrize("name", INT8)
def test_every_shipped_weight_file_is_calibrated_for_its_own_bytes(scale, name):
    engine = load_engine(weight_file(SHIPPED, scale), name=name)
    assert isinstance(engine, GraphEngine) and (engine.name, engine.arithmetic) == (name, ENGINES["cpu"][name][1])


@pytest.fixture
def copied_weights(tmp_path):
    """The shipped ×2 weights and sidecar (with its calibration), copied."""
    for path in (weight_file(SHIPPED, 2), sidecar_path(weight_file(SHIPPED, 2))):
        shutil.copy2(path, tmp_path / path.name)
    return weight_file(tmp_path, 2)


def test_a_calibration_of_other_weights_is_refused(copied_weights):
    model = load_model(copied_weights)
    with torch.no_grad():
        model.convs[0].bias.add_(0.01)
    save_state_dict(model, copied_weights)
    assert load_engine(copied_weights, name="onnxruntime-fp32").arithmetic == "fp32"
    for name in INT8:
        with pytest.raises(ValueError, match="make calibrate"):
            load_engine(copied_weights, name=name)
    assert worst_costs(copied_weights.parent) == {}  # the costs were measured for other weights


def test_calibrate_writes_a_calibration_the_engine_accepts(copied_weights, tmp_path):
    t91 = tmp_path / "data" / "T91"
    t91.mkdir(parents=True)
    for path in list_images(DATA_DIR / "T91")[:4]:  # the first is the validation split's
        shutil.copy2(path, t91 / path.name)
    record = json.loads(sidecar_path(copied_weights).read_text())
    del record["int8"]
    sidecar_path(copied_weights).write_text(json.dumps(record))
    calibrate_main(["--weights", str(copied_weights), "--scales", "2", "--data-dir", str(tmp_path / "data")])
    written = json.loads(sidecar_path(copied_weights).read_text())
    assert written["scale"] == record["scale"]  # the rest of the sidecar is kept
    assert written["int8"]["images"].startswith("T91 training split, 3 images")
    assert max(written["int8"]["first_factors"]) == pytest.approx(1.0)
    plane = read_y(list_images(DATA_DIR / "Set5")[0])[:96, :96]
    int8 = super_resolve_plane(load_engine(copied_weights, name="onnxruntime-int8"), plane)
    fp32 = super_resolve_plane(load_engine(copied_weights, name="onnxruntime-fp32"), plane)
    assert 10 * np.log10(255**2 / np.mean((int8 - fp32) ** 2)) > 40  # PSNR of int8 against fp32


def test_a_precision_the_device_cannot_run_is_refused():
    with pytest.raises(ValueError, match="fp16.*cpu"):
        make_engine(SRCNN(), name="torch-fp16")
    for name in INT8:
        with pytest.raises(ValueError, match="calibration"):
            make_engine(SRCNN(), name=name)
    bf16 = make_engine(SRCNN(), name="torch-bf16")
    assert isinstance(bf16, TorchEngine) and (bf16.name, bf16.arithmetic) == ("torch-bf16", "bf16")
