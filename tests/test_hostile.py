"""Every case of the hostile corpus through the real server: the documented answer, then a good request served
by the same worker process."""

import pytest
import requests

from helpers import LIMITS, predictions_url, worker_pids
from srcnn.files import REPOSITORY as ROOT
from srcnn.files import read_properties
from tools.hostile import corpus, encode, sample_image

CASES = corpus(
    LIMITS["max_input_pixels"],
    LIMITS["max_output_pixels"],
    int(read_properties(ROOT / "config.properties")["max_request_size"]),
)


def test_the_corpus_has_at_least_forty_kinds():
    assert len({case.name for case in CASES}) == len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_request(server, case):
    session = requests.Session()
    pids = worker_pids(server)
    assert pids, "no worker"
    problem = case.problem(case.send(session, server.inference_url))
    assert problem is None, problem
    good = session.put(predictions_url(server), data=encode(sample_image(9, 7)), timeout=120)
    assert good.status_code == 200
    assert worker_pids(server) == pids, "the worker was restarted"
