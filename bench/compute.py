"""In-process measurements: the machine's fp32 limit, the forward pass per engine, and decode → upscale → encode."""

import io
import time

import numpy as np
import onnxruntime
import torch

from srcnn.codec import decode_image, encode_image
from srcnn.engine import DEFAULT_PRECISION, PRECISIONS, OnnxEngine, load_engine, load_engines
from srcnn.upscale import super_resolve_plane, upscale
from srcnn.weights import load_model


def best_seconds(function, min_runs=3, min_seconds=1.0, max_runs=50):
    """The fastest of repeated calls, after one warm-up call (kernels, buffers, caches): at least `min_runs`
    calls, more while they add up to under `min_seconds`. The best run is the one least disturbed by the other
    tenants of a shared machine."""
    function()
    times = []
    while len(times) < min_runs or (sum(times) < min_seconds and len(times) < max_runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_limit(sides=(2048, 4096)):
    """GFLOP/s of an fp32 square matrix multiply, best over `sides`, for numpy (its BLAS) and torch."""
    rates = {"numpy": 0.0, "torch": 0.0}
    for side in sides:
        a, b = np.random.default_rng(side).random((2, side, side), dtype=np.float32)
        tensors = torch.from_numpy(a), torch.from_numpy(b)
        for library, (x, y) in (("numpy", (a, b)), ("torch", tensors)):
            rates[library] = max(rates[library], 2 * side**3 / best_seconds(lambda: x @ y) / 1e9)
    return rates


def plain_onnx_session(model):
    """What a user would do: export the module with dynamic height and width, run a default session."""
    buffer = io.BytesIO()
    torch.onnx.export(model, (torch.zeros(1, 1, 64, 64),), buffer, dynamo=False, input_names=["y"],
                      output_names=["out"], dynamic_axes={"y": {2: "height", 3: "width"},
                                                          "out": {2: "height", 3: "width"}})
    return onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])


class OpenVinoEngine:
    """OpenVINO's CPU plugin on the module, converted as OpenVINO documents (dynamic height and width), with its
    inference precision hint ("f32" or "bf16"): a peer, run on the same tiles as the shipped fp32 engine."""

    tile, multiple = OnnxEngine.TILE, (1, 1)

    def __init__(self, model, precision):
        try:
            import openvino
        except ImportError:
            raise SystemExit("the benchmark runs OpenVINO as a peer: pip install -r requirements-bench.txt "
                             "(make bench does)") from None
        self.border = model.border
        converted = openvino.convert_model(model, example_input=torch.zeros(1, 1, 64, 64), input=[1, 1, -1, -1])
        compiled = openvino.Core().compile_model(converted, "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                                    "PERFORMANCE_HINT": "LATENCY"})
        self.request = compiled.create_infer_request()

    def __call__(self, window):
        self.request.infer({0: window[None, None]})
        return self.request.get_output_tensor(0).data[0, 0].copy()


def forward_engines(weights_path):
    """name -> function(plane) for each engine compared, all on a float32 (H, W) 0..255 plane, full-size: eager
    torch and a default ONNX Runtime session (what a user would do), the shipped engine in every CPU precision
    (DEFAULT_PRECISION marked), OpenVINO in fp32 and bf16."""
    model = load_model(weights_path)
    session = plain_onnx_session(model)
    border = model.border

    def eager(plane):
        with torch.inference_mode():
            return model(torch.from_numpy(plane / 255.0)[None, None], full_size=True)

    def plain_onnx(plane):
        padded = np.pad(plane / 255.0, border, mode="edge")[None, None]
        return session.run(None, {"y": padded})[0]

    class Tiled:
        def __init__(self, engine):
            self.engine = engine

        def __call__(self, plane):
            return super_resolve_plane(self.engine, plane)

        @property
        def fallbacks(self):
            return getattr(self.engine, "fallbacks", 0)

    engines = {"eager torch, full image": eager, "ONNX Runtime, default session": plain_onnx}
    for precision in PRECISIONS["cpu"]:
        engine = load_engine(weights_path, precision=precision)
        default = " (shipped default)" if precision == DEFAULT_PRECISION["cpu"] else ""
        engines[f"{precision}: {type(engine).__name__}, {engine.tile}² tiles{default}"] = Tiled(engine)
    for precision in ("f32", "bf16"):
        engine = OpenVinoEngine(model, precision)
        engines[f"OpenVINO {precision}, {engine.tile}² tiles"] = Tiled(engine)
    return engines


def forward_rates(weights_path, planes, flop_per_pixel):
    """{engine: {size: GFLOP/s}} of the full-size forward pass on each of `planes` ({size: float32 size² Y
    plane}), and how many tiles the int8 engine ran in fp32 instead (its guard, srcnn.quantize.FALLBACK_RANGE)."""
    engines = forward_engines(weights_path)
    rates = {name: {} for name in engines}
    for size, plane in planes.items():
        for name, run in engines.items():
            rates[name][size] = size * size * flop_per_pixel / best_seconds(lambda: run(plane)) / 1e9
    return rates, sum(getattr(run, "fallbacks", 0) for run in engines.values())


def end_to_end(weights_folder, png, scale):
    """Seconds per image of the handler's work in process (the service's default precision): decode the PNG,
    upscale, encode a PNG."""
    engines = load_engines(weights_folder, precision="auto")
    return best_seconds(lambda: encode_image(upscale(decode_image(png, 1 << 30), engines, scale)), min_runs=3)
