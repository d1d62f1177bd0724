"""In-process measurements: the forward pass per engine on photographs, the int8 range
guard's recomputed tiles, and decode → upscale → encode."""

import io
import math
import time

import numpy as np
import onnxruntime
import torch

from srcnn.bands import NetworkRows, PlaneRows, super_resolve_plane, tile_shape, upscale
from srcnn.choice import best_in_turns
from srcnn.codec import decode_image, encode_image
from srcnn.color import rgb_to_y
from srcnn.cores import in_stripes, machine_cores
from srcnn.engine import ENGINES, load_engine, load_engines
from srcnn.imaging import resize_plane
from srcnn.weights import load_model, weight_file

# Seconds, warm-up calls included, one way of running an engine may take over the forward table's photographs: more
# than an engine at fp32's speed needs on two cores, but torch's bfloat16 on a CPU without bfloat16 instructions is
# emulated, a hundred times slower, and is then timed on the smallest photographs alone.
FORWARD_BUDGET_S = 60.0
# Rounds of `srcnn.choice.best_in_turns` for the in-process stages: a 512² request is about half a second on two cores.
STAGE_ROUNDS = 5


def best_seconds(function, min_runs=3, min_seconds=1.0, max_runs=50, budget=math.inf):
    """The fastest of repeated calls, after one warm-up call (kernels, buffers, caches): at least `min_runs`
    calls, more while they add up to under `min_seconds`, but none once the warm-up and the calls have taken
    `budget` seconds (one call at least). The best run is the one least disturbed by the other tenants of a shared
    machine."""
    started = time.perf_counter()
    function()
    times = []
    while not times or (
        time.perf_counter() - started < budget
        and (len(times) < min_runs or (sum(times) < min_seconds and len(times) < max_runs))
    ):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def plain_onnx_session(model):
    """What a user would do: export the module with dynamic height and width, run a default session."""
    buffer = io.BytesIO()
    torch.onnx.export(
        model,
        (torch.zeros(1, 1, 64, 64),),
        buffer,
        dynamo=False,
        input_names=["y"],
        output_names=["out"],
        dynamic_axes={"y": {2: "height", 3: "width"}, "out": {2: "height", 3: "width"}},
    )
    return onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])


def on_lanes(lanes, plane):
    """The engines `lanes` (one single-threaded engine each) over a float32 (H, W) Y plane (0..255) as the service
    runs them: stripes of rows computed side by side (srcnn.cores.in_stripes). float32 (H, W), unrounded."""
    source, output = PlaneRows(plane), np.empty_like(plane)

    def stripe(lane, top, bottom):
        output[top:bottom] = NetworkRows(source, lane, None, len(lanes)).rows(top, bottom)

    in_stripes(plane.shape[0], NetworkRows(source, lanes[0], None, len(lanes)).band, lanes, stripe)
    return output


def engine_ways(weights_path, name, threads, tile=None):
    """(its tile, {way: function(plane)}) of the engine `name` in `tile`² tiles (default: the engine's) on `threads`
    cores, over a float32 (H, W) 0..255 plane: with the engine's own threads, and but for torch's (whose threads are
    the process's) as many single-threaded lanes (`on_lanes`, as served)."""
    engine = load_engine(weights_path, engine_threads=threads, name=name)
    engine.tile = tile or engine.tile
    ways = {f"{threads} threads": lambda plane: super_resolve_plane(engine, plane)}
    if ENGINES["cpu"][name][0] != "torch":  # torch's threads are the process's: no lanes of one thread each
        lanes = [load_engine(weights_path, engine_threads=1, name=name) for _ in range(threads)]
        for lane in lanes:
            lane.tile = engine.tile
        ways[f"{threads} lanes"] = lambda plane: on_lanes(lanes, plane)
    return engine.tile, ways


def forward_engines(weights_path, threads, tiles):
    """{row: {way: function(plane)}} for each engine compared, all on a float32 (H, W) 0..255 plane, full-size:
    eager torch and a default ONNX Runtime session on the whole plane (what a user would do), and every CPU engine
    of srcnn.engine.ENGINES (OpenVINO's bf16 hint among them: the peer) in the tiles `tiles` names for it
    ({engine: side}, the engine choice's best; else its default), both ways (`engine_ways`)."""
    model = load_model(weights_path)
    session = plain_onnx_session(model)
    border = model.border

    def eager(plane):
        with torch.inference_mode():
            return model(torch.from_numpy(plane / 255.0)[None, None], full_size=True)

    def plain_onnx(plane):
        padded = np.pad(plane / 255.0, border, mode="edge")[None, None]
        return session.run(None, {"y": padded})[0]

    runs = {"eager torch, full image": {"": eager}, "ONNX Runtime, default session": {"": plain_onnx}}
    for name in ENGINES["cpu"]:
        tile, ways = engine_ways(weights_path, name, threads, tiles.get(name))
        runs[f"{name}, {tile}² tiles"] = ways
    return runs


def forward_rates(weights_path, planes, flop_per_pixel, threads, tiles):
    """{row: GFLOP/s} of the full-size forward pass over `planes` (float32 Y planes), each timed alone
    (`best_seconds`) and the times added (`timed_rate`); each engine's faster way (`forward_engines`), which its row
    names, with on how many planes where not on all; `tiles` as for `forward_engines`."""
    rates = {}
    for name, ways in forward_engines(weights_path, threads, tiles).items():
        found = {way: timed_rate(run, planes, flop_per_pixel) for way, run in ways.items()}
        faster = max(found, key=lambda way: found[way][0])
        rate, timed = found[faster]
        part = f"on the {timed} smallest of {len(planes)} photographs" if timed < len(planes) else ""
        rates[", ".join(filter(None, (name, faster, part)))] = rate
    return rates


def timed_rate(run, planes, flop_per_pixel):
    """(GFLOP/s, on how many planes) of `run` over `planes`, smallest first, until FORWARD_BUDGET_S is spent (one
    plane at least)."""
    started, pixels, seconds, timed = time.perf_counter(), 0, 0.0, 0
    for plane in sorted(planes, key=lambda plane: plane.size):
        if timed and time.perf_counter() - started > FORWARD_BUDGET_S:
            break
        seconds += best_seconds(lambda: run(plane), min_runs=2, min_seconds=0.3, budget=FORWARD_BUDGET_S)
        pixels, timed = pixels + plane.size, timed + 1
    return pixels * flop_per_pixel / seconds / 1e9, timed


def recomputed_tiles(weights_folder, planes_by_scale, name, threads):
    """{scale: (tiles the int8 engine `name` ran again in fp32, tiles)} over `planes_by_scale` ({scale: network
    inputs}), at the engine's own tile."""
    counts = {}
    for scale, planes in planes_by_scale.items():
        engine = load_engine(weight_file(weights_folder, scale), engine_threads=threads, name=name)
        tiles = 0
        for plane in planes:
            super_resolve_plane(engine, plane)
            rows, columns = tile_shape(*plane.shape, engine.tile, engine.multiple)
            tiles += len(range(0, plane.shape[0], rows)) * len(range(0, plane.shape[1], columns))
        counts[scale] = (engine.fallbacks, tiles)
    return counts


class CostsNothing:
    """A stand-in for `engine`, with its border, output multiple and tile, that answers each window with its centre
    at no cost: `upscale` on it does everything around the network (colour, resizes, tiles, the merge) alone."""

    def __init__(self, engine):
        self.border, self.multiple, self.tile = engine.border, engine.multiple, engine.tile

    def __call__(self, window):
        return window[self.border : -self.border, self.border : -self.border]


def end_to_end(weights_folder, png, scale, name, tile):
    """Seconds per image of the handler's work in process with engine `name` in `tile`² tiles, on a lane of
    single-threaded engines a core and the PNG encoded on as many threads, as served, timed in turns
    (srcnn.choice.best_in_turns): {"seconds": decode the PNG, upscale, encode, one after the other; each stage alone,
    "decode", "upscale", "encode"; "network", the network alone over the image's Y plane bicubic-upscaled (`scale`
    one trained pass), on the same lanes; and "pipeline", the upscale on engines that cost nothing (`CostsNothing`),
    what it spends outside the network}."""
    lanes = [load_engines(weights_folder, engine_threads=1, name=name, tile=tile) for _ in range(machine_cores())]
    free_lanes = [{factor: CostsNothing(engine) for factor, engine in lane.items()} for lane in lanes]
    image = decode_image(png, 1 << 30)
    answer = upscale(image, lanes, scale)
    plane = resize_plane(rgb_to_y(np.asarray(image.convert("RGB"))), answer.size)
    return best_in_turns(
        {
            "seconds": lambda: encode_image(upscale(decode_image(png, 1 << 30), lanes, scale), threads=len(lanes)),
            "decode": lambda: decode_image(png, 1 << 30),
            "upscale": lambda: upscale(image, lanes, scale),
            "network": lambda: on_lanes([lane[scale] for lane in lanes], plane),
            "pipeline": lambda: upscale(image, free_lanes, scale),
            "encode": lambda: encode_image(answer, threads=len(lanes)),
        },
        STAGE_ROUNDS,
    )
