"""The command blocks of the README and docs/, run as written (tests/pages.py finds them by their marker): the
ones that serve on config.properties' ports apart from any TorchServe the user is running, the others against
the tests' own server with only its address put in."""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time

import psutil
import pytest
from PIL import Image

from pages import command_block, table_after
from serving.predictor import Predictor
from serving.server import Server
from srcnn.files import REPOSITORY as ROOT

BIRD = ROOT / "data" / "Set5" / "bird.png"  # 288²


def isolated(tmp_path):
    """(command prefix, environment) for a sequence that serves on config.properties' own ports: a temporary
    folder of its own as TMPDIR (where the launcher keeps TorchServe's pid file) and TEMP (the Java frontend's
    java.io.tmpdir: its workers' sockets, .ts.sock.9000 and up, and the unpacked archive), and, where `unshare`
    can make one, a network namespace of its own with a fresh loopback, so that a server the user started with
    `make serve`, or the sequence before, neither blocks nor answers it: sockets in a folder are not a network's."""
    environment = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "TEMP": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    try:
        separate = subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=30).returncode == 0
    except FileNotFoundError:
        separate = False
    if separate:
        return ["unshare", "-rn", "bash", "-c", 'ip link set lo up && exec "$@"', "isolated"], environment
    problem = Server(tmpdir=tmp_path / "tmp").start_problem()  # no namespace: the ports must be free here
    assert problem is None, f"the sequence cannot run here: {problem}"
    return [], environment


def stop(environment):
    subprocess.run(
        ["bash", "-c", "source .venv/bin/activate && torchserve --stop --foreground"],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        env=environment,
    )


def run_isolated(script, prefix, environment, workdir=ROOT, timeout=600):
    """Run `script` under bash -euo pipefail; a failure or a hang (`timeout` seconds) fails the test with the
    script's output and the end of the logs that the sequence's TorchServe writes in `workdir`/logs, where a hang
    also has the stacks of its workers' threads."""
    try:
        result = subprocess.run(
            [*prefix, "bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=environment,
        )
    except subprocess.TimeoutExpired as hung:
        output = [
            text.decode(errors="replace") if isinstance(text, bytes) else text or ""
            for text in (hung.stdout, hung.stderr)
        ]
        for worker in psutil.process_iter(["cmdline"]):  # the sequence's workers: their sockets are in its TEMP
            command = " ".join(worker.info["cmdline"] or ())
            if "model_service_worker.py" in command and environment["TEMP"] in command:
                with contextlib.suppress(psutil.Error):  # it may have ended meanwhile
                    worker.send_signal(signal.SIGUSR1)  # the handler writes its threads' stacks to the model log
        time.sleep(2)
        pytest.fail(
            f"the sequence did not end in {hung.timeout} s\n{output[0][-2000:]}{output[1][-2000:]}\n"
            f"{Server(workdir=workdir).log_tail(lines=120)}"
        )
    assert result.returncode == 0, (
        result.stdout[-2000:] + result.stderr[-2000:] + "\n" + Server(workdir=workdir).log_tail()
    )
    return result


def size_of(path):
    with Image.open(path) as image:
        return image.size


@pytest.mark.server
def test_the_set_up_serves_and_the_curl_line_answers(tmp_path):
    setup = command_block("README.md", "set-up").splitlines()
    assert setup[0].startswith("make serve ") and setup[1].startswith("make test ")  # make test: what CI runs
    curl = command_block("README.md", "curl").strip().replace("img.png", str(BIRD))
    answer = tmp_path / "big.png"
    prefix, environment = isolated(tmp_path)
    try:
        run_isolated("\n".join([setup[0], curl.replace("big.png", str(answer)), "make stop"]), prefix, environment)
        assert size_of(answer) == (576, 576)
    finally:
        stop(environment)


@pytest.mark.server
def test_the_without_make_sequence_serves_and_stops(tmp_path):
    block = command_block("docs/deployment.md", "without-make")
    prefix, environment = isolated(tmp_path)
    answer = ROOT / "big.png"
    try:
        run_isolated(block, prefix, environment)
        with Image.open(ROOT / "data" / "Set5" / "butterfly.png") as image:
            assert size_of(answer) == (2 * image.width, 2 * image.height)
    finally:
        stop(environment)
        answer.unlink(missing_ok=True)


@pytest.mark.server
def test_torchserves_own_commands_work_as_typed(tmp_path):
    lines = command_block("docs/deployment.md", "torchserve-commands").strip().splitlines()
    assert lines[2] == "torchserve --start --models srcnn.mar"
    # As typed, but with a real image for img.png, the frontend's terminal output kept in a file, and a wait for
    # READY before the curl line (the page says the model answers a few seconds after --start returns).
    curl = lines[3].replace("img.png", str(BIRD)).replace("big.png", str(tmp_path / "big.png"))
    script = "\n".join(
        [
            *lines[:2],
            f"{lines[2]} > {tmp_path / 'console.log'} 2>&1",
            "timeout 180 sh -c 'until curl -s localhost:8081/models/srcnn | grep -q READY; do sleep 1; done'",
            curl,
            lines[4],
        ]
    )
    prefix, environment = isolated(tmp_path)
    try:
        run_isolated(script, [*prefix, "env", "-u", "TS_CONFIG_FILE"], environment)
        assert size_of(tmp_path / "big.png") == (576, 576)
    finally:
        stop(environment)


@pytest.mark.server
def test_the_kserve_rehearsal_serves_the_layout(tmp_path):
    lines = command_block("docs/deployment.md", "kserve-rehearsal").strip().splitlines()
    answer = tmp_path / "big.png"
    script = "\n".join(line.replace("big.png", str(answer)) for line in lines)  # kserve-store/ is git-ignored
    prefix, environment = isolated(tmp_path)
    try:
        run_isolated(script, prefix, environment, ROOT / "kserve-store")
        assert size_of(answer) == (576, 576)
    finally:
        stop(environment)


@pytest.mark.server
def test_the_kserve_predictor_block_serves_and_stops(tmp_path):
    lines = command_block("docs/deployment.md", "kserve-predictor").strip().splitlines()
    answer = tmp_path / "big.png"
    script = "\n".join(line.replace("big.png", str(answer)) for line in lines)
    prefix, environment = isolated(tmp_path)
    try:
        result = run_isolated(script, prefix, environment)
        assert '{"name":"srcnn","ready":true}' in result.stdout and "KServe predictor stopped." in result.stdout
        assert size_of(answer) == (576, 576)
    finally:
        Predictor(tmpdir=tmp_path / "tmp").stop()


def test_the_open_inference_protocol_example_answers(predictor, tmp_path):
    block = command_block("docs/usage.md", "oip-client").replace(
        "localhost:8085", predictor.inference_url.removeprefix("http://")
    )
    output = run_in(tmp_path, block)
    assert output.startswith("ready: True\n") and "'output_size': '864x864'" in output
    assert size_of(tmp_path / "big.png") == (864, 864)


@pytest.mark.slow
def test_the_srcnn_command_lines_work_as_written(tmp_path, scene):
    lines = command_block("README.md", "srcnn-upscale").strip().splitlines()
    assert "--server" in lines[3]  # against a server: test_the_server_line_of_srcnn_upscale
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    scene(320, 240).save(tmp_path / "img.png")
    (tmp_path / "photos").mkdir()
    for index in range(2):
        scene(30, 20, seed=index).save(tmp_path / "photos" / f"p{index}.png")
    for line in [*lines[:3], command_block("docs/usage.md", "compare").strip()]:
        result = subprocess.run(["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
    sizes = {path: size_of(tmp_path / path) for path in ("img_x2.5.png", "big.webp", "big/p0_x3.png")}
    assert sizes == {"img_x2.5.png": (800, 600), "big.webp": (1920, 1440), "big/p0_x3.png": (90, 60)}
    page = (tmp_path / "page.html").read_text()
    assert page.count("data:image/png;base64,") == 3
    assert "http" not in re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]*", "", page).replace("http-equiv", "")


@pytest.mark.slow
def test_the_python_line_prints_the_size():
    line = command_block("README.md", "upscaler").strip()
    assert line.startswith("python -c ")
    result = subprocess.run(["bash", "-c", f".venv/bin/{line}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == "(100, 75)\n"


def against(server, block):
    """`block` with the default addresses replaced by those of the tests' own server."""
    grpc = server.properties["grpc_inference_port"]
    return (
        block.replace("localhost:8080", server.inference_url.removeprefix("http://"))
        .replace("http://127.0.0.1:8080", server.inference_url)
        .replace("127.0.0.1:8082", server.properties["metrics_address"].removeprefix("http://"))
        .replace("127.0.0.1:7070", f"127.0.0.1:{grpc}")
    )


def run_in(folder, block):
    """Run `block` in `folder`, which holds img.png (Set5's bird) and a link to the checkout's .venv."""
    shutil.copy(BIRD, folder / "img.png")
    (folder / ".venv").symlink_to(ROOT / ".venv")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_the_curl_examples_answer_what_they_say(server, tmp_path):
    run_in(tmp_path, against(server, command_block("docs/usage.md", "curl-examples")))
    assert size_of(tmp_path / "wide.png") == (1920, 1920)
    assert size_of(tmp_path / "big.webp") == (864, 864)
    assert Image.open(tmp_path / "big.webp").format == "WEBP"
    assert size_of(tmp_path / "big.png") == (720, 720)  # the second line, ×2.5, wrote it last


def test_the_other_doors_examples_answer_what_they_say(server, tmp_path):
    output = run_in(tmp_path, against(server, command_block("docs/usage.md", "doors")))
    sizes = {name: size_of(tmp_path / name) for name in ("v1.png", "v2.png", "grpc.png")}
    assert sizes == {"v1.png": (864, 864), "v2.png": (576, 576), "grpc.png": (864, 864)}  # v2: the default ×2
    assert re.search(r'"ready":\s*true', output)
    assert "\nSRCNNRequests{" in output


def test_the_server_line_of_srcnn_upscale(server, tmp_path, scene):
    line = command_block("README.md", "srcnn-upscale").strip().splitlines()[3]
    (tmp_path / "photos").mkdir()
    scene(30, 20).save(tmp_path / "photos" / "p0.png")
    run_in(tmp_path, against(server, line.split("#")[0]))
    assert size_of(tmp_path / "big" / "p0_x2.png") == (60, 40)


@pytest.mark.slow
def test_the_bicubic_evaluation_prints_the_pages_table():
    block = command_block("docs/training-and-evaluation.md", "evaluate-bicubic").strip()
    result = subprocess.run(["bash", "-c", block], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == table_after("docs/training-and-evaluation.md", "evaluate-bicubic")


@pytest.mark.slow
def test_make_evaluate_prints_the_pages_table(tmp_path):
    block = command_block("docs/training-and-evaluation.md", "evaluate").strip()
    assert block == "make evaluate"
    result = subprocess.run(
        ["make", "--no-print-directory", "evaluate", f"EVALUATION={tmp_path / 'e.json'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert table == table_after("docs/training-and-evaluation.md", "evaluate")
    written = json.loads((tmp_path / "e.json").read_text())
    shipped = json.loads((ROOT / "weights" / "evaluation.json").read_text())
    assert len(written) == len(shipped)
    for record, known in zip(written, shipped):  # other CPUs round a few fp32 pixels otherwise: not to the letter
        assert record == pytest.approx(known, abs=1e-3)
