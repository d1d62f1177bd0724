"""The benchmark behind the README's Speed section (`make bench`), every number from one run on this machine.

    python -m bench [--out bench/results.json] [--requests 12]

Measures the limit (the best fp32 matrix multiply of numpy and torch), the SRCNN forward pass at 128²–2048²
for eager torch on the full image, a default ONNX Runtime session, the shipped engine in each CPU precision
(fp32, int8, bf16) and OpenVINO's fp32 and bf16 as peers, the handler's work in process (decode PNG → upscale →
encode PNG), TorchServe over HTTP at 512² → ×2 with 1 and 2 clients (the shipped model-config.yaml, the same in
each other precision, and 1 worker × 2 threads), and the worker's peak resident memory answering 2048² → ×2.
Writes the JSON and a Markdown table beside it (results.md), and prints the table. A run takes about ten
minutes on the 2-core machine; OpenVINO comes from requirements-bench.txt (make bench installs it).
"""

import argparse
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from PIL import Image

from bench import ROOT
from bench.compute import end_to_end, forward_rates, matmul_limit
from bench.served import served
from srcnn.engine import DEFAULT_PRECISION, PRECISIONS
from srcnn.imaging import resize_plane
from srcnn.weights import load_model, weight_file
from training.data import DATA_DIR, ground_truth_y, list_images

SIZES = (128, 256, 512, 1024, 2048)
SERVED_SIDE, BIG_SIDE, SCALE = 512, 2048, 2


def photo_png(data_dir, side):
    """PNG bytes of a side × side photograph: Set14's largest image, bicubic-resized (a natural image, so the
    PNG sizes and encode times are those of real uploads, not of noise or flat colour)."""
    def pixels(path):
        with Image.open(path) as image:
            return image.width * image.height

    largest = max(list_images(Path(data_dir) / "Set14"), key=pixels)
    with Image.open(largest) as image:
        square = image.convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    square.save(buffer, format="PNG")
    return buffer.getvalue()


def network_input(data_dir, side):
    """A side² Y plane like those the network runs on: `photo_png`'s photograph at half the side, bicubic ×2."""
    with Image.open(io.BytesIO(photo_png(data_dir, side // 2))) as image:
        y = ground_truth_y(np.asarray(image.convert("RGB")))
    return resize_plane(y, (side, side))


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "onnxruntime": onnxruntime.__version__, "openvino": openvino_version(), "numpy": np.__version__,
            "python": platform.python_version()}


def openvino_version():
    try:
        from openvino import __version__
    except ImportError:
        return None
    return __version__


def run(config):
    started = time.perf_counter()
    weights = ROOT / "weights"
    flop = load_model(weight_file(weights, SCALE)).flops_per_pixel
    results = {"machine": machine(), "flop_per_output_pixel": flop}
    print("limit: fp32 matrix multiply ...", file=sys.stderr)
    results["matmul_gflops"] = matmul_limit()
    limit = max(results["matmul_gflops"].values())
    results["limit_gflops"] = limit
    print("forward pass per engine ...", file=sys.stderr)
    planes = {size: network_input(config.data_dir, size) for size in SIZES}
    results["forward_gflops"], results["int8_fp32_tiles"] = forward_rates(weight_file(weights, SCALE), planes, flop)
    served_output_side = SERVED_SIDE * SCALE
    # The default engine's speed on the plane a 512² → ×2 request runs it on (1024²), in output pixels per second.
    forward_pixels = results["forward_gflops"][default_engine(results)][served_output_side] * 1e9 / flop

    body = photo_png(config.data_dir, SERVED_SIDE)
    print("in-process decode → upscale → encode ...", file=sys.stderr)
    seconds = end_to_end(weights, body, SCALE)
    pixels = served_output_side**2
    results["in_process"] = {"input": f"{SERVED_SIDE}² PNG", "scale": SCALE, "seconds": seconds,
                             "output_mpx_per_s": pixels / seconds / 1e6,
                             "of_limit": pixels / seconds * flop / 1e9 / limit,
                             "of_forward": pixels / seconds / forward_pixels}
    print("TorchServe over HTTP: the shipped settings, each other precision, 1 worker × 2 threads ...",
          file=sys.stderr)
    runs = {"shipped": served(body, (1, 2), config.requests, photo_png(config.data_dir, BIG_SIDE))}
    for precision in PRECISIONS["cpu"]:
        if precision != DEFAULT_PRECISION["cpu"]:
            runs[precision] = served(body, (1, 2), config.requests, precision=precision)
    runs["alternative"] = served(body, (1, 2), config.requests, workers=1, threads=2)
    for run in runs.values():
        for load in run["load"].values():
            rate = load["requests_per_s"] * pixels
            load.update(output_mpx_per_s=rate / 1e6, of_limit=rate * flop / 1e9 / limit,
                        of_forward=rate / forward_pixels)
    results["served"] = {"input": f"{SERVED_SIDE}² PNG", "scale": SCALE, "big_input": f"{BIG_SIDE}² PNG",
                         "runs": runs}
    results["seconds"] = time.perf_counter() - started
    return results


def default_engine(results):
    """The forward table's row of the service's default precision."""
    return next(name for name in results["forward_gflops"] if name.endswith("(shipped default)"))


def markdown(results):
    """The results as the Markdown the README quotes."""
    limit = results["limit_gflops"]
    matmul = results["matmul_gflops"]
    lines = [f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores; torch "
             f"{results['machine']['torch']}, ONNX Runtime {results['machine']['onnxruntime']}, OpenVINO "
             f"{results['machine']['openvino']}. Limit: fp32 matrix multiply {limit:.0f} GFLOP/s (numpy "
             f"{matmul['numpy']:.0f}, torch {matmul['torch']:.0f}). SRCNN: {results['flop_per_output_pixel']:,} "
             f"FLOP per output pixel. Run took {results['seconds'] / 60:.1f} min.", "",
             "| forward, GFLOP/s (× limit) | " + " | ".join(f"{size}²" for size in SIZES) + " |",
             "| --- |" + " --- |" * len(SIZES)]
    for name, rates in results["forward_gflops"].items():
        lines.append(f"| {name} | " + " | ".join(f"{rates[size]:.0f} ({rates[size] / limit:.2f})"
                                                   for size in SIZES) + " |")
    lines += ["", f"Forward planes: Set14's largest photograph at half the side, bicubic ×2 (what the network sees). "
                  f"Tiles the int8 engine ran in fp32 (its range guard): {results['int8_fp32_tiles']}."]
    process, served = results["in_process"], results["served"]
    lines += ["", f"| {served['input']} → ×{served['scale']} | requests/s | output Mpx/s | p50 (s) | p99 (s) "
                  "| × limit | × in-process forward |",
              "| --- | --- | --- | --- | --- | --- | --- |",
              f"| in process: decode → upscale → encode | {1 / process['seconds']:.2f} | "
              f"{process['output_mpx_per_s']:.2f} | {process['seconds']:.2f} | | {process['of_limit']:.2f} | "
              f"{process['of_forward']:.2f} |"]
    for setting, run in served["runs"].items():
        name = f"{run['workers']} worker{'s' if run['workers'] > 1 else ''} × {run['threads']} thread" + \
            ("s" if run["threads"] > 1 else "") + f", {run['precision']}" + \
            (" (shipped)" if setting == "shipped" else "")
        for clients, load in run["load"].items():
            lines.append(f"| TorchServe, {name}, {clients} client{'s' if clients > 1 else ''} ({load['requests']} "
                         f"requests) | {load['requests_per_s']:.2f} | {load['output_mpx_per_s']:.2f} | "
                         f"{load['p50_s']:.2f} | {load['p99_s']:.2f} | {load['of_limit']:.2f} | {load['of_forward']:.2f} |")
    memory = served["runs"]["shipped"]["memory"]
    lines += ["", f"Worker resident memory, shipped settings: {memory['idle_rss_bytes'] / 2**20:.0f} MiB after the "
                  f"load above, peak {memory['peak_rss_bytes'] / 2**20:.0f} MiB answering {served['big_input']} → "
                  f"×{served['scale']} (a {memory['response_bytes'] / 2**20:.1f} MiB PNG, answered in "
                  f"{memory['seconds']:.1f} s)."]
    return "\n".join(lines + [""] + bar(results)) + "\n"


def bar(results):
    """The speed bar, item by item, read off these results."""
    limit, rates = results["limit_gflops"], results["forward_gflops"]
    default = default_engine(results)
    fp32 = next(name for name in rates if name.startswith("fp32:"))
    peer = next(name for name in rates if name.startswith("OpenVINO bf16"))
    shipped = results["served"]["runs"]["shipped"]
    checks = [
        ("shipped default forward ≥ 1.6 × limit at 512²–2048²",
         all(rates[default][size] >= 1.6 * limit for size in SIZES[2:])),
        ("shipped default forward faster than OpenVINO bf16 at 512²–2048²",
         all(rates[default][size] > rates[peer][size] for size in SIZES[2:])),
        ("fp32 engine forward ≥ 0.85 × limit at 256²–2048²", all(rates[fp32][size] >= 0.85 * limit
                                                                 for size in SIZES[1:])),
        ("served, shipped settings, 2 clients: ≥ 1.3 × limit", shipped["load"][2]["of_limit"] >= 1.3),
        ("worker peak RSS ≤ 1 GB answering 2048² → ×2", shipped["memory"]["peak_rss_bytes"] <= 1e9),
    ]
    return [f"- {'met' if passed else 'MISSED'}: {text}" for text, passed in checks]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR,
                        help="holds Set14, whose largest photograph is the request image")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--requests", type=int, default=12, help="requests per client in the HTTP measurement")
    config = parser.parse_args(argv)
    results = run(config)
    table = markdown(results)
    config.out.parent.mkdir(parents=True, exist_ok=True)
    config.out.write_text(json.dumps(results, indent=2) + "\n")
    config.out.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
