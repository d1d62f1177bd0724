"""handler/admission.py: large requests take one of a few places (the others refused with a 503 and a Retry-After)
and compute one at a time, across processes; small ones are never counted nor held. And the KServe predictor,
in process: a small request is answered while a large one computes, on lanes of its own."""

import json
import subprocess
import sys
import threading
import time

import pytest
from PIL import Image

from handler.admission import Admission
from handler.protocol import ClientError, Settings
from srcnn.weights import SHIPPED
from tools.hostile import encode

LARGE = 100  # output pixels: a 10×10 answer is not large, a 10×11 one is


@pytest.fixture
def admission(tmp_path):
    return Admission(tmp_path / "places", LARGE, admitted=2)


def test_a_small_request_takes_no_place(admission):
    other = Admission(admission.folder, LARGE, admitted=2)
    with admission.place((10, 10)) as large, other.place((10, 11)), other.place((11, 10)):
        assert large is False  # both places are held by large requests, and the small one still goes in


def test_a_large_request_over_the_places_is_refused_with_a_retry_after(admission):
    admission.output_pixels_per_second = 10  # as measured over the last computation
    with admission.place((10, 11)) as large, admission.place((11, 10)):
        assert large is True
        with pytest.raises(ClientError) as refused, admission.place((20, 20)):
            pass
    assert (refused.value.status, refused.value.kind) == (503, "server_busy")
    assert refused.value.headers == {"Retry-After": "40"}  # 400 pixels at 10 a second
    assert "2 large requests" in refused.value.message and "retry in 40 s" in refused.value.message
    with admission.place((20, 20)) as large:  # the places are free again
        assert large is True


HOLDER = """
import sys, time
from handler.admission import Admission
with Admission(sys.argv[1], 100, admitted=1).place((20, 20)):
    print("held", flush=True)
    time.sleep(600)
"""


def test_places_are_shared_by_processes_and_a_dead_one_lets_go(tmp_path):
    folder = tmp_path / "places"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(ClientError), Admission(folder, LARGE, admitted=1).place((20, 20)):
            pass
    finally:
        holder.kill()
        holder.wait()
    with Admission(folder, LARGE, admitted=1).place((20, 20)) as large:
        assert large is True


@pytest.mark.parametrize("computing", [1, 2])
def test_large_requests_compute_as_many_at_a_time_as_there_are_turns(tmp_path, computing):
    admission = Admission(tmp_path / "places", LARGE, admitted=3, computing=computing)
    running, most, lock = [0], [0], threading.Lock()

    def compute(size):
        with admission.turn(size):
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            time.sleep(0.2)
            with lock:
                running[0] -= 1

    threads = [threading.Thread(target=compute, args=((20, 20),)) for _ in range(3)]
    threads += [threading.Thread(target=compute, args=((5, 5),)) for _ in range(2)]  # small: never held
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == computing + 2


def test_a_large_request_whose_client_is_gone_is_dropped_while_it_waits_for_its_turn(admission):
    asked = []

    def gone():
        asked.append(True)
        return len(asked) >= 3  # the client leaves while the request waits

    with admission.turn((20, 20)):  # another large request computes
        with pytest.raises(ClientError) as dropped, Admission(admission.folder, LARGE, 2).turn((20, 20), gone):
            pass
    assert (dropped.value.status, dropped.value.kind, len(asked)) == (499, "client_gone", 3)
    with admission.turn((20, 20), lambda: True):  # a turn free at once: computed, whoever asks
        pass


# --- the KServe predictor, in process ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def predictor():
    from predictor.model import SRCNNModel

    settings = Settings(precision="onnxruntime-fp32", threads=1, large_output_pixels=LARGE)
    model = SRCNNModel("srcnn", SHIPPED, settings, workers=2)
    model.load()
    return model


def test_the_predictor_answers_a_small_request_while_a_large_one_computes(predictor):
    started, release = threading.Event(), threading.Event()
    large_upscaler = predictor.upscalers[True]
    compute = large_upscaler.upscale

    def held(image, **options):
        started.set()
        release.wait(60)
        return compute(image, **options)

    large_upscaler.upscale = held
    answers = {}
    try:
        thread = threading.Thread(
            target=lambda: answers.setdefault("large", predictor.rest(encode(Image.new("RGB", (8, 8))), {}))
        )
        thread.start()
        assert started.wait(60)
        status, body, content_type, _ = predictor.rest(encode(Image.new("RGB", (5, 5))), {})  # 10×10: small
        assert (status, content_type, answers) == (200, "image/png", {})  # while the large one still computes
        refused = predictor.rest(encode(Image.new("RGB", (8, 8))), {})  # one place (2 threads): taken
        assert refused[0] == 503 and refused[3]["Retry-After"].isdigit()
        assert json.loads(refused[1])["type"] == "server_busy"
    finally:
        release.set()
        thread.join()
        del large_upscaler.upscale
    assert answers["large"][0] == 200
