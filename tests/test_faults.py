"""Faults: a worker killed under load, a server restarted, token authorisation on, a training run killed, a signal
after OpenVINO engines came and went."""

import io
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests
import torch
from PIL import Image

from helpers import predictions_url, worker_pids
from serving.server import private_server
from srcnn.files import REPOSITORY as ROOT
from tools.hostile import encode


@pytest.fixture
def own_server(tmp_path):
    instance = private_server(tmp_path)
    instance.start(timeout=240)
    yield instance
    instance.stop()


def test_killed_worker_is_replaced_and_only_requests_in_flight_fail(own_server, scene):
    url, body, clients = predictions_url(own_server), encode(scene(48, 32)), 2
    results, stop = [], threading.Event()  # (sent at, finished at, status)

    def client():
        session = requests.Session()
        while not stop.is_set():
            sent = time.monotonic()
            try:
                status = session.put(url, data=body, timeout=120).status_code
            except requests.RequestException:
                status = 0
            results.append((sent, time.monotonic(), status))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 60
        while sum(status == 200 for _, _, status in results) < 10 and time.monotonic() < deadline:
            time.sleep(0.1)
        pids = worker_pids(own_server)
        old_pid = pids[0]
        killed_at = time.monotonic()
        os.kill(old_pid, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            later = [r for r in results if r[0] > killed_at and r[2] == 200]
            if len(later) >= 10:
                break
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=130)
    after = [r for r in results if r[1] >= killed_at]
    failed = [r for r in after if r[2] != 200]
    recovered_at = min(finished for sent, finished, status in after if status == 200 and sent > killed_at)
    print(f"\nworker SIGKILL: {len(failed)} failed requests, serving again after {recovered_at - killed_at:.1f} s")
    assert len(failed) <= clients  # only those in flight when it died
    # ... or handed to it in the moment before the frontend saw its socket close (TorchServe answers 507 and does
    # not retry on the other worker): CI saw one sent just after the kill.
    assert all(sent < killed_at + 1.0 for sent, _, _ in failed)
    assert recovered_at - killed_at < 60
    deadline = time.monotonic() + 120  # TorchServe starts a replacement worker
    while (
        len(worker_pids(own_server)) < len(pids) or old_pid in worker_pids(own_server)
    ) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(worker_pids(own_server)) == len(pids) and old_pid not in worker_pids(own_server)


def test_restarted_server_serves_the_same_model(own_server, scene):
    body = encode(scene(40, 30))
    before = requests.put(predictions_url(own_server), data=body, timeout=120)
    own_server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.put(predictions_url(own_server), data=body, timeout=10)
    own_server.start(timeout=240)
    after = requests.put(predictions_url(own_server), data=body, timeout=120)
    assert before.status_code == after.status_code == 200
    assert before.content == after.content


@pytest.mark.server
def test_token_authorisation_on(tmp_path, scene):
    instance = private_server(tmp_path, drop=("disable_token_authorization",))
    instance.start(timeout=240)  # start() itself must read key_file.json to see the model READY
    try:
        body = encode(scene(12, 10))
        refused = requests.put(predictions_url(instance), data=body, timeout=60)
        assert refused.status_code in (400, 401)
        token = instance.token("inference")
        assert token and token != instance.token("management")
        served = requests.put(predictions_url(instance), data=body, headers=instance.headers("inference"), timeout=120)
        assert served.status_code == 200
        assert Image.open(io.BytesIO(served.content)).size == (24, 20)
    finally:
        instance.stop()


@pytest.mark.slow
def test_killed_training_loses_at_most_one_checkpoint_interval(image_folder, tmp_path):
    interval_minutes = 0.03  # 1.8 s
    out = tmp_path / "w.pth"
    arguments = [
        "--scale",
        "2",
        "--data-dir",
        str(image_folder()),
        "--train-set",
        "train",
        "--eval-sets",
        "--out",
        str(out),
        "--steps",
        "400",
        "--batch-size",
        "16",
        "--threads",
        "1",
        "--validate-every",
        "1000",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--checkpoint-minutes",
        str(interval_minutes),
    ]
    command = [sys.executable, "-m", "training.train", *arguments]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = out.with_suffix(".ckpt")
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(3 * 60 * interval_minutes)
    assert process.poll() is None, "finished before it could be killed: give it more steps"
    process.kill()
    killed_at = time.time()
    process.wait()
    state = torch.load(checkpoint, weights_only=True)
    lost_seconds = killed_at - checkpoint.stat().st_mtime
    assert 0 < state["step"] < 400
    assert lost_seconds <= 60 * interval_minutes + 1.0  # one interval, plus one step and the save itself
    assert subprocess.run([*command, "--resume"], cwd=ROOT, capture_output=True).returncode == 0
    assert torch.load(checkpoint, weights_only=True)["step"] == 400


# Two OpenVINO engines, released in the order they were made, then a signal with a Python handler (which runs on the
# thread's alternate signal stack, as SIGUSR1's stack dump in a worker and uvicorn's SIGTERM in the predictor do).
AFTER_TWO_ENGINES = """
import gc, os, signal
from srcnn.engine import load_engine
from srcnn.weights import SHIPPED, weight_file
signal.signal(signal.SIGUSR1, lambda number, frame: print("handled", flush=True))
first, second = (load_engine(weight_file(SHIPPED, 2), name="openvino-int8") for _ in range(2))
del first
gc.collect()
del second
gc.collect()
os.kill(os.getpid(), signal.SIGUSR1)
print("went on", flush=True)
"""


def test_a_signal_is_handled_after_openvino_engines_came_and_went():
    run = subprocess.run(
        [sys.executable, "-c", AFTER_TWO_ENGINES], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert (run.returncode, run.stdout) == (0, "handled\nwent on\n"), run.stderr[-2000:]
