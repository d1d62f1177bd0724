"""training/train.py: the loss falls, bf16 autocast, resuming after a kill or an interrupt, the schedules, the
recipe check, weights from --init, and make train-pause."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from srcnn import load_model
from srcnn.files import REPOSITORY as ROOT
from training.train import learning_rate_factor, main, parse_args, train


def arguments(data, out, cache, steps, *extra):
    return [
        "--scale",
        "2",
        "--data-dir",
        str(data),
        "--train-set",
        "train",
        "--eval-sets",
        "test",
        "--out",
        str(out),
        "--steps",
        str(steps),
        "--batch-size",
        "16",
        "--validate-every",
        "5",
        "--threads",
        "1",
        "--warmup-steps",
        "0",
        "--cache-dir",
        str(cache),
        *extra,
    ]


@pytest.fixture(autouse=True)
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def run_cli(args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "training.train", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def wait_for_checkpoint(path, minimum_step, process, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        if path.exists():
            try:
                if torch.load(path, weights_only=True)["step"] >= minimum_step:
                    return
            except (RuntimeError, EOFError):  # replaced while we read it
                pass
        time.sleep(0.1)
    raise TimeoutError(f"no checkpoint at step {minimum_step} in {timeout} s")


@pytest.mark.slow
def test_thirty_steps_lower_the_loss_and_write_weights_sidecar_and_curve(image_folder, tmp_path):
    out = tmp_path / "w" / "srcnn_x2.pth"
    sidecar = train(parse_args(arguments(image_folder(), out, tmp_path / "cache", 30)), log=lambda message: None)
    curve = sidecar["curve"]
    assert [point["step"] for point in curve] == [5, 10, 15, 20, 25, 30]
    assert curve[-1]["loss"] < curve[0]["loss"] / 2
    assert curve[-1]["train_psnr_y"] > curve[0]["train_psnr_y"] + 1
    written = json.loads(out.with_suffix(".json").read_text())
    assert written["steps"] == 30 and written["scale"] == 2
    assert written["architecture"] == {"kernel_sizes": [9, 5, 5], "widths": [64, 32], "channels": 1}
    assert written["training_files"]["count"] == 4 and len(written["training_files"]["sha256"]) == 64
    assert [(r["set"], r["method"]) for r in written["evaluation"]] == [("test", "bicubic"), ("test", "srcnn")]
    state = torch.load(out, weights_only=True)
    assert set(state) == {f"convs.{i}.{kind}" for i in range(3) for kind in ("weight", "bias")}
    load_model(out)
    assert (tmp_path / "w" / "srcnn_x2_curve.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_amp_trains_in_bfloat16_on_the_cpu(image_folder, tmp_path):
    data, results = image_folder(), {}
    for name, extra in (("fp32", ()), ("bf16", ("--amp",))):
        out = tmp_path / name / "w.pth"
        sidecar = train(parse_args(arguments(data, out, tmp_path / "cache", 30, *extra)), log=lambda message: None)
        results[name] = sidecar, torch.load(out, weights_only=True)
    (fp32, fp32_weights), (bf16, bf16_weights) = results["fp32"], results["bf16"]
    assert (fp32["training"]["amp"], bf16["training"]["amp"]) == (False, True)
    assert bf16["curve"][-1]["loss"] < bf16["curve"][0]["loss"] / 2
    assert abs(bf16["curve"][-1]["train_psnr_y"] - fp32["curve"][-1]["train_psnr_y"]) < 0.5
    differences = [(bf16_weights[key] - fp32_weights[key]).abs().max().item() for key in fp32_weights]
    assert max(differences) > 1e-4  # the same seed and batches: only bfloat16 arithmetic tells the runs apart


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(image_folder, tmp_path):
    data = image_folder()
    steps = 40
    uninterrupted = tmp_path / "a" / "w.pth"
    assert main(arguments(data, uninterrupted, tmp_path / "cache", steps)) == 0

    killed = tmp_path / "b" / "w.pth"
    process = run_cli(arguments(data, killed, tmp_path / "cache", steps, "--checkpoint-minutes", "0"))
    wait_for_checkpoint(killed.with_suffix(".ckpt"), 10, process)
    process.kill()
    process.wait()
    lost_at = torch.load(killed.with_suffix(".ckpt"), weights_only=True)["step"]
    assert 10 <= lost_at < steps

    assert main(arguments(data, killed, tmp_path / "cache", steps, "--resume")) == 0
    assert torch.load(killed.with_suffix(".ckpt"), weights_only=True)["step"] == steps
    a, b = torch.load(uninterrupted, weights_only=True), torch.load(killed, weights_only=True)
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert f"resumed from {killed.with_suffix('.ckpt')} at step {lost_at}" in killed.with_suffix(".log").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_saves_a_checkpoint_before_exiting(image_folder, tmp_path, signal_number):
    out = tmp_path / "w.pth"
    process = run_cli(arguments(image_folder(), out, tmp_path / "cache", 100_000, "--checkpoint-minutes", "10"))
    log = out.with_suffix(".log")
    deadline = time.monotonic() + 120
    while "step 5 " not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal_number)
    assert process.wait(timeout=60) == 130
    state = torch.load(out.with_suffix(".ckpt"), weights_only=True)
    assert 5 <= state["step"] < 100_000
    assert "continue with --resume" in log.read_text()


@pytest.mark.parametrize("schedule", ["exponential", "cosine"])
def test_schedules_warm_up_then_end_at_the_final_fraction(schedule):
    config = parse_args(["--scale", "2", "--steps", "1000", "--warmup-steps", "100", "--schedule", schedule])
    factors = [learning_rate_factor(step, config) for step in range(1000)]
    assert factors[0] == pytest.approx(0.01) and factors[99] == pytest.approx(1.0)
    assert all(later <= earlier for earlier, later in zip(factors[99:], factors[100:]))
    assert learning_rate_factor(1000, config) == pytest.approx(0.1)
    middle = learning_rate_factor(550, config)  # half-way through the decay
    assert middle == pytest.approx(0.55 if schedule == "cosine" else 0.1**0.5)


def test_resume_refuses_a_checkpoint_of_another_recipe(image_folder, tmp_path):
    data, out = image_folder(), tmp_path / "w.pth"
    assert main(arguments(data, out, tmp_path / "cache", 10)) == 0
    assert main(arguments(data, out, tmp_path / "cache", 20, "--resume", "--schedule", "exponential")) == 2
    log = out.with_suffix(".log").read_text()
    assert "written by another recipe: schedule: 'cosine' → 'exponential', steps: 10 → 20" in log
    assert torch.load(out.with_suffix(".ckpt"), weights_only=True)["step"] == 10  # left as it was


@pytest.mark.slow
def test_init_starts_from_given_weights_and_holdout_leaves_the_split_out(image_folder, tmp_path):
    data = image_folder(train=9)
    first = tmp_path / "a" / "w.pth"
    train(parse_args(arguments(data, first, tmp_path / "cache", 20)), log=lambda message: None)
    messages = []
    second = tmp_path / "b" / "w.pth"
    sidecar = train(
        parse_args(
            arguments(
                data, second, tmp_path / "cache", 5, "--init", str(first), "--holdout", "--lr", "0", "--last-lr", "0"
            )
        ),
        log=messages.append,
    )
    assert "from 8 images" in messages[0]  # 9 training images less the validation split's first one
    assert sidecar["init_sha256"] == json.loads(first.with_suffix(".json").read_text())["sha256"]
    a, b = torch.load(first, weights_only=True), torch.load(second, weights_only=True)
    assert all(torch.equal(a[key], b[key]) for key in a)  # a zero learning rate keeps the initial weights


def test_a_run_of_ones_own_never_writes_over_the_shipped_weights():
    assert parse_args(["--scale", "2"]).out == Path("runs/srcnn_x2.pth")
    plan = subprocess.run(
        ["make", "-n", "train", "SCALE=2", "TRAIN_ARGS=--steps 50"],
        cwd=ROOT,
        text=True,
        capture_output=True,
        check=True,
    ).stdout
    assert "--out runs/srcnn_x2.pth --steps 50" in plan and "weights/" not in plan.split("training.train")[-1]


def test_train_pause_stops_the_runs_it_started_and_no_other(tmp_path):
    pids = tmp_path / "pids"
    mine, other = (subprocess.Popen(["sleep", "60"]) for _ in range(2))
    try:
        pids.write_text(f"{mine.pid}\n")
        result = subprocess.run(
            ["make", "--no-print-directory", "train-pause", f"PIDS={pids}"],
            cwd=ROOT,
            text=True,
            capture_output=True,
            timeout=60,
        )
        assert result.returncode == 0 and f"stopped {mine.pid}" in result.stdout
        assert mine.wait(timeout=10) == -signal.SIGTERM and other.poll() is None and not pids.exists()
        again = subprocess.run(
            ["make", "--no-print-directory", "train-pause", f"PIDS={pids}"],
            cwd=ROOT,
            text=True,
            capture_output=True,
            timeout=60,
        )
        assert "no training run started by make train-background" in again.stdout
    finally:
        for process in (mine, other):
            process.kill()
            process.wait()
