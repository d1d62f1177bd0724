"""The README's command sequences, run exactly as written."""

import re
import subprocess

from PIL import Image

from handler.deploy import ROOT, Server


def fenced_block_after(heading):
    """The first ``` block after a README heading, as text."""
    text = (ROOT / "README.md").read_text()
    return re.search(r"```\n(.*?)```", text[text.index(heading):], re.S).group(1)


def test_the_without_make_sequence_serves_and_stops():
    block = fenced_block_after("### Without make")
    problem = Server().start_problem()  # the sequence serves on config.properties' ports
    assert problem is None, f"the README's sequence cannot run here: {problem}"
    answer = ROOT / "big.png"
    try:
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=ROOT, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        with Image.open(ROOT / "data" / "Set5" / "butterfly.png") as image, Image.open(answer) as big:
            assert big.size == (2 * image.width, 2 * image.height)
    finally:
        subprocess.run(["bash", "-c", "source .venv/bin/activate && torchserve --stop --foreground"], cwd=ROOT,
                       capture_output=True, timeout=120)
        answer.unlink(missing_ok=True)
