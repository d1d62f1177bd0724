"""The servers over HTTP: TorchServe's throughput and latency at 1 and 2 concurrent clients and its worker's peak
memory; and TorchServe against the KServe predictor, measured in turns on the same request."""

import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil
import requests
import yaml

from serving import MODEL_CONFIG, MODEL_NAME
from serving.predictor import Predictor
from serving.server import free_ports, private_server

ROUNDS = 2  # rounds of requests measured at each client count, the best kept


def load(url, body, clients, count):
    """`count` PUTs of `body` from `clients` threads: requests/s and the per-request latencies (s)."""
    latencies, failures, lock = [], [], threading.Lock()
    remaining = iter(range(count))

    def client():
        session = requests.Session()
        while True:
            with lock:
                if next(remaining, None) is None:
                    return
            start = time.perf_counter()
            response = session.put(url, data=body, headers={"Content-Type": "image/png"}, timeout=600)
            with lock:
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{len(failures)} of {count} requests failed, e.g. {failures[0]}")
    return count / wall, latencies


def measured(url, body, clients, requests_per_client):
    """`load` at `clients` clients: requests/s, the requests' count and their median and 99th-percentile latency."""
    rate, latencies = load(url, body, clients, clients * requests_per_client)
    return {
        "requests_per_s": rate,
        "requests": len(latencies),
        "p50_s": float(np.percentile(latencies, 50)),
        "p99_s": float(np.percentile(latencies, 99)),
    }


def best(rounds):
    """Of `measured` rounds, the one with the most requests/s: the one least disturbed by the other tenants of a
    shared machine (as the in-process times are the best of their runs)."""
    return max(rounds, key=lambda found: found["requests_per_s"])


def best_round(url, body, clients, requests_per_client, rounds=ROUNDS):
    """`measured` `rounds` times in a row; the `best`."""
    return best([measured(url, body, clients, requests_per_client) for _ in range(rounds)])


@contextmanager
def running(*servers):
    """Start `servers` (TorchServe's or the predictor's) in turn; on leaving, stop those started, the last first."""
    started = []
    try:
        for server in servers:
            server.start(timeout=300)
            started.append(server)
        yield
    finally:
        for server in reversed(started):
            server.stop()


def in_turns(urls, body, clients_counts, requests_per_client, rounds=ROUNDS):
    """Each of `urls` ({name: URL}, every server running) measured in turns `rounds` times at each client count,
    so that a slow spell of a shared machine falls on all; each keeps its `best` round. {name: {clients: measured}}."""
    for url in urls.values():
        load(url, body, 2, 4)  # warm both lanes (or workers) of each
    found = {name: {clients: [] for clients in clients_counts} for name in urls}
    for clients in clients_counts:
        for _ in range(rounds):
            for name, url in urls.items():
                found[name][clients].append(measured(url, body, clients, requests_per_client))
    return {
        name: {clients: best(rounds) for clients, rounds in by_clients.items()} for name, by_clients in found.items()
    }


def ratios(results, over, under, clients_counts):
    return {
        clients: results[over][clients]["requests_per_s"] / results[under][clients]["requests_per_s"]
        for clients in clients_counts
    }


def servers_in_turns(body, clients_counts, requests_per_client):
    """TorchServe (shipped settings, `/predictions`) and the KServe predictor (`/v2/models/srcnn/infer`, the image
    as the body) in turns. Returns {"torchserve", "kserve_predictor"}, each {clients: measured}, and "ratio"
    {clients: the predictor's requests/s over TorchServe's}."""
    with tempfile.TemporaryDirectory() as workdir:
        torchserve = private_server(Path(workdir) / "torchserve")
        predictor = Predictor(*free_ports(2), Path(workdir), Path(workdir))
        with running(torchserve, predictor):
            results = in_turns(
                {
                    "torchserve": f"{torchserve.inference_url}/predictions/{MODEL_NAME}",
                    "kserve_predictor": f"{predictor.inference_url}/v2/models/{MODEL_NAME}/infer",
                },
                body,
                clients_counts,
                requests_per_client,
            )
    results["ratio"] = ratios(results, "kserve_predictor", "torchserve", clients_counts)
    return results


def peak_rss(pid):
    """The process's resident-memory high-water mark in bytes (Linux VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def model_config_text(workers=None, threads=None, precision=None):
    """A model-config.yaml like the shipped one with other worker and thread counts or precision, as text."""
    config = yaml.safe_load(MODEL_CONFIG.read_text())
    if workers:
        config["minWorkers"] = config["maxWorkers"] = workers
    if threads:
        config["handler"]["threads"] = threads
    if precision:
        config["handler"]["precision"] = precision
    return yaml.safe_dump(config)


def served(body, clients_counts, requests_per_client, big_body=None, workers=None, threads=None, precision=None):
    """Start a private TorchServe on the shipped settings (or other `workers`, `threads`, `precision`); measure
    `body` at each client count (`best_round`), then, given `big_body`, the workers' memory while answering it.
    Returns a dict."""
    with tempfile.TemporaryDirectory() as workdir:
        model_config = Path(workdir) / "model-config.yaml"
        model_config.write_text(model_config_text(workers, threads, precision))
        server = private_server(Path(workdir), model_config=model_config)
        server.start(timeout=300)
        try:
            url = f"{server.inference_url}/predictions/{MODEL_NAME}"
            running = server.workers()
            load(url, body, len(running), 2 * len(running))  # warm every worker
            settings = yaml.safe_load(model_config.read_text())["handler"]
            results = {
                "workers": len(running),
                "threads": settings["threads"],
                "precision": settings["precision"],
                "load": {clients: best_round(url, body, clients, requests_per_client) for clients in clients_counts},
            }
            if big_body is None:
                return results
            pids = [worker["pid"] for worker in server.workers()]
            idle = {pid: psutil.Process(pid).memory_info().rss for pid in pids}
            start = time.perf_counter()
            response = requests.put(url, data=big_body, headers={"Content-Type": "image/png"}, timeout=600)
            seconds = time.perf_counter() - start
            if response.status_code != 200:
                raise RuntimeError(f"the large request got {response.status_code}: {response.text[:300]}")
            results["memory"] = {
                "idle_rss_bytes": max(idle.values()),
                "peak_rss_bytes": max(peak_rss(pid) for pid in pids),
                "response_bytes": len(response.content),
                "seconds": seconds,
            }
            return results
        finally:
            server.stop()
