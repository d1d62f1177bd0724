"""Evaluate bicubic and SRCNN the way the paper's authors did, and set the numbers beside the paper's.

    python -m training.evaluate --sets Set5 Set14 --scales 2 3 4 --method bicubic srcnn --weights weights \
        --json results.json

Protocol (the authors' demo code): Y of the uint8 ground truth (MATLAB BT.601, rounded), mod-crop to the scale,
bicubic down and up, the network in full-size mode, output rounded to uint8, `scale` pixels shaved, then PSNR
and SSIM on Y. `psnr_rgb` is the colour PSNR of what users receive: `upscale()` of the bicubic-downscaled
RGB image against the ground truth, shaved the same way.
"""

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from srcnn import load_model, upscale
from srcnn.color import to_uint8
from srcnn.engine import make_engine
from srcnn.imaging import bicubic_degrade, modcrop
from srcnn.metrics import psnr, shave, ssim
from srcnn.upscale import super_resolve_plane
from srcnn.weights import SCALES, weight_file
from training.data import DATA_DIR, ground_truth_y, list_images

# The paper's 9-5-5 model (ImageNet-trained) and bicubic, TPAMI 2015, Tables 2 and 3; PSNR in dB.
PAPER_PSNR = {
    ("Set5", 2): {"bicubic": 33.66, "srcnn": 36.66},
    ("Set5", 3): {"bicubic": 30.39, "srcnn": 32.75},
    ("Set5", 4): {"bicubic": 28.42, "srcnn": 30.49},
    ("Set14", 2): {"bicubic": 30.23, "srcnn": 32.45},
    ("Set14", 3): {"bicubic": 27.54, "srcnn": 29.30},
    ("Set14", 4): {"bicubic": 26.00, "srcnn": 27.50},
}
PAPER_SSIM = {
    ("Set5", 2): {"bicubic": 0.9299, "srcnn": 0.9542},
    ("Set5", 3): {"bicubic": 0.8682, "srcnn": 0.9090},
    ("Set5", 4): {"bicubic": 0.8104, "srcnn": 0.8628},
}
METHODS = ("bicubic", "srcnn")
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


def weights_for_scale(weights, scale):
    """A weight file for `scale`: `weights` itself if it is a file, else `weights/srcnn_x{scale}.pth`."""
    weights = Path(weights)
    return weights if weights.is_file() else weight_file(weights, scale)


def score_y(y, engine, scale, with_ssim=True):
    """PSNR (and SSIM) on Y of a mod-cropped ground-truth plane (float32 (H, W), integers 0..255); `engine=None`
    scores bicubic."""
    estimate = bicubic_degrade(y, scale)
    if engine is not None:
        estimate = super_resolve_plane(engine, estimate)
    estimate = shave(to_uint8(estimate), scale)
    y = shave(y, scale)
    scores = {"psnr_y": psnr(y, estimate)}
    if with_ssim:
        scores["ssim_y"] = ssim(y, estimate)
    return scores


def evaluate_image(ground_truth, engine, scale):
    """Scores of one uint8 (H, W, 3) RGB ground truth; `engine=None` (see srcnn.engine) scores bicubic."""
    ground_truth = modcrop(ground_truth, scale)
    height, width = ground_truth.shape[:2]
    low = Image.fromarray(ground_truth).resize((width // scale, height // scale), Image.Resampling.BICUBIC)
    received = np.asarray(upscale(low, engine, scale))
    return {
        **score_y(ground_truth_y(ground_truth), engine, scale),
        "psnr_rgb": psnr(shave(ground_truth, scale), shave(received, scale)),
    }


def evaluate_set(paths, engine, scale, description=""):
    """Mean scores over image files, with a progress bar; also returns the image count."""
    scores = []
    for path in tqdm(paths, desc=description, leave=False, disable=None):
        with Image.open(path) as image:
            scores.append(evaluate_image(np.asarray(image.convert("RGB")), engine, scale))
    means = {key: float(np.mean([score[key] for score in scores])) for key in scores[0]}
    return {**means, "images": len(scores)}


@dataclass(frozen=True)
class EvaluateConfig:
    data_dir: Path
    sets: tuple
    scales: tuple
    methods: tuple
    weights: Path
    json: Path | None
    device: str


def evaluate(config):
    """A record per (set, scale, method): set, scale, method, psnr_y, ssim_y, psnr_rgb, images."""
    records = []
    for scale in config.scales:
        engines = {"bicubic": None}
        if "srcnn" in config.methods:
            engines["srcnn"] = make_engine(load_model(weights_for_scale(config.weights, scale), config.device))
        for set_name in config.sets:
            paths = list_images(config.data_dir / set_name)
            for method in config.methods:
                scores = evaluate_set(paths, engines[method], scale, f"{set_name} x{scale} {method}")
                records.append({"set": set_name, "scale": scale, "method": method, **scores})
    return records


def markdown_table(records):
    """The records as a Markdown table, with the paper's numbers beside ours where the paper has them."""
    lines = [
        "| set | scale | method | PSNR-Y (dB) | paper | SSIM-Y | paper | PSNR-RGB (dB) | images |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in records:
        key = (r["set"], r["scale"])
        paper_psnr = PAPER_PSNR.get(key, {}).get(r["method"])
        paper_ssim = PAPER_SSIM.get(key, {}).get(r["method"])
        lines.append(
            f"| {r['set']} | ×{r['scale']} | {r['method']} | {r['psnr_y']:.2f} | "
            f"{'—' if paper_psnr is None else f'{paper_psnr:.2f}'} | {r['ssim_y']:.4f} | "
            f"{'—' if paper_ssim is None else f'{paper_ssim:.4f}'} | {r['psnr_rgb']:.2f} | {r['images']} |"
        )
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR,
                        help="folder whose sub-folders are test sets (default: the repository's data/)")
    parser.add_argument("--sets", nargs="+", default=["Set5", "Set14"], help="sub-folders of --data-dir")
    parser.add_argument("--scales", nargs="+", type=int, default=list(SCALES), choices=SCALES)
    parser.add_argument("--method", nargs="+", default=list(METHODS), choices=METHODS, dest="methods")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS,
                        help="a weight file, or a folder of srcnn_x{2,3,4}.pth (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the records to this JSON file")
    parser.add_argument("--device", default="cpu", help="torch device for the network (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.weights.is_file() and len(args.scales) > 1 and "srcnn" in args.methods:
        parser.error("one weight file serves one scale: pass a single --scales or a folder to --weights")
    return EvaluateConfig(args.data_dir, tuple(args.sets), tuple(args.scales), tuple(args.methods),
                          args.weights, args.json, args.device)


def main(argv=None):
    config = parse_args(argv)
    records = evaluate(config)
    print(markdown_table(records))
    if config.json:
        config.json.write_text(json.dumps(records, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
