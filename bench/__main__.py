"""The benchmark behind docs/speed-and-precision.md (Speed) (`make bench`), every number from one run on this machine.

    python -m bench [--out bench/results.json] [--requests 12]
                    [--photos-only | --servers-only | --storm-only | --video-only]

Names the machine (CPU vendor, model, family and the instruction sets that decide the engine), measures the limits
(bench/limit.py: the fastest fp32, bf16 and int8 rates of anything the project has, matrix multiplies and each
runtime's own convolution at the network's layers, with the instruction set's fp32 peak beside), the engine choice
(srcnn.choice, measured afresh with one thread as a served worker has, and with every core), the forward pass of
every engine on photographs (Set14 and T91 images, bicubic ×2, what the network sees; on every core, the faster of
the engine's own threads and single-threaded lanes side by side, as served), the chosen engine's cost on unseen
images (bench/precision.py: dead leaves drawn afresh each run, T91's held-out photographs), how many tiles the int8
range guard recomputes on Set5 and Set14 at ×2, ×3 and ×4, the choice on this CPU with oneDNN limited to older
instruction sets (ONEDNN_MAX_CPU_ISA, which OpenVINO honours and ONNX Runtime does not), the handler's work in
process (decode PNG → upscale → encode PNG, each stage alone, the network alone over its Y plane, and the upscale on
engines that cost nothing: all it spends outside the network; all timed in turns), TorchServe over HTTP at 512² → ×2
with 1 and 2 clients, the best of two rounds each (the shipped model-config.yaml, the same on the fp32 reference
engine, and the shipped workers × 1 thread, D11's rival) and the worker's peak resident memory answering 2048² → ×2,
TorchServe against the KServe predictor in turns at 512² → ×2, photographs (bench/photos.py: a 12-megapixel photo
alone against its forward pass, the peak answering 6000×4000 → ×2), video (bench/video.py: 480p and 720p clips → ×2
against the still-image pipeline on the same frames), and a storm (bench/storm.py: 4 large requests at once beside a
loop of small ones, the small ones' latency). The bar's lines end the table; an engine measured faster than the
limit of its arithmetic, or a mixed engine faster than its design's ceiling, is one of them (a limit that is not the
machine's). Writes the JSON and a Markdown table beside it (results.md), and prints the table; `--photos-only`,
`--servers-only`, `--storm-only` and `--video-only` measure and print those alone, writing nothing.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import ROOT, limit, photos, precision, storm, video
from bench.compute import STAGE_ROUNDS, end_to_end, forward_rates, recomputed_tiles
from bench.served import ROUNDS, served, servers_in_turns
from srcnn.choice import MAX_COST_DB, choose, library_versions, machine, worst_costs
from srcnn.engine import ENGINES, INT8_ARITHMETICS, REFERENCE
from srcnn.imaging import resize_plane
from srcnn.weights import SCALES, load_model, weight_file
from training.data import DATA_DIR, list_images, read_y

SERVED_SIDE, BIG_SIDE, SCALE = 512, 2048, 2
PHOTOGRAPHS = {"Set14": ("baboon", "barbara", "monarch", "zebra"), "T91": ("t1", "t20", "t40", "t60")}
SIMULATED_ISAS = ("AVX512_CORE", "AVX2")  # AVX-512 without VNNI; AVX2 alone, as on laptops and older servers
PEER = "openvino-bf16"  # OpenVINO's bf16 hint, every layer: the peer the bar names


def photo_png(data_dir, side):
    """PNG bytes of a side × side photograph (bench.photos.photograph): a natural image, so the PNG sizes and
    encode times are those of real uploads, not of noise or flat colour."""
    return photos.png(photos.photograph(data_dir, (side, side)))


def photographs(data_dir):
    """The forward planes: each of PHOTOGRAPHS' Y, bicubic ×2 (what the network runs on for a ×2 request)."""
    planes = []
    for set_name, stems in PHOTOGRAPHS.items():
        for stem in stems:
            y = read_y(Path(data_dir) / set_name / f"{stem}.png")
            planes.append(resize_plane(y, (y.shape[1] * SCALE, y.shape[0] * SCALE)))
    return planes


def evaluation_inputs(data_dir):
    """{scale: network inputs of Set5 and Set14 at that scale} (the protocol's bicubic down and up)."""
    inputs = {}
    for scale in SCALES:
        inputs[scale] = []
        for set_name in ("Set5", "Set14"):
            for path in list_images(Path(data_dir) / set_name):
                y = read_y(path)
                low = resize_plane(y, (y.shape[1] // scale, y.shape[0] // scale))
                inputs[scale].append(resize_plane(low, (y.shape[1], y.shape[0])))
    return inputs


def simulated_choice(isa, threads):
    """The choice and its probe times in a child process whose oneDNN may use at most `isa`."""
    code = (
        "import json, sys; from dataclasses import asdict; from srcnn.choice import choose; "
        f"from srcnn.weights import SHIPPED; print(json.dumps(asdict(choose(SHIPPED, engine_threads={threads}, "
        "cache=False))))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "ONEDNN_MAX_CPU_ISA": isa},
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def run(config):
    started = time.perf_counter()
    weights = ROOT / "weights"
    flop = load_model(weight_file(weights, SCALE)).flops_per_pixel
    results = {"machine": {**machine(), **library_versions(), "numpy": np.__version__}, "flop_per_output_pixel": flop}
    print("limits: matrix multiplies and each runtime's convolution at the network's layers ...", file=sys.stderr)
    results["limits"] = limit.limits(weights)
    fp32_limit = results["limit_gflops"] = results["limits"]["limits"]["fp32"]
    print("engine choice, measured afresh ...", file=sys.stderr)
    cache = Path(tempfile.mkdtemp(prefix="srcnn-bench-"))
    os.environ["SRCNN_CACHE_DIR"] = str(cache)  # the private servers below read this measurement
    choices = {threads: choose(weights, "auto", engine_threads=threads, cache=cache) for threads in (1, os.cpu_count())}
    results["choice"] = {
        threads: {
            "engine": c.engine,
            "tile": c.tile,
            "reason": c.reason,
            "seconds": c.seconds,
            "tiles": c.tiles,
            "agreement_db": c.agreement_db,
            "refused": c.refused,
        }
        for threads, c in choices.items()
    }
    results["costs_db"] = worst_costs(weights)
    default = choices[1].engine  # what serves: every lane of a worker is one single-threaded engine
    print("the chosen engine's cost on unseen images ...", file=sys.stderr)
    seed = int.from_bytes(os.urandom(4), "little")  # dead leaves no earlier run drew
    results["unseen_costs_db"] = precision.unseen_costs(weights, default, config.data_dir, seed)
    print("forward pass per engine, on photographs ...", file=sys.stderr)
    planes = photographs(config.data_dir)
    results["forward_planes"] = {
        "images": {k: list(v) for k, v in PHOTOGRAPHS.items()},
        "scale": SCALE,
        "megapixels": sum(plane.size for plane in planes) / 1e6,
    }
    results["forward_gflops"] = forward_rates(
        weight_file(weights, SCALE), planes, flop, os.cpu_count(), choices[os.cpu_count()].tiles
    )
    print("int8 range guard on Set5 and Set14 ...", file=sys.stderr)
    inputs = evaluation_inputs(config.data_dir)
    results["recomputed_tiles"] = {
        name: recomputed_tiles(weights, inputs, name, threads=1)
        for name, (_, precision) in ENGINES["cpu"].items()
        if precision in INT8_ARITHMETICS
    }
    print("the choice with oneDNN held to older instruction sets ...", file=sys.stderr)
    results["simulated"] = {isa: simulated_choice(isa, os.cpu_count()) for isa in SIMULATED_ISAS}
    served_output_side = SERVED_SIDE * SCALE
    forward_pixels = results["forward_gflops"][row(results, default)] * 1e9 / flop  # output pixels a second

    body = photo_png(config.data_dir, SERVED_SIDE)
    print("in-process decode → upscale → encode ...", file=sys.stderr)
    stages = end_to_end(weights, body, SCALE, default, choices[1].tile)
    seconds = stages.pop("seconds")
    pixels = served_output_side**2
    results["in_process"] = {
        "input": f"{SERVED_SIDE}² PNG",
        "scale": SCALE,
        "engine": default,
        "seconds": seconds,
        "stages": stages,
        "forward_seconds": pixels / forward_pixels,
        "output_mpx_per_s": pixels / seconds / 1e6,
        "of_limit": pixels / seconds * flop / 1e9 / fp32_limit,
        "of_forward": pixels / seconds / forward_pixels,
    }
    print("TorchServe over HTTP: the shipped settings, the fp32 reference, the workers × 1 thread ...", file=sys.stderr)
    runs = {
        "shipped": served(body, (1, 2), config.requests, photo_png(config.data_dir, BIG_SIDE)),
        "reference": served(body, (1, 2), config.requests, precision=REFERENCE["cpu"]),
        "alternative": served(body, (1, 2), config.requests, threads=1),
    }  # D11's alternative: one thread a worker
    for run in runs.values():
        for load in run["load"].values():
            rate = load["requests_per_s"] * pixels
            load.update(
                output_mpx_per_s=rate / 1e6, of_limit=rate * flop / 1e9 / fp32_limit, of_forward=rate / forward_pixels
            )
    results["served"] = {"input": f"{SERVED_SIDE}² PNG", "scale": SCALE, "big_input": f"{BIG_SIDE}² PNG", "runs": runs}
    print("TorchServe against the KServe predictor, in turns ...", file=sys.stderr)
    results["servers"] = servers_in_turns(body, (1, 2), config.requests)
    print(
        "photographs: 4032×3024 → ×2 alone, against its forward pass; 6000×4000 → ×2, peak memory ...", file=sys.stderr
    )
    results["photos"] = photos.photos(config.data_dir, weights, choices[1].engine, choices[1].tile)
    print("video: 480p and 720p → ×2 against the still-image pipeline on the same frames ...", file=sys.stderr)
    results["video"] = video.video(config.data_dir)
    print("storm: 4 large requests at once beside a loop of small ones ...", file=sys.stderr)
    results["storm"] = storm.storm(config.data_dir)
    results["seconds"] = time.perf_counter() - started
    return results


def engine_rates(results):
    """{forward table row: (its arithmetic, GFLOP/s)}: its engine's arithmetic (srcnn.engine.ENGINES), fp32 for the
    plain runs."""
    return {
        name: (ENGINES["cpu"].get(name.split(",")[0], (None, "fp32"))[1], rate)
        for name, rate in results["forward_gflops"].items()
    }


def row(results, engine):
    """The forward table's row of `engine` (its name, then its tile)."""
    return next(name for name in results["forward_gflops"] if name.split(",")[0] == engine)


def markdown(results):
    """The results as the Markdown docs/speed-and-precision.md quotes."""
    fp32_limit, found = results["limit_gflops"], results["machine"]
    cores = found["cores"]
    lines = [
        f"Machine: {found['cpu']}, {cores} cores, {' '.join(found['isa']) or 'no AVX2'}; torch "
        f"{found['torch']}, ONNX Runtime {found['onnxruntime']}, OpenVINO {found['openvino']}. "
        f"SRCNN: {results['flop_per_output_pixel']:,} FLOP per output pixel. Run took "
        f'{results["seconds"] / 60:.1f} min. Every "× limit" below is against the fp32 limit.',
        "",
        *limit.markdown(results["limits"]),
        "",
    ]
    for threads, chosen in results["choice"].items():
        lines.append(
            f"- Engine chosen with {threads} thread{'s' if int(threads) > 1 else ''}: **{chosen['engine']}**, "
            f"{chosen['reason']}. Not candidates: "
            + ("; ".join(f"{name} {why}" for name, why in chosen["refused"].items()) or "none")
            + "."
        )
    for isa, chosen in results["simulated"].items():
        reference = chosen["seconds"][REFERENCE["cpu"]]
        lines.append(
            f"- With `ONEDNN_MAX_CPU_ISA={isa}`: **{chosen['engine']}**, "
            f"{reference / chosen['seconds'][chosen['engine']]:.2f}× the fp32 reference's speed; probe "
            "times against the reference: "
            + ", ".join(f"{name} {seconds / reference:.2f}" for name, seconds in chosen["seconds"].items())
        )
    planes = results["forward_planes"]
    lines += [
        "",
        f"| forward on photographs ({', '.join(f'{k} ' + ' '.join(v) for k, v in planes['images'].items())}; "
        f"bicubic ×{planes['scale']}, {planes['megapixels']:.1f} Mpx), {cores} cores: an engine's own threads or as "
        "many single-threaded lanes (as served), the faster | GFLOP/s | × limit "
        "| worst PSNR-Y cost against fp32 (dB) |",
        "| --- | --- | --- | --- |",
    ]
    chosen = results["choice"]["1"]["engine"]
    for name, rate in results["forward_gflops"].items():
        engine = name.split(",")[0]
        cost = results["costs_db"].get(engine)
        mark = " (chosen)" if engine == chosen else " (peer)" if engine == PEER else ""
        lines.append(
            f"| {name}{mark} | {rate:.0f} | {rate / fp32_limit:.2f} | {'' if cost is None else f'{cost:.3f}'} |"
        )
    lines += [
        "",
        "The chosen engine's PSNR-Y cost against fp32 on unseen images (bench/precision.py): "
        + "; ".join(
            f"{set_name} " + ", ".join(f"×{scale} {cost:.4f} dB" for scale, cost in costs.items())
            for set_name, costs in results["unseen_costs_db"].items()
        )
        + ".",
        "",
        "Tiles the int8 range guard recomputed in fp32, Set5 and Set14, 256² tiles: "
        + "; ".join(
            f"{name} " + ", ".join(f"×{scale} {recomputed} of {tiles}" for scale, (recomputed, tiles) in counts.items())
            for name, counts in results["recomputed_tiles"].items()
        )
        + ".",
    ]
    process, served = results["in_process"], results["served"]
    lines += [
        "",
        f"| {served['input']} → ×{served['scale']} (in process: the best of {STAGE_ROUNDS} rounds, its stages in "
        f"turns; TorchServe: the best of {ROUNDS} rounds) | requests/s | output Mpx/s | p50 (s) | p99 (s) | × limit "
        "| × forward |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| in process ({process['engine']}, {cores} lanes): decode → upscale → encode | "
        f"{1 / process['seconds']:.2f} | {process['output_mpx_per_s']:.2f} | {process['seconds']:.2f} | | "
        f"{process['of_limit']:.2f} | {process['of_forward']:.2f} |",
    ]
    stages = process["stages"]
    stage_lines = [
        "",
        f"In process, each stage alone: decode {stages['decode'] * 1e3:.0f} ms, upscale {stages['upscale'] * 1e3:.0f} "
        f"ms (the network alone over its Y plane: {stages['network'] * 1e3:.0f} ms, at the photographs' rate "
        f"{process['forward_seconds'] * 1e3:.0f} ms; the upscale on engines that cost nothing, all but the network: "
        f"{stages['pipeline'] * 1e3:.0f} ms), "
        f"encode {stages['encode'] * 1e3:.0f} ms, one after the other {process['seconds'] * 1e3:.0f} ms.",
    ]
    for setting, run in served["runs"].items():
        threads = (
            "every core" if not run["threads"] else f"{run['threads']} thread" + ("s" if run["threads"] > 1 else "")
        )
        name = f"{run['workers']} worker{'s' if run['workers'] > 1 else ''} × {threads}, {run['precision']}" + (
            " (shipped)" if setting == "shipped" else ""
        )
        for clients, load in run["load"].items():
            lines.append(
                f"| TorchServe, {name}, {clients} client{'s' if int(clients) > 1 else ''} ({load['requests']} "
                f"requests) | {load['requests_per_s']:.2f} | {load['output_mpx_per_s']:.2f} | "
                f"{load['p50_s']:.2f} | {load['p99_s']:.2f} | {load['of_limit']:.2f} | "
                f"{load['of_forward']:.2f} |"
            )
    lines += stage_lines
    memory = served["runs"]["shipped"]["memory"]
    lines += [
        "",
        f"Worker resident memory, shipped settings: {memory['idle_rss_bytes'] / 2**20:.0f} MiB after the "
        f"load above, peak {memory['peak_rss_bytes'] / 2**20:.0f} MiB answering {served['big_input']} → "
        f"×{served['scale']} (a {memory['response_bytes'] / 2**20:.1f} MiB PNG, answered in "
        f"{memory['seconds']:.1f} s).",
    ]
    lines += ["", *servers_markdown(results["servers"], served["input"], served["scale"])]
    lines += [""] + photos.markdown(results["photos"]) + [""] + video.markdown(results["video"])
    lines += [""] + storm.markdown(results["storm"])
    return "\n".join(lines + [""] + bar(results)) + "\n"


def servers_markdown(servers, given, scale):
    """The table of TorchServe against the KServe predictor, measured in turns."""
    lines = [
        f"| {given} → ×{scale}, the two servers in turns (best of {ROUNDS} rounds each) | requests/s | p50 (s) | "
        "p99 (s) | predictor ÷ TorchServe |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, label in (
        ("torchserve", "TorchServe, shipped settings, `/predictions`"),
        ("kserve_predictor", "KServe predictor, `/v2/models/srcnn/infer`"),
    ):
        for clients, load in servers[name].items():
            ratio = f"{servers['ratio'][clients]:.2f}" if name == "kserve_predictor" else ""
            lines.append(
                f"| {label}, {clients} client{'s' if int(clients) > 1 else ''} ({load['requests']} requests) "
                f"| {load['requests_per_s']:.2f} | {load['p50_s']:.2f} | {load['p99_s']:.2f} | {ratio} |"
            )
    return lines


def servers_checks(servers):
    return [
        (
            f"KServe predictor within 15% of TorchServe, {clients} client{'s' if int(clients) > 1 else ''} "
            f"({ratio:.2f}×)",
            ratio >= 0.85,
        )
        for clients, ratio in servers["ratio"].items()
    ]


def bar(results):
    """The speed bar for this machine's kind of CPU, item by item, read off these results."""
    fp32_limit, rates, isa = results["limit_gflops"], results["forward_gflops"], results["machine"]["isa"]
    default = results["choice"]["1"]["engine"]
    served_rate = results["served"]["runs"]["shipped"]["load"]["2"]["of_limit"]
    forward = rates[row(results, default)] / fp32_limit
    checks = [
        (
            f"chosen default ({default}) costs ≤ {MAX_COST_DB} dB against fp32 on Set5 and Set14 at ×2, ×3, ×4",
            results["costs_db"].get(default, 1.0) <= MAX_COST_DB,
        ),
        (
            f"chosen default costs ≤ {MAX_COST_DB} dB against fp32 on unseen images at ×2, ×3, ×4 ("
            + ", ".join(results["unseen_costs_db"])
            + ")",
            all(cost <= MAX_COST_DB for costs in results["unseen_costs_db"].values() for cost in costs.values()),
        ),
    ]
    in_process = results["in_process"]["of_limit"]
    ceilings = ", ".join(f"{name} {rate / fp32_limit:.2f}" for name, rate in results["limits"]["ceilings"].items())
    if "amx_int8" in isa or "amx_bf16" in isa:
        kind, forward_bar, process_bar, served_bar = "AMX", 8.0, None, 3.0
        checks.append(
            (f"forward faster than the peer ({PEER})", rates[row(results, default)] > rates[row(results, PEER)])
        )
    elif "avx512_vnni" in isa or "avx_vnni" in isa:
        kind, forward_bar, process_bar, served_bar = "VNNI without AMX", 2.8, 2.4, 2.0
    else:
        kind, forward_bar, process_bar, served_bar = "neither AMX nor VNNI", None, None, None
    if forward_bar:
        checks += [
            (
                f"{kind}: forward on photographs ≥ {forward_bar} × limit ({forward:.2f}; the mixed engines' "
                f"ceilings {ceilings})",
                forward >= forward_bar,
            ),
            (
                f"{kind}: served, 2 clients, 512² → ×2 ≥ {served_bar} × limit ({served_rate:.2f})",
                served_rate >= served_bar,
            ),
        ]
    if process_bar:
        checks.append(
            (
                f"{kind}: in process, decode → upscale → encode ≥ {process_bar} × limit ({in_process:.2f})",
                in_process >= process_bar,
            )
        )
    for clients, load in results["served"]["runs"]["shipped"]["load"].items():
        checks.append(
            (
                f"served, {clients} client{'s' if int(clients) > 1 else ''}, within 80% of the forward pass "
                f"({load['of_forward']:.2f}×)",
                load["of_forward"] >= 0.8,
            )
        )
    reference = REFERENCE["cpu"]
    checks.append(
        ("no slower than fp32 on this machine", rates[row(results, default)] >= rates[row(results, reference)])
    )
    for isa_name, chosen in results["simulated"].items():
        seconds = chosen["seconds"]
        checks.append(
            (
                f"ONEDNN_MAX_CPU_ISA={isa_name}: the choice ({chosen['engine']}) no slower than fp32",
                seconds[chosen["engine"]] <= seconds[reference],
            )
        )
    for name, counts in results["recomputed_tiles"].items():
        checks.append(
            (
                f"{name}: ≤ 2% of Set5/Set14 tiles recomputed at every scale",
                all(recomputed <= 0.02 * tiles for recomputed, tiles in counts.values()),
            )
        )
    memory = results["served"]["runs"]["shipped"]["memory"]
    checks.append(("worker peak RSS ≤ 1 GB answering 2048² → ×2", memory["peak_rss_bytes"] <= 1e9))
    checks += servers_checks(results["servers"]) + photos.checks(results["photos"]) + video.checks(results["video"])
    checks += storm.checks(results["storm"])
    checks += limit.checks(results["limits"], engine_rates(results))
    return bar_lines(checks)


def bar_lines(checks):
    """The bar's lines of (text, passed) checks, as the table ends with them."""
    return [f"- {'met' if passed else 'MISSED'}: {text}" for text, passed in checks]


def print_part(lines, checks):
    """Print one part of the benchmark alone: the machine, its table `lines` and its bar's `checks`."""
    described = machine()
    print(f"Machine: {described['cpu']}, {described['cores']} cores, {' '.join(described['isa'])}")
    print("\n".join([*lines, *bar_lines(checks)]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DATA_DIR,
        help="holds Set5, Set14 and T91: the photographs timed and the request image",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--requests", type=int, default=12, help="requests per client in the HTTP measurement")
    parser.add_argument("--photos-only", action="store_true", help="measure and print the photographs alone")
    parser.add_argument(
        "--servers-only", action="store_true", help="measure and print TorchServe against the KServe predictor alone"
    )
    parser.add_argument("--video-only", action="store_true", help="measure and print video against stills alone")
    parser.add_argument("--storm-only", action="store_true", help="measure and print the storm alone")
    config = parser.parse_args(argv)
    if config.storm_only:
        found = storm.storm(config.data_dir)
        print_part(storm.markdown(found), storm.checks(found))
        return
    if config.video_only:
        found = video.video(config.data_dir)
        print_part(video.markdown(found), video.checks(found))
        return
    if config.servers_only:
        body = photo_png(config.data_dir, SERVED_SIDE)
        found = json.loads(json.dumps(servers_in_turns(body, (1, 2), config.requests)))
        print_part(["", *servers_markdown(found, f"{SERVED_SIDE}² PNG", SCALE)], servers_checks(found))
        return
    if config.photos_only:
        choice = choose(ROOT / "weights", "auto", engine_threads=1)  # the served lanes' engine (cached per machine)
        found = photos.photos(config.data_dir, ROOT / "weights", choice.engine, choice.tile)
        print_part(photos.markdown(found), photos.checks(found))
        return
    results = json.loads(json.dumps(run(config)))  # keys as the JSON file has them
    table = markdown(results)
    config.out.parent.mkdir(parents=True, exist_ok=True)
    config.out.write_text(json.dumps(results, indent=2) + "\n")
    config.out.with_suffix(".md").write_text(table)
    print(table)
    over = [text for text, passed in limit.checks(results["limits"], engine_rates(results)) if not passed]
    if over:
        raise SystemExit(
            f"bench: faster than its arithmetic's limit: {'; '.join(over)}. A limit is the fastest "
            "rate anything reaches on this machine: bench/limit.py misses a faster way"
        )


if __name__ == "__main__":
    main()
