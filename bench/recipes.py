"""Training recipes compared at equal CPU time on the validation split of T91 (never Set5, Set14 or anything the
README reports).

    python -m bench.recipes [--scale 3] [--cpu-seconds 600] [--threads 2] [--recipes baseline cosine ...]

Every recipe trains on T91 without its validation split (`--holdout`: every 9th image, 11 of 91) and runs its
whole schedule, warm-up to last step, within the same budget of CPU seconds (user + system time of this process,
so a busy machine slows a run without shortening its schedule). The cost of a step is measured first, as the
difference between a short and a longer run, once for each patch and batch size (what sets it), and sets each
recipe's number of steps. The score is the mean
PSNR-Y of the final weights on the validation images, with the paper's protocol (mod-crop, bicubic, border
shaved); bicubic is printed for reference.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench import ROOT
from srcnn.imaging import modcrop
from srcnn.weights import SCALES
from training.data import DATA_DIR, list_images, read_y, split_validation
from training.evaluate import score_y
from training.train import parse_args, train

# One change at a time against today's schedule (33² patches, batch 128, exponential 1e-3 → 1e-4).
RECIPES = {
    "baseline": (),
    "cosine": ("--schedule", "cosine", "--warmup-steps", "200"),
    "cosine, half rate": ("--schedule", "cosine", "--warmup-steps", "200", "--lr", "5e-4", "--last-lr", "5e-5"),
    # 34 × 33² label pixels a step ≈ 128 × 17², the baseline's
    "49² patches, batch 34": ("--patch-size", "49", "--batch-size", "34"),
    "65² patches, batch 15": ("--patch-size", "65", "--batch-size", "15"),  # 15 × 49² ≈ the same
    "from the ×2 weights": ("--init", str(ROOT / "weights" / "srcnn_x2.pth")),
    "from the ×3 weights": ("--init", str(ROOT / "weights" / "srcnn_x3.pth")),  # for ×4: the nearer scale
}
CALIBRATION_STEPS = (40, 160)


def run(config, folder, scale, steps, threads, extra, validate_every=None):
    """Train `steps` steps of a recipe on the split in a scratch folder; returns (sidecar, CPU seconds)."""
    args = [
        "--scale",
        str(scale),
        "--data-dir",
        str(config.data_dir),
        "--out",
        str(Path(folder) / "w.pth"),
        "--eval-sets",
        "--holdout",
        "--steps",
        str(steps),
        "--validate-every",
        str(validate_every or steps),
        "--threads",
        str(threads),
        *extra,
    ]
    started = time.process_time()
    sidecar = train(parse_args(args), log=lambda message: None)
    return sidecar, time.process_time() - started


def cpu_seconds_per_step(config, extra):
    """The recipe's CPU cost of one step: longer run minus shorter run, so start-up and validation cancel."""
    with tempfile.TemporaryDirectory() as folder:
        run(config, folder, config.scale, 1, config.threads, extra)  # builds the patch cache once
        short, long = (
            run(config, folder, config.scale, steps, config.threads, extra)[1] for steps in CALIBRATION_STEPS
        )
    return (long - short) / (CALIBRATION_STEPS[1] - CALIBRATION_STEPS[0])


def validation_bicubic(data_dir, scale):
    _, paths = split_validation(list_images(Path(data_dir) / "T91"))
    planes = [modcrop(read_y(path), scale) for path in paths]
    return sum(score_y(plane, None, scale, with_ssim=False)["psnr_y"] for plane in planes) / len(planes)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--scale", type=int, default=3, choices=SCALES)
    parser.add_argument("--cpu-seconds", type=float, default=600, help="CPU budget of each recipe")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--amp", action="store_true", help="every recipe under bfloat16 autocast")
    parser.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    config = parser.parse_args(argv)
    rows, costs = [], {}
    for name in config.recipes:
        extra = (*RECIPES[name], *(("--amp",) if config.amp else ()))
        recipe = parse_args(["--scale", str(config.scale), *extra])
        key = (recipe.patch_size, recipe.batch_size)
        if key not in costs:
            costs[key] = cpu_seconds_per_step(config, extra)
        per_step = costs[key]
        steps = int(config.cpu_seconds / per_step)
        with tempfile.TemporaryDirectory() as folder:
            sidecar, spent = run(config, folder, config.scale, steps, config.threads, extra, max(1, steps // 4))
        curve = [f"{point['train_psnr_y']:.3f}" for point in sidecar["curve"]]
        rows.append((name, steps, spent, sidecar["curve"][-1]["train_psnr_y"]))
        print(
            f"{name}: {per_step * 1000:.1f} CPU ms a step, {steps} steps in {spent:.0f} CPU s, validation "
            f"PSNR-Y along the run {' / '.join(curve)} dB",
            file=sys.stderr,
            flush=True,
        )
    baseline = dict((name, psnr) for name, _, _, psnr in rows).get("baseline")
    print(
        f"x{config.scale}, {config.cpu_seconds:.0f} CPU s a recipe, {config.threads} threads"
        f"{', bfloat16 autocast' if config.amp else ''}; validation split of T91 (11 images), "
        f"bicubic {validation_bicubic(config.data_dir, config.scale):.3f} dB"
    )
    print("| recipe | steps | CPU s | validation PSNR-Y (dB) | against baseline |")
    print("| --- | --- | --- | --- | --- |")
    for name, steps, spent, psnr in rows:
        gain = "—" if baseline is None else f"{psnr - baseline:+.3f}"
        print(f"| {name} | {steps} | {spent:.0f} | {psnr:.3f} | {gain} |")


if __name__ == "__main__":
    main()
