"""Soak the running server: a bounded mix of valid and hostile requests from concurrent clients.

    python -m tools.soak [--config config.properties] [--requests 2000] [--clients 4] [--hostile 0.2]

Reports the requests, the count of each status, p50/p99 latency, worker restarts, the workers' resident memory
before and after a warm-up pass (200 valid requests and the hostile corpus, not counted) and at the end, and
every answer that is not the one its case must get. Exits 1 when the
bar is missed: any wrong answer (an unexpected 5xx included), any restart, or memory growth of 10% or more.
"""

import argparse
import json
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import psutil
import requests
import yaml

from serving import MODEL_CONFIG, MODEL_NAME
from serving.server import Server
from srcnn.files import REPOSITORY as ROOT
from srcnn.weights import SCALES
from tools.hostile import Case, corpus, encode, sample_image

FORMATS = ("PNG", "JPEG", "WEBP")


def valid_cases(count, rng):
    """`count` valid requests of varied sizes (16..128 a side), modes, formats and scales."""
    cases = []
    for index in range(count):
        width, height, scale = rng.randint(16, 128), rng.randint(16, 128), rng.choice(SCALES)
        image = sample_image(width, height, rng.choice(("RGB", "L", "RGBA")))
        format = rng.choice(FORMATS) if image.mode != "RGBA" else "PNG"
        cases.append(
            Case(
                f"valid {index}",
                encode(image, format),
                headers={"X-Scale": str(scale), "Content-Type": f"image/{format.lower()}"},
                size=(width * scale, height * scale),
            )
        )
    return cases


def worker_processes(server):
    """{pid: psutil.Process} of the model's workers."""
    return {worker["pid"]: psutil.Process(worker["pid"]) for worker in server.workers()}


def resident(processes):
    """Total resident memory of `processes` in bytes."""
    return sum(process.memory_info().rss for process in processes.values())


def run(server, cases, clients):
    """Send every case once from `clients` threads; return [(case, status, seconds, problem)]."""
    queue, results, lock = list(enumerate(cases)), [None] * len(cases), threading.Lock()

    def client():
        session = requests.Session()
        while True:
            with lock:
                if not queue:
                    return
                index, case = queue.pop()
            started = time.perf_counter()
            try:
                response = case.send(session, server.inference_url)
                status, problem = response.status_code, case.problem(response)
            except requests.RequestException as error:
                status, problem = 0, f"{case.name}: {error}"
            results[index] = (case, status, time.perf_counter() - started, problem)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.properties")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--hostile", type=float, default=0.2, help="share of hostile requests")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warm-up", type=int, default=200, help="valid requests sent before measuring")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    server = Server(config=args.config)
    if not server.workers():
        print(f"no {MODEL_NAME} worker answers at {server.management_url}: start the server (make serve)")
        return 2
    rng = random.Random(args.seed)
    limits = yaml.safe_load(MODEL_CONFIG.read_text())["handler"]
    hostile = [
        case
        for case in corpus(
            limits["max_input_pixels"], limits["max_output_pixels"], int(server.properties["max_request_size"])
        )
        if not case.heavy
    ]
    count = round(args.requests * args.hostile)
    cases = valid_cases(args.requests - count, rng) + [rng.choice(hostile) for _ in range(count)]
    rng.shuffle(cases)

    rss_idle = resident(worker_processes(server))
    # Warm-up, not counted: allocators and per-shape caches fill up over the first hundred or so requests of
    # varied sizes and then stay flat; growth is measured after that.
    run(server, valid_cases(args.warm_up, random.Random(args.seed + 1)) + hostile, args.clients)
    processes = worker_processes(server)
    rss_start = resident(processes)
    started = time.perf_counter()
    results = run(server, cases, args.clients)
    wall = time.perf_counter() - started
    end_processes = worker_processes(server)
    restarts = len(set(processes) - set(end_processes))
    rss_end = resident(end_processes) if not restarts else None
    latencies = np.array([seconds for _, _, seconds, _ in results])
    problems = [problem for *_, problem in results if problem]
    report = {
        "requests": len(results),
        "clients": args.clients,
        "hostile_share": args.hostile,
        "wall_s": round(wall, 1),
        "status_counts": dict(sorted(Counter(str(status) for _, status, _, _ in results).items())),
        "latency_p50_ms": round(1000 * float(np.percentile(latencies, 50)), 1),
        "latency_p99_ms": round(1000 * float(np.percentile(latencies, 99)), 1),
        "wrong_answers": len(problems),
        "unexpected_5xx": sum(status >= 500 for _, status, _, problem in results if problem),
        "workers": len(processes),
        "worker_restarts": restarts,
        "warm_up_requests": args.warm_up + len(hostile),
        "workers_rss_idle_mb": round(rss_idle / 2**20, 1),  # all workers together
        "workers_rss_start_mb": round(rss_start / 2**20, 1),
        "workers_rss_end_mb": None if rss_end is None else round(rss_end / 2**20, 1),
        "rss_growth": None if rss_end is None else round(rss_end / rss_start - 1, 4),
        "problems": problems[:20],
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    passed = (
        not problems
        and report["worker_restarts"] == 0
        and report["rss_growth"] is not None
        and report["rss_growth"] < 0.10
    )
    print("soak: PASS" if passed else "soak: FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
