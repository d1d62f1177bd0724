"""In-process measurements: the machine's fp32 limit, the forward pass per engine, and decode → upscale → encode."""

import io
import time

import numpy as np
import onnxruntime
import torch

from srcnn.codec import decode_image, encode_image
from srcnn.engine import make_engine
from srcnn.upscale import super_resolve_plane, upscale


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


def forward_engines(model):
    """name -> function(plane) for each engine compared, all on a float32 (H, W) 0..255 plane, full-size."""
    session = plain_onnx_session(model)
    shipped = make_engine(model)
    border = model.border

    def eager(plane):
        with torch.inference_mode():
            return model(torch.from_numpy(plane / 255.0)[None, None], full_size=True)

    def plain_onnx(plane):
        padded = np.pad(plane / 255.0, border, mode="edge")[None, None]
        return session.run(None, {"y": padded})[0]

    return {"eager torch, full image": eager, "ONNX Runtime, default session": plain_onnx,
            f"shipped ({type(shipped).__name__}, {shipped.tile}² tiles)": lambda plane: super_resolve_plane(
                shipped, plane)}


def forward_rates(model, sizes, flop_per_pixel):
    """{engine: {size: GFLOP/s}} of the full-size forward pass on size² planes."""
    engines = forward_engines(model)
    rates = {name: {} for name in engines}
    for size in sizes:
        plane = np.random.default_rng(size).uniform(16, 235, (size, size)).astype(np.float32)
        for name, run in engines.items():
            rates[name][size] = size * size * flop_per_pixel / best_seconds(lambda: run(plane)) / 1e9
    return rates


def end_to_end(model, png, scale):
    """Seconds per image of the handler's work in process: decode the PNG, upscale, encode a PNG."""
    engine = make_engine(model)
    return best_seconds(lambda: encode_image(upscale(decode_image(png, 1 << 30), engine, scale)), min_runs=3)
