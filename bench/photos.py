"""Photographs through the server (the bar for photographs): a 12-megapixel photo alone on the server against
the forward pass its Y plane needs, and a worker's peak memory answering a 24-megapixel photo at ×2.

    python -m bench --photos-only

The photos are Set14's largest image, bicubic-resized and saved as JPEG (quality 92), so that their texture, and
so their PNG sizes and encode times, are a photograph's. The forward pass is the default engine over the Y plane
the network sees for 4032×3024 → ×2 (8064×6048), on every core two ways: the engine's own threads, and the
stripes on single-threaded lanes the service computes with (srcnn.cores.in_stripes); the faster is the bar's
reference. Then a private TorchServe on the shipped settings answers 4032×3024 → ×2 as PNG with no other request,
and 6000×4000 → ×2 as JPEG (Accept: image/jpeg), its workers' peak resident memory (VmHWM) reset just before.
"""

import io
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
from PIL import Image

from bench.compute import engine_ways
from bench.served import peak_rss
from serving import MODEL_NAME
from serving.server import private_server
from srcnn.color import rgb_to_channel
from srcnn.cores import machine_cores
from srcnn.imaging import resize_plane
from srcnn.weights import weight_file
from training.data import list_images

PHONE, LARGE, SCALE = (4032, 3024), (6000, 4000), 2


def photograph(data_dir, size):
    """A photograph of `size` = (width, height): Set14's largest image, bicubic-resized (PIL, RGB)."""

    def pixels(path):
        with Image.open(path) as image:
            return image.width * image.height

    with Image.open(max(list_images(Path(data_dir) / "Set14"), key=pixels)) as image:
        return image.convert("RGB").resize(size, Image.Resampling.BICUBIC)


def jpeg(image):
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def png(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def forward_seconds(weights, name, tile, plane):
    """{way: seconds} of the engine `name` in `tile`² tiles over `plane` on every core, both ways
    (bench.compute.engine_ways)."""
    seconds = {}
    for way, run in engine_ways(weight_file(weights, SCALE), name, machine_cores(), tile)[1].items():
        started = time.perf_counter()
        run(plane)
        seconds[way] = time.perf_counter() - started
    return seconds


def reset_peak(pid):
    """Start the process's VmHWM afresh (Linux: 5 > /proc/PID/clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def photos(data_dir, weights, name, tile):
    """The photo rows of `make bench`, as a dict."""
    phone = photograph(data_dir, PHONE)
    plane = rgb_to_channel(np.asarray(phone), 0)
    plane = resize_plane(plane, (PHONE[0] * SCALE, PHONE[1] * SCALE))
    results = {"engine": name, "tile": tile, "forward_s": forward_seconds(weights, name, tile, plane)}
    del plane
    bodies = {"phone": jpeg(phone), "large": jpeg(photograph(data_dir, LARGE))}
    with tempfile.TemporaryDirectory() as workdir:
        server = private_server(Path(workdir))
        server.start(timeout=600)
        try:
            url = f"{server.inference_url}/predictions/{MODEL_NAME}"
            requests.put(url, data=jpeg(photograph(data_dir, (64, 48))), timeout=60).raise_for_status()  # warm
            started = time.perf_counter()
            answer = requests.put(url, data=bodies["phone"], timeout=1800)
            answer.raise_for_status()
            results["phone"] = {
                "input": "x".join(map(str, PHONE)),
                "output": answer.headers["X-Output-Size"],
                "seconds": time.perf_counter() - started,
                "response_bytes": len(answer.content),
            }
            pids = [worker["pid"] for worker in server.workers()]
            idle = max(peak_rss(pid) for pid in pids)  # each worker's peak so far, before the reset
            for pid in pids:
                reset_peak(pid)
            started = time.perf_counter()
            answer = requests.put(url, data=bodies["large"], headers={"Accept": "image/jpeg"}, timeout=1800)
            answer.raise_for_status()
            seconds = time.perf_counter() - started
            peak = max(peak_rss(pid) for pid in pids)
            output = LARGE[0] * SCALE * LARGE[1] * SCALE
            results["large"] = {
                "input": "x".join(map(str, LARGE)),
                "output": answer.headers["X-Output-Size"],
                "seconds": seconds,
                "response_bytes": len(answer.content),
                "peak_rss_bytes": peak,
                "peak_before_bytes": idle,
                "bytes_per_output_pixel": peak / output,
            }
        finally:
            server.stop()
    fastest = min(results["forward_s"].values())
    results["phone"]["of_forward"] = results["phone"]["seconds"] / fastest
    return results


def markdown(results):
    """Lines for bench/results.md."""
    forward = ", ".join(f"{way} {seconds:.1f} s" for way, seconds in results["forward_s"].items())
    phone, large = results["phone"], results["large"]
    return [
        f"Photographs ({results['engine']}, {results['tile']}² tiles): the forward pass alone over "
        f"{PHONE[0] * SCALE}×{PHONE[1] * SCALE} (a {PHONE[0]}×{PHONE[1]} photo's ×2 Y plane): {forward}. "
        f"TorchServe, shipped settings, alone: {phone['input']} JPEG → {phone['output']} PNG "
        f"({phone['response_bytes'] / 2**20:.1f} MiB) in {phone['seconds']:.1f} s, **{phone['of_forward']:.2f}× "
        f"the faster forward pass**; {large['input']} JPEG → {large['output']} JPEG "
        f"({large['response_bytes'] / 2**20:.1f} MiB) in {large['seconds']:.1f} s, worker peak "
        f"**{large['peak_rss_bytes'] / 2**20:.0f} MiB, {large['bytes_per_output_pixel']:.1f} bytes per output "
        f"pixel** (its peak before, at start-up and the warm-up: {large['peak_before_bytes'] / 2**20:.0f} MiB)."
    ]


def checks(results):
    """The bar's lines for photographs."""
    phone, large = results["phone"], results["large"]
    return [
        (
            f"a {phone['input']} photo → ×2 alone within 1.3× the forward pass on every core "
            f"({phone['of_forward']:.2f}×)",
            phone["of_forward"] <= 1.3,
        ),
        (
            f"worker peak ≤ 1.5 GB answering {large['input']} → ×2 ({large['peak_rss_bytes'] / 1e9:.2f} GB)",
            large["peak_rss_bytes"] <= 1.5e9,
        ),
    ]
