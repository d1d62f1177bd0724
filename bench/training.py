"""Training speed in float32 against bfloat16 autocast (`--amp`), taken in one run on this machine.

    python -m bench.training [--scale 3] [--steps 300] [--rounds 2]

Runs the training CLI's own loop (`training.train.train`, batch 128, augmentation on) for `--steps` steps in each
mode, alternating the modes `--rounds` times, and prints steps per second of each run and the ratio of the
medians. The timed loop includes the batch gathering and the one validation pass at the last step, as a real
run does; it skips Set5/Set14 scoring.
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from srcnn.weights import SCALES
from training.data import DATA_DIR
from training.train import parse_args, train

MODES = {"float32": (), "bfloat16 autocast": ("--amp",)}


def steps_per_second(data_dir, scale, steps, extra, folder):
    args = [
        "--scale",
        str(scale),
        "--data-dir",
        str(data_dir),
        "--out",
        str(Path(folder) / "w.pth"),
        "--eval-sets",
        "--steps",
        str(steps),
        "--validate-every",
        str(steps),
        *extra,
    ]
    sidecar = train(parse_args(args), log=lambda message: None)
    return steps / sidecar["wall_time_s"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--scale", type=int, default=3, choices=SCALES)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    config = parser.parse_args(argv)
    rates = {mode: [] for mode in MODES}
    for round_number in range(config.rounds):
        for mode, extra in MODES.items():
            with tempfile.TemporaryDirectory() as folder:
                rate = steps_per_second(config.data_dir, config.scale, config.steps, extra, folder)
            rates[mode].append(rate)
            print(f"round {round_number + 1}, {mode}: {rate:.2f} steps/s", file=sys.stderr)
    medians = {mode: statistics.median(values) for mode, values in rates.items()}
    print(
        f"x{config.scale}, batch 128, {torch.get_num_threads()} threads, {config.steps} steps a run, "
        f"{config.rounds} runs a mode"
    )
    for mode, values in rates.items():
        print(f"{mode}: median {medians[mode]:.2f} steps/s (" + ", ".join(f"{v:.2f}" for v in values) + ")")
    print(f"bfloat16 / float32: {medians['bfloat16 autocast'] / medians['float32']:.2f}x")


if __name__ == "__main__":
    main()
