"""tools/fuzz.py: the atheris harness runs clean for a few seconds, and a crash is its fail verdict."""

import re
import subprocess
import sys

import pytest

from srcnn.files import REPOSITORY as ROOT

pytestmark = pytest.mark.slow  # atheris runs for seconds


def test_fuzz_harness_runs_clean_for_a_few_seconds(tmp_path):
    corpus, log = tmp_path / "corpus", tmp_path / "fuzz.log"
    result = subprocess.run(
        [sys.executable, "-m", "tools.fuzz", "--seconds", "10", "--corpus", str(corpus), "--log", str(log)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    verdict = result.stdout.strip().splitlines()
    assert len(verdict) == 1, result.stdout  # libFuzzer's chatter goes to the log, not the terminal
    match = re.fullmatch(
        r"fuzz: PASS, no crash in 10 s: ([\d,]+) inputs, ([\d,]+) coverage edges, "
        r"([\d,]+) corpus entries; log (\S+)",
        verdict[0],
    )
    assert match, verdict[0]
    assert int(match.group(1).replace(",", "")) > 100 and match.group(4) == str(log)
    assert "Done" in log.read_text()
    assert len(list(corpus.iterdir())) > 8  # the seeds, plus inputs that found new coverage


def test_a_crash_is_a_fail_verdict():
    from tools.fuzz import verdict

    output = (
        "#2 INITED cov: 10 ft: 11 corp: 3/30b\n==1== ERROR: libFuzzer: deadly signal\n"
        "stat::number_of_executed_units: 77\nTest unit written to ./crash-abc\n"
    )
    assert (
        verdict(1, output, 5) == "fuzz: FAIL (exit status 1) after 77 inputs, 10 coverage edges, 3 corpus "
        "entries; reproducer ./crash-abc"
    )
