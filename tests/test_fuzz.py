import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_fuzz_harness_runs_clean_for_a_few_seconds(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tools.fuzz", "--seconds", "10", "--corpus", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = int(re.search(r"Done (\d+) runs", result.stderr).group(1))
    assert runs > 100
    assert len(list(tmp_path.iterdir())) > 8  # the seeds, plus inputs that found new coverage
