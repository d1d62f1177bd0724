"""Which engine serves: measured on the machine at hand, among those whose quality was measured good enough.

An engine (srcnn.engine.ENGINES) is a candidate for "auto" when its PSNR-Y cost against fp32, measured on Set5 and
Set14 at every trained scale with the shipped weights (`make evaluate-precision`, which writes the costs into each
weight file's sidecar), is at most MAX_COST_DB; fp32 engines always are; OpenVINO's bfloat16 engines only where its
CPU plugin computes in bfloat16 (elsewhere they compute fp32 on rounded operands, like their twins). The candidates
are then built and timed on a probe plane with the thread count they will serve with, at each of a few tile sizes,
and checked against the reference engine there (a runtime whose int8 arithmetic saturates on this CPU would show
it); the fastest that agrees serves, at its fastest tile. The measurement is cached per machine (CPU model and
instruction sets, library versions, thread count, candidates and tiles) in SRCNN_CACHE_DIR (default
~/.cache/srcnn), under a lock, so that workers starting together measure once and never against each other.
"""

import fcntl
import functools
import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from srcnn.bands import super_resolve_plane
from srcnn.engine import ENGINES, REFERENCE, load_engine, load_engines, openvino_computes_bfloat16
from srcnn.files import write_atomically
from srcnn.imaging import resize_plane
from srcnn.metrics import psnr
from srcnn.weights import SCALES, recorded_costs, weight_file

MAX_COST_DB = 0.02  # the most PSNR-Y an engine may cost against fp32, on any set at any scale, to serve by default
AGREEMENT_DB = 40.0  # PSNR against the reference engine on the probe plane below which a candidate is refused
# The probe plane: (height, width) of a photograph's ×2 plane, which no tile side divides (as real ones do not).
PROBE_SHAPE = (480, 720)
PROBE_RUNS = 2  # timed runs at each tile after one warm-up; the fastest counts
# Output tile sides tried for each engine: the best differs by machine, and 512² passes a worker's memory bound
# (docs/decisions.md, D4).
PROBE_TILES = (128, 256)
EVALUATION_SETS = ("Set5", "Set14")
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")
LIBRARIES = ("torch", "onnxruntime", "openvino")


@dataclass
class Choice:
    """The engine chosen, its tile, why, and what was measured (each engine's seconds per probe at its best tile,
    that tile, its agreement with the reference in dB, and why the others were not candidates)."""

    engine: str
    reason: str
    tile: int | None = None  # None: the engine's default
    seconds: dict = field(default_factory=dict)
    tiles: dict = field(default_factory=dict)
    agreement_db: dict = field(default_factory=dict)
    refused: dict = field(default_factory=dict)
    cached: bool = False


def cpuinfo():
    """The first processor's fields in /proc/cpuinfo ({"vendor_id": ..., "cpu family": ..., "flags": ...}), values
    as text; empty where there is no such file."""
    fields, path = {}, Path("/proc/cpuinfo")
    for line in path.read_text().splitlines() if path.exists() else ():
        key, _, value = line.partition(":")
        if not key.strip():
            break  # the blank line after the first processor
        fields.setdefault(key.strip(), value.strip())
    return fields


def machine():
    """The CPU's model name with its family and model numbers ("AMD EPYC, family 25, model 17"), and the
    instruction sets that decide which engine is fastest, from /proc/cpuinfo."""
    fields = cpuinfo()
    model = fields.get("model name") or platform.processor() or platform.machine()
    model += "".join(
        f", {label} {fields[key]}" for key, label in (("cpu family", "family"), ("model", "model")) if key in fields
    )
    flags = set(fields.get("flags", "").split())
    return {"cpu": model, "cores": os.cpu_count(), "isa": [flag for flag in ISA_FLAGS if flag in flags]}


def library_versions():
    versions = {}
    for library in LIBRARIES:
        try:
            versions[library] = metadata.version(library)
        except metadata.PackageNotFoundError:
            versions[library] = None
    return versions


def worst_costs(folder):
    """{engine: its largest PSNR-Y cost (dB) over SCALES and EVALUATION_SETS} for the engines whose costs every
    weight file's sidecar in `folder` records for its own weights and calibration."""
    worst = None
    for scale in SCALES:
        path = weight_file(folder, scale)
        if not path.exists():
            return {}
        scale_worst = {
            engine: max(by_set[name] for name in EVALUATION_SETS)
            for engine, by_set in recorded_costs(path).items()
            if all(name in by_set for name in EVALUATION_SETS)
        }
        worst = (
            scale_worst
            if worst is None
            else {engine: max(cost, scale_worst[engine]) for engine, cost in worst.items() if engine in scale_worst}
        )
    return worst or {}


def settings(device):
    """What a `precision` setting may say on `device`: auto, an arithmetic, or an engine's name."""
    engines = ENGINES[device]
    return ("auto", *sorted({arithmetic for _, arithmetic in engines.values()}), *engines)


def candidates(setting, device, costs, bfloat16=True):
    """(engines to measure, {engine: why it is not one}) for a `precision` setting: "auto" (every engine within
    MAX_COST_DB by `costs`, fp32 always, but OpenVINO's bfloat16 engines only where it computes in bfloat16, as
    `bfloat16` says), an arithmetic such as "int8" (its engines), or one engine's name."""
    engines = ENGINES[device]
    if setting in engines:
        return [setting], {}
    if setting not in settings(device):
        raise ValueError(f"precision {setting!r} does not run on {device}: choose one of {settings(device)}")
    chosen, excluded = [], {}
    for name, (runtime, arithmetic) in engines.items():
        if setting != "auto":
            if arithmetic == setting:
                chosen.append(name)
        elif arithmetic == "fp32":
            chosen.append(name)
        elif name not in costs:
            excluded[name] = "its cost against fp32 is not measured for these weights (make evaluate-precision)"
        elif costs[name] > MAX_COST_DB:
            excluded[name] = f"costs {costs[name]:.3f} dB against fp32 (more than {MAX_COST_DB})"
        elif runtime == "openvino" and "bf16" in arithmetic and not bfloat16:
            excluded[name] = (
                "this CPU has no bfloat16 arithmetic for OpenVINO: it would compute in fp32 on operands rounded to "
                "bfloat16, no faster than its twin without them and less exact"
            )
        else:
            chosen.append(name)
    return chosen, excluded


def probe_plane(shape=PROBE_SHAPE):
    """A float32 (height, width) plane (0..255) like the network's inputs: smooth shapes and soft edges, a bicubic
    ×8 of random pixels (sharper patterns would trip the int8 range guard and time its fp32 fallback instead)."""
    height, width = shape
    low = np.random.default_rng(0).random((height // 8, width // 8), dtype=np.float32) * 255
    return np.clip(resize_plane(low, (width, height)), 0, 255)


def measure(names, build, plane=None, runs=PROBE_RUNS, tiles=PROBE_TILES):
    """({engine: seconds of its fastest run over `plane`, at its best of `tiles`}, {engine: that tile}, {engine:
    PSNR against the first engine's output}, {engine: why it could not run}) for engines `build(name)` makes;
    `names[0]` is the reference. Every engine is built and warmed up at each tile first, then timed in `runs`
    rounds, each running every engine at every tile once in turn, so that a slow spell of a shared machine falls
    on all of them rather than on one (the choice is cached for good)."""
    plane = probe_plane() if plane is None else plane
    engines, seconds, best_tiles, agreement, refused, reference = {}, {}, {}, {}, {}, None
    for name in names:
        try:
            engine = build(name)
            output = super_resolve_plane(engine, plane)  # runs the build's lazy work before anything is timed
        except (ImportError, RuntimeError, ValueError, OSError) as error:
            refused[name] = f"does not run here: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
            continue
        for tile in tiles:
            super_resolve_plane(engine, plane, tile)  # warm-up: kernels and buffers for this tile's shapes
        engines[name] = engine
        if reference is None:
            reference = output
        agreement[name] = psnr(reference, output)
    timed = best_in_turns(
        {
            (name, tile): functools.partial(super_resolve_plane, engine, plane, tile)
            for name, engine in engines.items()
            for tile in tiles
        },
        runs,
        warm_up=False,  # each engine warmed up at every tile as it was built
    )
    for (name, tile), elapsed in timed.items():
        if name not in seconds or elapsed < seconds[name]:
            seconds[name], best_tiles[name] = elapsed, tile
    return seconds, best_tiles, agreement, refused


def best_in_turns(functions, rounds, warm_up=True):
    """{key: the fastest of `rounds` calls of functions[key]}, after one warm-up call of each unless `warm_up` is
    False, the functions called in turns in every round, so that a slow spell of a shared machine falls on all of
    them rather than on one."""
    if warm_up:
        for function in functions.values():
            function()
    best = dict.fromkeys(functions, math.inf)
    for _ in range(rounds):
        for key, function in functions.items():
            started = time.perf_counter()
            function()
            best[key] = min(best[key], time.perf_counter() - started)
    return best


def fastest(seconds, agreement, refused):
    """The fastest engine of a measurement that agrees with the reference to AGREEMENT_DB (refusing the rest)."""
    for name, db in agreement.items():
        if db < AGREEMENT_DB:
            refused[name] = f"differs from the reference here: {db:.1f} dB (at least {AGREEMENT_DB} needed)"
    timed = {name: value for name, value in seconds.items() if name not in refused}
    if not timed:
        raise ValueError("no engine can serve here: " + "; ".join(f"{name} {why}" for name, why in refused.items()))
    return min(timed, key=timed.get)


def cache_folder():
    return Path(os.environ.get("SRCNN_CACHE_DIR") or Path.home() / ".cache" / "srcnn")


def choose(folder, setting="auto", device="cpu", engine_threads=None, build=None, cache=None):
    """The `Choice` of engine for the weights in `folder` under a `precision` setting (see `candidates`),
    measured with `engine_threads` (on CUDA, "auto" is torch-fp32, not measured). `build(name)` makes an engine to
    time (default: from the ×2 weights); `cache` is the folder of the cached measurements (default
    `cache_folder()`; False measures afresh and stores nothing)."""
    device = device if device in ENGINES else "cpu"
    if device == "cuda" and setting == "auto":
        return Choice(REFERENCE["cuda"], "the reference on CUDA (no GPU measurement is cached)")
    auto = setting == "auto"  # on a CPU here: CUDA's returned above
    names, excluded = candidates(
        setting, device, worst_costs(folder) if auto else {}, auto and openvino_computes_bfloat16()
    )
    if len(names) == 1:
        return Choice(names[0], f"the only engine for precision {setting!r}", refused=excluded)
    if auto:
        names.remove(REFERENCE[device])
        names.insert(0, REFERENCE[device])
    if build is None:

        def build(name):
            return load_engine(weight_file(folder, SCALES[0]), device, engine_threads, name)

    key = json.dumps(
        {
            "machine": machine(),
            "libraries": library_versions(),
            "engine_threads": engine_threads,
            "device": device,
            "engines": names,
            "tiles": PROBE_TILES,
        },
        sort_keys=True,
    )
    cache = cache_folder() if cache is None else cache
    if cache is False:
        return measured_choice(names, build, excluded)
    cache = Path(cache)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        lock = open(cache / "engines.lock", "w")
    except OSError:
        return measured_choice(names, build, excluded)
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held until measured: a second worker waits, then reads the result
        path = cache / "engines.json"
        try:
            known = json.loads(path.read_text())
        except (OSError, ValueError):
            known = {}
        known = known if isinstance(known, dict) else {}
        try:
            return Choice(**{**known[key], "cached": True})
        except (KeyError, TypeError):  # not measured yet, or written by another version: measure
            pass
        choice = measured_choice(names, build, excluded)
        known[key] = {name: value for name, value in asdict(choice).items() if name != "cached"}
        try:
            write_atomically(path, json.dumps(known, indent=2) + "\n")
        except OSError:
            pass  # a read-only cache measures again next time; the choice stands
        return choice


def measured_choice(names, build, excluded):
    seconds, tiles, agreement, refused = measure(names, build)
    refused = {**excluded, **refused}
    name = fastest(seconds, agreement, refused)
    others = ", ".join(
        f"{other} {seconds[other] / seconds[name]:.2f}×" for other in sorted(seconds, key=seconds.get) if other != name
    )
    reason = (
        f"the fastest of {len(seconds)} measured here, in {tiles[name]}² tiles (the others' time against "
        f"it, each at its best tile: {others or 'none'})"
    )
    return Choice(name, reason, tiles[name], seconds, tiles, agreement, refused)


def load_chosen(folder, setting="auto", device="cpu", engine_threads=None):
    """(`srcnn.engine.load_engines` of the chosen engine, its `Choice`): what the service and `srcnn upscale`
    serve with."""
    choice = choose(folder, setting, torch.device(device).type, engine_threads)
    return load_engines(folder, device, engine_threads, choice.engine, choice.tile), choice
