"""Reduced-precision engines: int8 (its calibration and graph) and bf16, against fp32 and the paper protocol."""

import json
import shutil

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from srcnn import SRCNN, save_state_dict
from srcnn.engine import DEFAULT_PRECISION, OnnxEngine, TorchEngine, load_engine, make_engine, onnx_graph
from srcnn.imaging import resize_plane
from srcnn.quantize import equalized, quantize_weight
from srcnn.upscale import super_resolve_plane
from srcnn.weights import SCALES, SHIPPED, load_model, sidecar_path, weight_file
from training.calibrate import main as calibrate_main
from training.data import DATA_DIR, list_images, read_y
from training.evaluate import EvaluateConfig, evaluate, precision_table


@pytest.fixture(scope="module", params=SCALES, ids=lambda scale: f"x{scale}")
def scale(request):
    return request.param


def network_input(scale, size):
    """What the engine sees: a crop of a Set14 photograph's bicubic upscale by `scale`, (height, width) = size."""
    y = read_y(list_images(DATA_DIR / "Set14")[2])
    low = resize_plane(y, (y.shape[1] // scale, y.shape[0] // scale))
    return resize_plane(low, (low.shape[1] * scale, low.shape[0] * scale))[: size[0], : size[1]]


@pytest.mark.parametrize("precision", ["int8", "bf16"])
@pytest.mark.parametrize("size, tile", [((200, 232), 64), ((101, 77), 48), ((33, 300), 256), ((1, 9), 16)])
def test_tiled_equals_one_full_size_pass_of_the_same_engine(scale, precision, size, tile):
    engine = load_engine(weight_file(SHIPPED, scale), precision=precision)
    plane = network_input(scale, size)
    tiled = super_resolve_plane(engine, plane, tile)
    multiple = engine.multiple  # one pass needs whole phases: pad the plane's far edges, then crop
    padded_size = [-(-side // step) * step for side, step in zip(size, multiple)]
    window = np.pad(plane / 255.0, [(engine.border, engine.border + padded - side)
                                    for side, padded in zip(size, padded_size)], mode="edge").astype(np.float32)
    whole = engine(window)[: size[0], : size[1]] * 255.0
    assert getattr(engine, "fallbacks", 0) == 0  # every tile ran in the engine's own precision
    assert np.abs(tiled - whole).max() <= 1e-3


def test_int8_runs_a_tile_past_its_calibrated_range_in_fp32():
    int8 = load_engine(weight_file(SHIPPED, 2), precision="int8")
    fp32 = load_engine(weight_file(SHIPPED, 2), precision="fp32")
    checkerboard = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.float32)
    photograph = network_input(2, (64, 64))
    for plane, falls_back in ((photograph, False), (checkerboard, True)):
        before = int8.fallbacks
        mine, theirs = super_resolve_plane(int8, plane, 32), super_resolve_plane(fp32, plane, 32)
        assert (int8.fallbacks > before) == falls_back
        assert np.array_equal(mine, theirs) == falls_back
        assert np.abs(mine - theirs).max() < 3.0


def test_the_default_precision_costs_at_most_two_hundredths_of_a_db_on_set5(scale):
    default = DEFAULT_PRECISION["cpu"]
    records = evaluate(EvaluateConfig(DATA_DIR, ("Set5",), (scale,), ("srcnn",), SHIPPED, None, "cpu",
                                      ("fp32", default)))
    psnr = {record["precision"]: record["psnr_y"] for record in records}
    assert psnr["fp32"] - psnr[default] <= 0.02


def test_the_precision_table_gives_each_cost_against_fp32():
    records = [{"set": "Set5", "scale": 2, "method": "srcnn", "precision": precision, "psnr_y": psnr}
               for precision, psnr in (("fp32", 36.93), ("int8", 36.915), ("bf16", 36.90))]
    rows = precision_table(records).splitlines()
    assert rows[0] == ("| set | scale | fp32 PSNR-Y (dB) | int8 PSNR-Y (dB) | int8 cost (dB) | bf16 PSNR-Y (dB) "
                       "| bf16 cost (dB) |")
    assert rows[2] == "| Set5 | ×2 | 36.930 | 36.915 | 0.015 | 36.900 | 0.030 |"


def test_the_equalized_network_computes_the_same_function():
    torch.manual_seed(0)
    model = SRCNN().eval()
    calibration = {"first_factors": torch.rand(64).add(0.05).tolist(),
                   "mapping_factors": torch.rand(32).add(0.05).tolist(), "bias_correction": [0.0] * 32}
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
    onnxruntime.InferenceSession(onnx_graph(load_model(weight_file(SHIPPED, 2)), calibration).SerializeToString(),
                                 options, providers=["CPUExecutionProvider"])
    operators = [node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node]
    assert operators.count("QLinearConv") == 1 and operators.count("Conv") == 2


def test_every_shipped_weight_file_is_calibrated_for_its_own_bytes(scale):
    engine = load_engine(weight_file(SHIPPED, scale), precision="int8")
    assert isinstance(engine, OnnxEngine) and engine.precision == "int8"


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
    assert load_engine(copied_weights, precision="fp32").precision == "fp32"
    with pytest.raises(ValueError, match="make calibrate"):
        load_engine(copied_weights, precision="int8")
    with pytest.raises(ValueError, match="make calibrate"):
        load_engine(copied_weights, precision="auto")


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
    int8 = super_resolve_plane(load_engine(copied_weights, precision="int8"), plane)
    fp32 = super_resolve_plane(load_engine(copied_weights, precision="fp32"), plane)
    assert 10 * np.log10(255**2 / np.mean((int8 - fp32) ** 2)) > 40  # PSNR of int8 against fp32


def test_a_precision_the_device_cannot_run_is_refused():
    with pytest.raises(ValueError, match="fp16.*cpu"):
        make_engine(SRCNN(), precision="fp16")
    with pytest.raises(ValueError, match="calibration"):
        make_engine(SRCNN(), precision="int8")
    bf16 = make_engine(SRCNN(), precision="bf16")
    assert isinstance(bf16, TorchEngine) and bf16.precision == "bf16"
