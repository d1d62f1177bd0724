"""A storm of large requests beside small ones (`python -m bench --storm-only`, and `make bench`): a private
TorchServe on the shipped settings; 4 clients each send one 6000×4000 JPEG photograph at ×2 (JPEG answers) at the
same moment, while one client sends 512×384 PNG photographs at ×2 one after another until the large ones are all
answered. Measured: every status, the small requests' latencies (median, 95th percentile, largest), each large
request's time, and the workers' resident memory (idle, and their peak summed over the storm)."""

import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import requests

from bench import photos
from bench.served import model_config_text, peak_rss
from serving import MODEL_NAME
from serving.server import private_server

LARGE_CLIENTS, SMALL = 4, (512, 384)


def storm(data_dir, workers=None):
    """The storm's measurements, as a dict (`workers` overrides model-config.yaml's)."""
    large = photos.jpeg(photos.photograph(data_dir, photos.LARGE))
    small = photos.png(photos.photograph(data_dir, SMALL))
    with tempfile.TemporaryDirectory() as workdir:
        model_config = Path(workdir) / "model-config.yaml"
        model_config.write_text(model_config_text(workers))
        server = private_server(Path(workdir), model_config=model_config)
        server.start(timeout=600)
        try:
            url = f"{server.inference_url}/predictions/{MODEL_NAME}"
            pids = [worker["pid"] for worker in server.workers()]
            for _ in range(2 * len(pids)):  # every worker warm
                requests.put(url, data=small, timeout=120).raise_for_status()
            idle = [peak_rss(pid) for pid in pids]
            for pid in pids:
                photos.reset_peak(pid)
            larges, smalls, statuses, done = [], [], [], threading.Event()

            def send(body, headers, into):
                started = time.perf_counter()
                response = requests.put(url, data=body, headers=headers, timeout=1800)
                into.append(time.perf_counter() - started)
                statuses.append(response.status_code)

            senders = [
                threading.Thread(target=send, args=(large, {"Accept": "image/jpeg"}, larges))
                for _ in range(LARGE_CLIENTS)
            ]
            for sender in senders:
                sender.start()

            def small_client():
                while not done.is_set():
                    send(small, {}, smalls)

            looping = threading.Thread(target=small_client)
            looping.start()
            for sender in senders:
                sender.join()
            done.set()
            looping.join()
            peak = sum(peak_rss(pid) for pid in pids)
            after = [psutil.Process(pid).memory_info().rss for pid in pids]
        finally:
            server.stop()
    return {
        "workers": len(pids),
        "statuses": {str(status): statuses.count(status) for status in sorted(set(statuses))},
        "small": {
            "requests": len(smalls),
            "p50_s": float(np.percentile(smalls, 50)),
            "p95_s": float(np.percentile(smalls, 95)),
            "max_s": max(smalls),
        },
        "large_s": sorted(larges),
        "idle_rss_bytes": idle,
        "peak_rss_sum_bytes": peak,
        "after_rss_bytes": after,
    }


def markdown(results):
    small, workers = results["small"], results["workers"]
    return [
        f"Storm (TorchServe, {workers} workers): {LARGE_CLIENTS} clients each sending a "
        f"{photos.LARGE[0]}×{photos.LARGE[1]} JPEG → ×2 (JPEG answer) at once, one client sending "
        f"{SMALL[0]}×{SMALL[1]} PNGs → ×2 in a loop meanwhile: statuses {results['statuses']}; the small requests "
        f"({small['requests']}) p50 {small['p50_s']:.2f} s, p95 {small['p95_s']:.2f} s, largest "
        f"{small['max_s']:.2f} s; the large answered in " + ", ".join(f"{s:.0f}" for s in results["large_s"]) + " s; "
        "workers' resident memory idle " + ", ".join(f"{b / 2**20:.0f}" for b in results["idle_rss_bytes"]) + " MiB, "
        f"their peaks summed {results['peak_rss_sum_bytes'] / 2**30:.2f} GiB, after the storm "
        + ", ".join(f"{b / 2**20:.0f}" for b in results["after_rss_bytes"])
        + " MiB."
    ]


def checks(results):
    small = results["small"]
    return [
        ("storm: every request answered 200", set(results["statuses"]) == {"200"}),
        (f"storm: small requests' p95 ≤ 5 s ({small['p95_s']:.2f} s)", small["p95_s"] <= 5),
        (f"storm: small requests' largest ≤ 10 s ({small['max_s']:.2f} s)", small["max_s"] <= 10),
    ]
