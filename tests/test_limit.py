"""The benchmark's limits (bench/limit.py): the layers it times are the network's, in the arithmetic named; the
instruction set's peak per CPU; an engine faster than its arithmetic's limit fails the run; a measurement keeps to
its time budget, and the pipeline timed alone does all but the network (bench/compute.py)."""

import time

import numpy as np
import pytest
import torch

from bench import compute
from bench.compute import CostsNothing, best_seconds, timed_rate
from bench.limit import DESIGNS, OnnxKernel, OpenVinoKernel, ceiling, checks, flop_per_cycle, layer_graph
from helpers import make_scene
from srcnn.bands import upscale
from srcnn.choice import best_in_turns
from srcnn.engine import load_engines, onnx_session, openvino_request
from srcnn.weights import SHIPPED, load_model, weight_file


@pytest.mark.parametrize(
    ("vendor", "family", "model", "flags", "expected"),
    [
        ("AuthenticAMD", 23, 0x01, {"avx2", "fma"}, 16),  # Zen 1: two 128-bit FMA pipes
        ("AuthenticAMD", 23, 0x31, {"avx2", "fma"}, 32),  # Zen 2
        ("AuthenticAMD", 25, 0x01, {"avx2", "fma"}, 32),  # Zen 3
        ("AuthenticAMD", 25, 0x11, {"avx2", "fma", "avx512f"}, 32),  # Zen 4: 512-bit FMAs split over two 256-bit pipes
        ("AuthenticAMD", 26, 0x02, {"avx2", "fma", "avx512f"}, 64),  # Zen 5: two 512-bit pipes
        ("GenuineIntel", 6, 0x8F, {"avx2", "fma", "avx512f", "amx_int8"}, 64),  # Sapphire Rapids
        ("GenuineIntel", 6, 0x9A, {"avx2", "fma"}, 32),
        ("CentaurHauls", 7, 0x3B, {"avx2"}, None),
    ],
)
def test_fp32_flop_a_cycle_by_cpu(vendor, family, model, flags, expected):
    assert flop_per_cycle(vendor, family, model, flags) == expected


@pytest.fixture(scope="module")
def network():
    return load_model(weight_file(SHIPPED, 2))


@pytest.mark.parametrize("index", [0, 1, 2])
def test_each_layer_timed_is_the_networks_layer(network, index):
    conv = network.convs[index]
    batch = np.random.default_rng(index).random((1, conv.in_channels, 24, 24), dtype=np.float32)
    with torch.inference_mode():
        expected = conv(torch.from_numpy(batch)).numpy()
    graph = layer_graph(conv, int8=False)
    np.testing.assert_allclose(onnx_session(graph, 1).run(None, {"x": batch})[0], expected, atol=1e-4)
    request = openvino_request(graph, 1)
    request.infer({0: batch})
    np.testing.assert_allclose(request.output_tensors[0].data, expected, atol=1e-4)


def test_the_int8_layer_timed_computes_the_mapping_layer_in_int8(network):
    conv = network.convs[1]
    batch = np.random.default_rng(1).random((1, conv.in_channels, 24, 24), dtype=np.float32)
    with torch.inference_mode():
        expected = torch.relu(conv(torch.from_numpy(batch))).numpy()
    answer = onnx_session(layer_graph(conv, int8=True), 1).run(None, {"x": batch})[0]
    step = 1 / 64  # the graph's activation step: inputs and outputs on a grid of 1/64, clipped at 255/64
    error = np.abs(answer - np.minimum(expected, 255 * step))
    assert error.max() < 0.5 and error.mean() < 2 * step
    assert np.array_equal(answer / step, np.round(answer / step))  # every output on the int8 grid: quantized


def test_an_engine_faster_than_its_arithmetics_limit_or_its_designs_ceiling_fails():
    found = {"limits": {"fp32": 200.0, "bf16": 300.0, "int8": 600.0}, "ceilings": {"int8": 450.0, "int8-bf16": 520.0}}
    results = checks(
        found,
        {
            "openvino-int8, 256² tiles": ("int8", 470.0),
            "onnxruntime-fp32, 256² tiles": ("fp32", 250.0),
            "openvino-bf16, 256² tiles": ("bf16", 303.0),
            "openvino-int8-bf16, 256² tiles": ("int8-bf16", 520.0),
        },
    )
    assert [passed for _, passed in results] == [False, False, True, True]  # within 2% passes: timing noise
    assert results[0][0] == "openvino-int8, 256² tiles (470) within the int8 ceiling (450)"
    assert results[1][0] == "onnxruntime-fp32, 256² tiles (250) within the fp32 limit (200)"


def test_the_ceiling_runs_each_layer_at_its_arithmetics_limit(network):
    # Multiply-adds a pixel: 9·9·64 = 5,184 (fp32), 5·5·64·32 = 51,200 and 5·5·32 = 800 (int8); two FLOP each.
    seconds = 2 * 5_184 / 100 + 2 * 51_200 / 400 + 2 * 800 / 400
    assert ceiling(network, {"fp32": 100.0, "int8": 400.0}, DESIGNS["int8"]) == pytest.approx(2 * 57_184 / seconds)
    seconds = 2 * 5_184 / 200 + 2 * 51_200 / 400 + 2 * 800 / 400
    assert ceiling(network, {"bf16": 200.0, "int8": 400.0}, DESIGNS["int8-bf16"]) == pytest.approx(2 * 57_184 / seconds)
    assert ceiling(network, {"fp32": 100.0}, ("fp32", "fp32", "fp32")) == pytest.approx(100.0)


@pytest.mark.parametrize("kernel", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("int8", [False, True])
def test_a_kernel_time_is_its_convolutions_alone(network, kernel, int8):
    conv = network.convs[1]
    batch = np.random.default_rng(0).random((1, conv.in_channels, 132, 132), dtype=np.float32)
    graph = layer_graph(conv, int8=int8)
    timed = OnnxKernel(graph, batch, 1) if kernel == "onnxruntime" else OpenVinoKernel(graph, batch, 1, "fp32")
    walls = []
    for _ in range(3):
        start = time.perf_counter()
        timed()
        walls.append(time.perf_counter() - start)
    # A part of every run, so under the fastest run's wall time; in the graph's layouts, the convolution is
    # the bulk of it (the time of a whole run or of a layout change alone would fail one of these).
    assert 0.3 * min(walls) < timed.seconds() < min(walls)


def test_a_measurement_takes_no_call_past_its_budget_but_one():
    calls = []

    def call():
        calls.append(None)
        time.sleep(0.05)

    best_seconds(call, min_runs=3, budget=0.12)  # the warm-up and one or two timed calls
    assert 2 <= len(calls) <= 3
    calls.clear()
    best_seconds(call, min_runs=3, budget=0.01)
    assert len(calls) == 2  # the warm-up and the one timed call a measurement needs


def test_an_engine_past_the_forward_budget_is_timed_on_the_smallest_photographs_alone(monkeypatch):
    planes = [np.zeros((40, 40), np.float32), np.zeros((10, 10), np.float32), np.zeros((20, 20), np.float32)]
    sizes = []

    def run(plane):
        sizes.append(plane.size)
        time.sleep(0.05)

    assert timed_rate(run, planes, 1e9)[1] == 3
    assert sizes[0] == 100
    monkeypatch.setattr(compute, "FORWARD_BUDGET_S", 0.01)
    sizes.clear()
    rate, timed = timed_rate(run, planes, 1e9)
    assert timed == 1 and set(sizes) == {100}
    assert 100 / 0.05 * 0.9 <= rate <= 100 / 0.05  # GFLOP/s of 1e9 FLOP a pixel: the smallest plane's rate


def test_stages_timed_in_turns_keep_each_ones_fastest_call():
    calls, pauses = [], {"slow": iter([0.0, 0.2, 0.06, 0.12]), "quick": iter([0.0, 0.08, 0.02, 0.05])}

    def stage(name):
        def call():
            calls.append(name)
            time.sleep(next(pauses[name]))

        return call

    best = best_in_turns({"slow": stage("slow"), "quick": stage("quick")}, rounds=3)
    assert calls == ["slow", "quick"] * 4  # a warm-up of each, then each once a round
    assert 0.06 <= best["slow"] < 0.12 and 0.02 <= best["quick"] < 0.05


def test_the_pipeline_timed_alone_is_the_upscale_with_the_network_left_out():
    lanes = [load_engines(SHIPPED, engine_threads=1, name="onnxruntime-int8") for _ in range(2)]
    free = [{factor: CostsNothing(engine) for factor, engine in lane.items()} for lane in lanes]
    image = make_scene(64, 48)
    for scale in (2, 3, 4):  # each trained pass alone: the free network hands its bicubic input back
        answer = np.asarray(upscale(image, free, scale), np.int16)
        bicubic = np.asarray(upscale(image, None, scale), np.int16)
        assert answer.shape == bicubic.shape and np.abs(answer - bicubic).max() <= 1
        assert not np.array_equal(np.asarray(upscale(image, lanes, scale)), bicubic.astype(np.uint8))
