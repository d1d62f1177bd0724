"""Train SRCNN on Y patches of a folder of images (the paper's 91-image set, data/T91, by default).

    python -m training.train --scale 3 --out weights/srcnn_x3.pth

Valid-mode MSE on 33×33 patches, Adam with a ten times smaller learning rate on the last layer, warmed up and then
decaying along half a cosine (or exponentially, `--schedule exponential`) over a fixed number of steps; `--init`
starts from another weight file (e.g. ×3 from the trained ×2). The weights the schedule ends with are shipped: Set5
and Set14 are scored once at the end for the sidecar and never steer training. Progress is validated on a few
*training* images only to draw the curve, or with `--holdout` on the validation split of the training set (every 9th
image, left out of training), which is what `make bench-recipes` compares recipes on.

A checkpoint `OUT.ckpt` (model, optimiser, step, RNG state, curve, recipe) is written atomically every few
minutes and on Ctrl-C or SIGTERM; `--resume` continues from it, and refuses a checkpoint of another recipe. With
a fixed seed on the CPU a resumed run ends with the same weights as an uninterrupted one.
"""

import argparse
import math
import platform
import signal
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch.nn import functional as F
from tqdm import tqdm

from srcnn import SRCNN, save_state_dict
from srcnn.engine import TorchEngine
from srcnn.files import REPOSITORY, write_atomically
from srcnn.imaging import modcrop
from srcnn.weights import SCALES, file_sha256, weight_file, write_sidecar
from training.data import DATA_DIR, PatchConfig, cached_patches, file_list_hash, list_images, read_y, split_validation
from training.evaluate import EvaluateConfig, evaluate, markdown_table, score_y

VALIDATION_IMAGES = 6  # training images scored during training, for the curve only


@dataclass(frozen=True)
class TrainConfig:
    scale: int
    out: Path
    data_dir: Path = DATA_DIR
    train_set: str = "T91"
    eval_sets: tuple = ("Set5", "Set14")
    steps: int = 120_000
    batch_size: int = 128
    patch_size: int = 33  # input patch side; the labels are 16 pixels smaller (valid convolutions)
    lr: float = 1e-3  # first two layers
    last_lr: float = 1e-4  # reconstruction layer
    schedule: str = "cosine"  # or "exponential"; either ends at final_lr_fraction of the rates (make bench-recipes)
    warmup_steps: int = 200  # rates rise linearly from 0 over these first steps
    final_lr_fraction: float = 0.1  # both rates decay to this fraction at the last step
    init: Path | None = None  # a weight file to start from (e.g. the ×2 network for ×3) instead of random
    holdout: bool = False  # leave the validation split out of training and draw the curve on it
    augment: bool = True  # extra image scales 0.9…0.6 and random rotations/flips
    blur_sigma: float = 0.0
    seed: int = 0
    checkpoint_minutes: float = 5.0
    validate_every: int = 500
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    amp: bool = False  # bfloat16 autocast, on CUDA or on a CPU with AVX512-BF16 or AMX
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    cache_dir: Path = Path(".cache")
    resume: bool = False

    @property
    def checkpoint(self):
        return self.out.with_suffix(".ckpt")

    @property
    def recipe(self):
        """The settings a checkpoint must share with the run that resumes it (everything that sets the result)."""
        unrelated = (
            "out",
            "data_dir",
            "eval_sets",
            "checkpoint_minutes",
            "validate_every",
            "device",
            "threads",
            "cache_dir",
            "resume",
        )
        return {key: shown(value) for key, value in asdict(self).items() if key not in unrelated}


def shown(value):
    """A setting as JSON records it: paths inside the repository relative to it, other paths as given."""
    if not isinstance(value, Path):
        return value
    try:
        return str(value.resolve().relative_to(REPOSITORY))
    except ValueError:
        return str(value)


class Interrupted(Exception):
    """Raised by SIGTERM so that it saves a checkpoint the way Ctrl-C does."""


class RecipeMismatch(Exception):
    """`--resume` found a checkpoint written with other settings: continuing would mix two schedules."""


def recipe_difference(stored, wanted):
    """The settings that differ between two recipes, as `name: stored → wanted`."""
    keys = sorted(set(stored) | set(wanted))
    return ", ".join(
        f"{key}: {stored.get(key)!r} → {wanted.get(key)!r}" for key in keys if stored.get(key) != wanted.get(key)
    )


def learning_rate_factor(step, config):
    """Multiplier of both learning rates at `step`: a linear warm-up to 1, then down to `final_lr_fraction` at
    the last step, exponentially or along half a cosine."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    final = config.final_lr_fraction
    if config.schedule == "cosine":
        return final + (1 - final) * (1 + math.cos(math.pi * progress)) / 2
    return final**progress


def augment_batch(inputs, labels, generator):
    """One of the 8 rotations/flips, drawn from `generator`, applied to the whole batch (B, 1, H, W)."""
    choice = int(torch.randint(8, (1,), generator=generator))
    rotations, flip = choice % 4, choice >= 4
    inputs, labels = torch.rot90(inputs, rotations, (2, 3)), torch.rot90(labels, rotations, (2, 3))
    if flip:
        inputs, labels = inputs.flip(3), labels.flip(3)
    return inputs, labels


def validation_psnr(model, planes, scale):
    """Mean Y PSNR of `model` over ground-truth planes, the evaluation protocol without SSIM."""
    model.eval()
    engine = TorchEngine(model)  # the module as it stands, on its own device
    value = sum(score_y(plane, {scale: engine}, scale, with_ssim=False)["psnr_y"] for plane in planes) / len(planes)
    model.train()
    return value


def save_checkpoint(path, recipe, model, optimizer, generator, step, elapsed, history):
    state = {
        "recipe": recipe,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": generator.get_state(),
        "step": step,
        "elapsed": elapsed,
        "history": history,
    }
    write_atomically(path, lambda file: torch.save(state, file))


def plot_curve(history, path, title):
    """PSNR against step as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6, 3.5), dpi=100)
    axes.plot([entry[0] for entry in history], [entry[1] for entry in history], marker=".")
    axes.set_xlabel("step")
    axes.set_ylabel("PSNR-Y on training images (dB)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


def train(config, log=print):
    """Run (or resume) the schedule in `config`; write the weights, sidecar and curve; return the sidecar."""
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    config.out.parent.mkdir(parents=True, exist_ok=True)
    paths = list_images(config.data_dir / config.train_set)
    if config.holdout:
        paths, validation_paths = split_validation(paths)
    else:
        validation_paths = paths[:: max(1, len(paths) // VALIDATION_IMAGES)]
    patch_config = PatchConfig(
        scale=config.scale,
        patch_size=config.patch_size,
        blur_sigma=config.blur_sigma,
        image_scales=PatchConfig.image_scales if config.augment else (1.0,),
    )
    inputs, labels = cached_patches(paths, patch_config, config.cache_dir)
    validation = [modcrop(read_y(path), config.scale) for path in validation_paths]
    log(f"x{config.scale}: {len(inputs)} patches from {len(paths)} images, device {config.device}")

    model = SRCNN()
    if config.init:
        model.load_state_dict(torch.load(config.init, map_location="cpu", weights_only=True))
    model.to(config.device)
    first, last = list(model.convs[:-1].parameters()), list(model.convs[-1].parameters())
    optimizer = torch.optim.Adam([{"params": first, "lr": config.lr}, {"params": last, "lr": config.last_lr}])
    generator = torch.Generator().manual_seed(config.seed)
    step, elapsed, history = 0, 0.0, []
    if config.resume and config.checkpoint.exists():
        state = torch.load(config.checkpoint, weights_only=True)
        if state.get("recipe") != config.recipe:
            raise RecipeMismatch(
                f"{config.checkpoint} was written by another recipe: "
                f"{recipe_difference(state.get('recipe') or {}, config.recipe)}; resume with the "
                f"checkpoint's settings, or move it away to start afresh"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["rng"])
        step, elapsed, history = state["step"], state["elapsed"], [tuple(h) for h in state["history"]]
        log(f"resumed from {config.checkpoint} at step {step}")

    def checkpoint():
        save_checkpoint(
            config.checkpoint,
            config.recipe,
            model,
            optimizer,
            generator,
            step,
            elapsed + time.monotonic() - started,
            history,
        )

    started = last_checkpoint = time.monotonic()
    autocast = torch.autocast(torch.device(config.device).type, torch.bfloat16, enabled=config.amp)
    progress = tqdm(total=config.steps, initial=step, desc=f"x{config.scale}", unit="step", disable=None)
    try:
        while step < config.steps:
            indices = torch.randint(len(inputs), (config.batch_size,), generator=generator)
            batch_inputs, batch_labels = inputs[indices], labels[indices]
            if config.augment:
                batch_inputs, batch_labels = augment_batch(batch_inputs, batch_labels, generator)
            factor = learning_rate_factor(step, config)
            for group, base in zip(optimizer.param_groups, (config.lr, config.last_lr)):
                group["lr"] = base * factor
            with autocast:
                output = model(batch_inputs.to(config.device, non_blocking=True))
            loss = F.mse_loss(output.float(), batch_labels.to(config.device, non_blocking=True))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            progress.update()
            if step % config.validate_every == 0 or step == config.steps:
                history.append((step, validation_psnr(model, validation, config.scale), loss.item()))
                log(
                    f"step {step} loss {loss.item():.6f} train-PSNR {history[-1][1]:.3f} dB "
                    f"elapsed {elapsed + time.monotonic() - started:.0f}s"
                )
            progress.set_postfix(loss=f"{loss.item():.2e}", refresh=False)
            if time.monotonic() - last_checkpoint >= 60 * config.checkpoint_minutes:
                checkpoint()
                last_checkpoint = time.monotonic()
    except (KeyboardInterrupt, Interrupted):
        checkpoint()
        progress.close()
        log(f"interrupted at step {step}; checkpoint saved to {config.checkpoint}; continue with --resume")
        raise
    progress.close()
    checkpoint()
    return finish(config, model, paths, history, elapsed + time.monotonic() - started)


def finish(config, model, paths, history, wall_time):
    """Write the shipped files: state_dict, JSON sidecar with the final scores, PSNR curve."""
    model.eval()
    save_state_dict(model, config.out)
    available = tuple(name for name in config.eval_sets if (config.data_dir / name).is_dir())
    records = []
    if available:
        records = evaluate(
            EvaluateConfig(
                config.data_dir, available, (config.scale,), ("bicubic", "srcnn"), config.out, None, config.device
            )
        )
    sidecar = {
        "scale": config.scale,
        "sha256": file_sha256(config.out),
        "architecture": {
            "kernel_sizes": list(model.kernel_sizes),
            "widths": list(model.widths),
            "channels": model.channels,
        },
        "training": {key: shown(value) for key, value in asdict(config).items() if key not in ("resume", "out")},
        "training_files": {"count": len(paths), "sha256": file_list_hash(paths)},
        "init_sha256": file_sha256(config.init) if config.init else None,
        "steps": config.steps,
        "wall_time_s": round(wall_time, 1),
        "device": torch.cuda.get_device_name()
        if config.device.startswith("cuda")
        else f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "evaluation": records,
        "curve": [{"step": step, "train_psnr_y": round(value, 4), "loss": loss} for step, value, loss in history],
    }
    write_sidecar(config.out, sidecar)
    if history:
        plot_curve(history, config.out.with_name(config.out.stem + "_curve.png"), f"SRCNN ×{config.scale}")
    if records:
        print(markdown_table(records))
    return sidecar


# What each numeric setting means (`--help` adds its default).
MEANINGS = {
    "steps": "optimiser steps in the whole schedule",
    "batch_size": "patches a step",
    "patch_size": "input patch side in pixels (the labels are 16 smaller: valid convolutions)",
    "warmup_steps": "steps over which both rates rise linearly from 0",
    "seed": "seed of the patch order, augmentation and initial weights",
    "validate_every": "steps between points of the training curve",
    "threads": "torch CPU threads (0: torch's choice)",
    "lr": "Adam's rate for the first two layers",
    "last_lr": "Adam's rate for the reconstruction layer",
    "final_lr_fraction": "both rates end at this fraction of their start",
    "blur_sigma": "Gaussian blur before the bicubic downscale of training inputs (0: none)",
    "checkpoint_minutes": "minutes between checkpoints (one is also written on Ctrl-C or SIGTERM)",
}


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """--help with each setting's default, where it has one worth printing."""

    def _get_help_string(self, action):
        if (
            action.required
            or action.default is None
            or isinstance(action.default, bool)
            or "(default" in (action.help or "")
        ):
            return action.help
        return super()._get_help_string(action)


def parse_args(argv=None):
    defaults = TrainConfig(scale=3, out=Path())
    parser = argparse.ArgumentParser(
        prog="python -m training.train", description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelp
    )
    parser.add_argument("--scale", type=int, required=True, choices=SCALES, help="the upscaling factor to train")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=defaults.data_dir,
        help="folder holding --train-set and --eval-sets (default: the repository's data/)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="weight file to write, with its sidecar, log, curve and checkpoint "
        "beside it (default: runs/srcnn_xSCALE.pth, never the shipped weights)",
    )
    parser.add_argument("--train-set", default=defaults.train_set, help="sub-folder of --data-dir to train on")
    parser.add_argument(
        "--eval-sets",
        nargs="*",
        default=list(defaults.eval_sets),
        help="sub-folders of --data-dir scored at the end for the sidecar",
    )
    for name in ("steps", "batch_size", "patch_size", "warmup_steps", "seed", "validate_every", "threads"):
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name), help=MEANINGS[name]
        )
    for name in ("lr", "last_lr", "final_lr_fraction", "blur_sigma", "checkpoint_minutes"):
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name), help=MEANINGS[name]
        )
    parser.add_argument(
        "--schedule",
        choices=["exponential", "cosine"],
        default=defaults.schedule,
        help="how the rates decay after the warm-up (make bench-recipes compared them)",
    )
    parser.add_argument("--init", type=Path, help="start from this weight file instead of random weights")
    parser.add_argument(
        "--holdout",
        action="store_true",
        help="train without the validation split (every 9th image) and draw the curve on it",
    )
    parser.add_argument(
        "--no-augment",
        action="store_false",
        dest="augment",
        help="no extra image scales (0.9 ... 0.6) and no random rotations and flips",
    )
    parser.add_argument("--device", default=defaults.device, help="torch device to train on")
    parser.add_argument(
        "--amp",
        action="store_true",
        help="bfloat16 autocast: on CUDA, or on a CPU with AVX512-BF16 or AMX (make bench-train measures it)",
    )
    parser.add_argument("--cache-dir", type=Path, default=defaults.cache_dir, help="where the patch cache lives")
    parser.add_argument("--resume", action="store_true", help="continue from OUT.ckpt if it exists")
    args = vars(parser.parse_args(argv))
    args["out"] = args["out"] or weight_file("runs", args["scale"])
    args["eval_sets"] = tuple(args["eval_sets"])
    return replace(defaults, **args)


def main(argv=None):
    config = parse_args(argv)
    config.out.parent.mkdir(parents=True, exist_ok=True)
    # A resumed run continues its log; a fresh one starts a new log (the previous weights' is in git history).
    log_file = config.out.with_suffix(".log").open("a" if config.resume and config.checkpoint.exists() else "w")

    def log(message):
        tqdm.write(message)
        print(time.strftime("%Y-%m-%dT%H:%M:%S"), message, file=log_file, flush=True)

    def on_sigterm(signum, frame):
        raise Interrupted()

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        train(config, log)
    except (KeyboardInterrupt, Interrupted):
        return 130
    except RecipeMismatch as error:
        log(f"error: {error}")
        return 2
    finally:
        log_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
