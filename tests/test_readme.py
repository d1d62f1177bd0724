"""The README's command sequences, run exactly as written, apart from any TorchServe the user is running."""

import os
import re
import subprocess

from PIL import Image

from serving.server import Server
from srcnn.files import REPOSITORY as ROOT


def fenced_block_after(heading):
    """The first ``` block after a README heading, as text."""
    text = (ROOT / "README.md").read_text()
    return re.search(r"```\n(.*?)```", text[text.index(heading):], re.S).group(1)


def isolated(tmp_path):
    """(command prefix, environment) for a sequence that serves on config.properties' own ports: a TMPDIR of its
    own (where TorchServe keeps its pid file) and, where `unshare` can make one, a network namespace of its own
    with a fresh loopback, so that a server the user started with `make serve` neither blocks nor answers it."""
    environment = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    try:
        separate = subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=30).returncode == 0
    except FileNotFoundError:
        separate = False
    if separate:
        return ["unshare", "-rn", "bash", "-c", 'ip link set lo up && exec "$@"', "isolated"], environment
    problem = Server(tmpdir=tmp_path / "tmp").start_problem()  # no namespace: the ports must be free here
    assert problem is None, f"the README's sequence cannot run here: {problem}"
    return [], environment


def stop(environment):
    subprocess.run(["bash", "-c", "source .venv/bin/activate && torchserve --stop --foreground"], cwd=ROOT,
                   capture_output=True, timeout=120, env=environment)


def test_the_without_make_sequence_serves_and_stops(tmp_path):
    block = fenced_block_after("### Without make")
    prefix, environment = isolated(tmp_path)
    answer = ROOT / "big.png"
    try:
        result = subprocess.run([*prefix, "bash", "-euo", "pipefail", "-c", block], cwd=ROOT, capture_output=True,
                                text=True, timeout=600, env=environment)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        with Image.open(ROOT / "data" / "Set5" / "butterfly.png") as image, Image.open(answer) as big:
            assert big.size == (2 * image.width, 2 * image.height)
    finally:
        stop(environment)
        answer.unlink(missing_ok=True)


def test_torchserves_own_commands_work_as_typed(tmp_path):
    block = fenced_block_after("### TorchServe's own commands")
    prefix, environment = isolated(tmp_path)
    lines = block.strip().splitlines()
    assert lines[2] == "torchserve --start --models srcnn.mar"
    # As typed, but with a real image for img.png, the frontend's terminal output kept in a file, and a wait for
    # READY before the curl line (the README says the model answers a few seconds after --start returns).
    curl = lines[3].replace("img.png", str(ROOT / "data" / "Set5" / "bird.png")).replace("big.png",
                                                                                       str(tmp_path / "big.png"))
    script = "\n".join([*lines[:2], f"{lines[2]} > {tmp_path / 'console.log'} 2>&1",
                        "timeout 180 sh -c 'until curl -s localhost:8081/models/srcnn | grep -q READY; do sleep 1; "
                        "done'", curl, lines[4]])
    try:
        result = subprocess.run([*prefix, "env", "-u", "TS_CONFIG_FILE", "bash", "-euo", "pipefail", "-c", script],
                                cwd=ROOT, capture_output=True, text=True, timeout=600, env=environment)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert Image.open(tmp_path / "big.png").size == (576, 576)  # bird.png is 288²
    finally:
        stop(environment)


def test_the_srcnn_command_lines_work_as_written(tmp_path, scene):
    lines = fenced_block_after("## Without a server").strip().splitlines()
    assert "--server" in lines[3]  # the server line is tests/test_cli.py's
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    scene(320, 240).save(tmp_path / "img.png")
    (tmp_path / "photos").mkdir()
    for index in range(2):
        scene(30, 20, seed=index).save(tmp_path / "photos" / f"p{index}.png")
    for line in lines[:3]:
        result = subprocess.run(["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
    sizes = {path: Image.open(tmp_path / path).size for path in ("img_x2.5.png", "big.webp", "big/p0_x3.png")}
    assert sizes == {"img_x2.5.png": (800, 600), "big.webp": (1920, 1440), "big/p0_x3.png": (90, 60)}


def test_the_python_line_prints_the_size():
    line = fenced_block_after("### From Python: `Upscaler`").strip()
    assert line.startswith("python -c ")
    result = subprocess.run(["bash", "-c", f".venv/bin/{line}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == "(100, 75)\n"
