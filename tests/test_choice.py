"""The engine choice (srcnn.choice): forced measurements stand in for every kind of machine, so that a machine
without AMX tests how an AMX machine chooses and the reverse; no test asserts a speed."""

import json
import shutil

import numpy as np
import pytest

from srcnn import choice
from srcnn.bands import super_resolve_plane
from srcnn.choice import (
    AGREEMENT_DB,
    ISA_FLAGS,
    Choice,
    candidates,
    choose,
    load_chosen,
    machine,
    measure,
    probe_plane,
    worst_costs,
)
from srcnn.engine import ENGINES, load_engine
from srcnn.weights import SCALES, SHIPPED, read_sidecar, sidecar_path, weight_file, write_sidecar


@pytest.fixture
def weights(tmp_path):
    """The shipped weights and sidecars, copied, so that tests may rewrite their measured costs."""
    for scale in SCALES:
        for path in (weight_file(SHIPPED, scale), sidecar_path(weight_file(SHIPPED, scale))):
            shutil.copy2(path, tmp_path / path.name)
    return tmp_path


def forced(monkeypatch, seconds, agreement=None, refused=None, bfloat16=True):
    """Make `measure` report these numbers (for the engines asked about) and record what it was asked; OpenVINO
    computes in bfloat16 as `bfloat16` says."""
    asked = []
    monkeypatch.setattr(choice, "openvino_computes_bfloat16", lambda: bfloat16)

    def fake(names, build, plane=None, runs=None):
        asked.append(list(names))
        return (
            {name: seconds[name] for name in names if name in seconds},
            {name: 128 if name.startswith("openvino") else 256 for name in names if name in seconds},
            {name: (agreement or {}).get(name, 60.0) for name in names if name in seconds},
            {name: why for name, why in (refused or {}).items() if name in names},
        )

    monkeypatch.setattr(choice, "measure", fake)
    return asked


# Relative times per probe in the shape each kind of CPU gave (docs/speed-and-precision.md): on AMX OpenVINO's int8 is
# several times ONNX Runtime's; on AVX512-VNNI without AMX 1.1-1.6×, and with AVX-512 BF16 too the first layer in
# bfloat16 a tenth faster (AMD EPYC, family 25, model 17, D21); with AVX2 alone int8 a third faster than fp32, and
# OpenVINO computes bfloat16 in fp32 (AMD EPYC, family 25, model 1, 1 thread).
AMX = {
    "onnxruntime-fp32": 1.0,
    "openvino-fp32": 1.05,
    "onnxruntime-int8": 0.59,
    "openvino-int8": 0.16,
    "openvino-int8-bf16": 0.12,
    "openvino-bf16": 0.2,
    "torch-bf16": 0.5,
}
VNNI_BF16 = {
    "onnxruntime-fp32": 1.0,
    "openvino-fp32": 1.05,
    "onnxruntime-int8": 0.5,
    "openvino-int8": 0.38,
    "openvino-int8-bf16": 0.34,
}
AVX2 = {
    "onnxruntime-fp32": 1.0,
    "openvino-fp32": 0.99,
    "onnxruntime-int8": 0.68,
    "openvino-int8": 0.64,
    "openvino-int8-bf16": 0.63,
}
VNNI_ORT_AHEAD = {
    "onnxruntime-fp32": 1.0,
    "openvino-fp32": 1.1,
    "onnxruntime-int8": 0.45,
    "openvino-int8": 0.5,
    "openvino-int8-bf16": 0.9,
}


@pytest.mark.parametrize(
    "seconds, expected",
    [(AMX, "openvino-int8-bf16"), (VNNI_BF16, "openvino-int8-bf16"), (VNNI_ORT_AHEAD, "onnxruntime-int8")],
    ids=["amx", "vnni-bf16", "vnni"],
)
def test_auto_serves_the_fastest_engine_within_the_cost(monkeypatch, weights, seconds, expected):
    asked = forced(monkeypatch, seconds)
    chosen = choose(weights, "auto", engine_threads=1, cache=False)
    assert chosen.engine == expected
    # bf16 costs 0.048 dB at ×2: never measured for auto, however fast (as on AMX); the reference comes first
    assert asked == [["onnxruntime-fp32", "onnxruntime-int8", "openvino-fp32", "openvino-int8", "openvino-int8-bf16"]]
    assert set(chosen.refused) == {"openvino-bf16", "torch-bf16"} and "0.048" in chosen.refused["torch-bf16"]
    assert chosen.reason.startswith("the fastest of 5 measured here") and "onnxruntime-fp32" in chosen.reason
    assert chosen.tile == (128 if expected.startswith("openvino") else 256)


def test_without_bfloat16_arithmetic_auto_leaves_out_openvinos_bfloat16_engines(monkeypatch, weights):
    asked = forced(monkeypatch, AVX2, bfloat16=False)  # int8-bf16 a hair faster: noise, as its arithmetic is int8's
    chosen = choose(weights, "auto", engine_threads=1, cache=False)
    assert chosen.engine == "openvino-int8"
    assert asked == [["onnxruntime-fp32", "onnxruntime-int8", "openvino-fp32", "openvino-int8"]]
    assert "no bfloat16 arithmetic" in chosen.refused["openvino-int8-bf16"]
    assert choose(weights, "openvino-int8-bf16", cache=False).engine == "openvino-int8-bf16"  # asked for, it serves


def test_an_engine_that_disagrees_with_the_reference_here_is_refused(monkeypatch, weights):
    # int8 whose pairwise sums saturate on a CPU without VNNI: fast, and wrong
    disagreeing = {"openvino-int8": AGREEMENT_DB - 8, "openvino-int8-bf16": AGREEMENT_DB - 8}
    forced(monkeypatch, AMX, agreement={**disagreeing, "onnxruntime-int8": AGREEMENT_DB - 1})
    chosen = choose(weights, "auto", cache=False)
    assert chosen.engine == "onnxruntime-fp32"
    assert all("differs from the reference" in chosen.refused[name] for name in disagreeing)


def test_an_engine_that_cannot_run_here_is_left_out(monkeypatch, weights):
    missing = {
        name: "does not run here: No module named 'openvino'" for name in ENGINES["cpu"] if name.startswith("openvino")
    }
    forced(monkeypatch, {name: AMX[name] for name in AMX if name not in missing}, refused=missing)
    chosen = choose(weights, "auto", cache=False)
    assert chosen.engine == "onnxruntime-int8" and "openvino" in chosen.refused["openvino-int8"]


def test_without_measured_costs_auto_keeps_to_fp32(monkeypatch, weights):
    asked = forced(monkeypatch, AMX)
    for scale in SCALES:  # as after new weights or a new calibration, before `make evaluate-precision`
        record = read_sidecar(weight_file(weights, scale))
        record["costs"]["weights_sha256"] = "0" * 64
        write_sidecar(weight_file(weights, scale), record)
    chosen = choose(weights, "auto", cache=False)
    assert asked == [["onnxruntime-fp32", "openvino-fp32"]] and chosen.engine == "onnxruntime-fp32"
    assert "make evaluate-precision" in chosen.refused["openvino-int8"]


def test_a_cost_past_the_limit_at_any_scale_excludes_the_engine(weights):
    record = read_sidecar(weight_file(weights, 4))
    record["costs"]["engines"]["openvino-int8"]["Set14"] = 0.021
    write_sidecar(weight_file(weights, 4), record)
    assert worst_costs(weights)["openvino-int8"] == 0.021
    chosen, excluded = candidates("auto", "cpu", worst_costs(weights))
    assert "openvino-int8" not in chosen and "onnxruntime-int8" in chosen
    assert "0.021" in excluded["openvino-int8"]


def test_an_arithmetic_measures_its_engines_and_a_name_measures_nothing(monkeypatch, weights):
    asked = forced(monkeypatch, AMX)
    assert choose(weights, "int8", cache=False).engine == "openvino-int8"
    assert choose(weights, "bf16", cache=False).engine == "openvino-bf16"  # an override: no cost limit
    assert choose(weights, "torch-bf16", cache=False).engine == "torch-bf16"
    assert asked == [["onnxruntime-int8", "openvino-int8"], ["openvino-bf16", "torch-bf16"]]
    with pytest.raises(ValueError, match="choose one of"):
        choose(weights, "int4", cache=False)
    with pytest.raises(ValueError, match="does not run on cpu"):
        choose(weights, "torch-fp16", cache=False)


def test_the_measurement_is_cached_per_machine_and_thread_count(monkeypatch, weights, tmp_path):
    asked = forced(monkeypatch, VNNI_ORT_AHEAD)
    cache = tmp_path / "cache"
    first = choose(weights, "auto", engine_threads=1, cache=cache)
    again = choose(weights, "auto", engine_threads=1, cache=cache)
    assert (first.cached, again.cached, again.engine, again.seconds) == (False, True, first.engine, first.seconds)
    choose(weights, "auto", engine_threads=2, cache=cache)
    assert len(asked) == 2
    record = json.loads((cache / "engines.json").read_text())
    assert {json.loads(key)["engine_threads"] for key in record} == {1, 2}
    assert all(json.loads(key)["machine"] == machine() for key in record)
    (cache / "engines.json").write_text("{not json")  # a damaged cache is measured again
    assert choose(weights, "auto", engine_threads=1, cache=cache).engine == first.engine and len(asked) == 3


def test_the_machine_is_named_with_the_instruction_sets_that_matter():
    found = machine()
    assert found["cpu"] and found["cores"] >= 1 and set(found["isa"]) <= set(ISA_FLAGS)


class Scaled:
    """A stand-in engine: the window's centre times a factor."""

    border, multiple, tile, fallbacks = 8, (1, 1), 64, 0

    def __init__(self, factor):
        self.factor = factor

    def __call__(self, window):
        return window[8:-8, 8:-8] * self.factor


def test_measure_times_every_engine_that_builds_and_compares_it_with_the_first():
    def build(name):
        if name == "missing":
            raise ImportError("No module named 'nowhere'")
        return Scaled({"reference": 1.0, "same": 1.0, "off": 1.1}[name])

    plane = probe_plane((96, 80))
    seconds, tiles, agreement, refused = measure(
        ["reference", "same", "off", "missing"], build, plane, runs=1, tiles=(32, 64)
    )
    assert set(seconds) == {"reference", "same", "off"} and all(value > 0 for value in seconds.values())
    assert set(tiles.values()) <= {32, 64} and set(tiles) == set(seconds)
    assert agreement["same"] == float("inf") and agreement["off"] < 30
    assert refused == {"missing": "does not run here: No module named 'nowhere'"}


def test_measure_times_the_engines_in_turns():
    ran = []

    class Recorded(Scaled):
        def __init__(self, name):
            super().__init__(1.0)
            self.name = name

        def __call__(self, window):
            if not ran or ran[-1] != self.name:
                ran.append(self.name)
            return super().__call__(window)

    measure(["reference", "other"], Recorded, probe_plane((96, 80)), runs=3, tiles=(32, 64))
    # Each built and warmed up, then three rounds of each in turn: a slow spell cannot fall on one engine's runs alone.
    assert ran == ["reference", "other"] * 4


def test_the_probe_plane_keeps_int8_within_its_range():
    engine = load_engine(weight_file(SHIPPED, 2), name="onnxruntime-int8")
    plane = probe_plane()
    super_resolve_plane(engine, plane)
    assert engine.fallbacks == 0 and 40 < np.ptp(plane) <= 255


def test_the_engines_loaded_run_the_chosen_engine_at_the_chosen_tile(monkeypatch):
    monkeypatch.setattr(choice, "choose", lambda *args: Choice("onnxruntime-int8", "forced", tile=128))
    engines, chosen = load_chosen(SHIPPED)
    assert chosen.reason == "forced"
    assert {(engine.name, engine.tile) for engine in engines.values()} == {("onnxruntime-int8", 128)}
    assert sorted(engines) == list(SCALES)
