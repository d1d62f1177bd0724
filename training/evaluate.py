"""Evaluate bicubic and SRCNN the way the paper's authors did, and set the numbers beside the paper's.

    python -m training.evaluate --sets Set5 Set14 --scales 2 3 4 --method bicubic srcnn --weights weights \
        --json results.json

Protocol (the authors' demo code): Y of the uint8 ground truth (MATLAB BT.601, rounded), mod-crop to the scale,
bicubic down and up, the network in full-size mode, output rounded to uint8, `scale` pixels shaved, then PSNR
and SSIM on Y. Any factor from 1 to 8 that is a fraction p/q with p ≤ 64 is scored the same way, the ground
truth mod-cropped to p so that the low-resolution size is whole, ⌈scale⌉ pixels shaved, and SRCNN served as
the service serves it (srcnn.scaling.passes). `psnr_rgb` is the colour PSNR of what users receive: `upscale()`
of the bicubic-downscaled RGB image against the ground truth, shaved the same way.
"""

import argparse
import json
import math
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from srcnn import upscale
from srcnn.bands import enlarge_plane
from srcnn.choice import EVALUATION_SETS, choose
from srcnn.color import to_uint8
from srcnn.engine import ENGINES, REFERENCE, load_engine
from srcnn.imaging import modcrop, resize_plane
from srcnn.metrics import psnr, shave, ssim
from srcnn.scaling import ScaleError, parse_scale, passes
from srcnn.weights import SCALES, SHIPPED, record_costs, weight_file
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


def weights_for_scale(weights, scale):
    """A weight file for `scale`: `weights` itself if it is a file, else `weights/srcnn_x{scale}.pth`."""
    weights = Path(weights)
    return weights if weights.is_file() else weight_file(weights, scale)


MAX_NUMERATOR = 64  # the largest mod-crop a fractional factor may need


def crop_multiple(scale):
    """What the ground truth's sides must divide by for the low-resolution size to be whole at `scale` (p of
    p/q); a ScaleError when that is over MAX_NUMERATOR."""
    multiple = Fraction(str(scale)).numerator
    if multiple > MAX_NUMERATOR:
        raise ScaleError(
            f"×{scale} needs the ground truth cropped to a multiple of {multiple} pixels; evaluate "
            f"factors p/q with p ≤ {MAX_NUMERATOR}, such as 1.5, 2.5 or 3.5"
        )
    return multiple


def low_size(size, scale):
    """The low-resolution (width, height) of a ground truth of `size`, mod-cropped for `scale`."""
    return tuple(int(side / Fraction(str(scale))) for side in size)


def score_y(y, engines, scale, with_ssim=True):
    """PSNR (and SSIM) on Y of a mod-cropped ground-truth plane (float32 (H, W), integers 0..255); `engines`
    (trained scale -> engine, see srcnn.engine) None scores bicubic."""
    height, width = y.shape
    low = resize_plane(y, low_size((width, height), scale))
    border = math.ceil(scale)
    estimate = shave(to_uint8(enlarge_plane(low, engines, (width, height))), border)
    y = shave(y, border)
    scores = {"psnr_y": psnr(y, estimate)}
    if with_ssim:
        scores["ssim_y"] = ssim(y, estimate)
    return scores


def degrade(ground_truth, scale):
    """(the uint8 (H, W, 3) RGB ground truth mod-cropped for `scale`, its bicubic low-resolution input as a PIL
    image): what the protocol upscales."""
    ground_truth = modcrop(ground_truth, crop_multiple(scale))
    height, width = ground_truth.shape[:2]
    return ground_truth, Image.fromarray(ground_truth).resize(
        low_size((width, height), scale), Image.Resampling.BICUBIC
    )


def evaluate_image(ground_truth, engines, scale):
    """Scores of one uint8 (H, W, 3) RGB ground truth; `engines=None` scores bicubic."""
    ground_truth, low = degrade(ground_truth, scale)
    received = np.asarray(upscale(low, engines, scale))
    border = math.ceil(scale)
    return {
        **score_y(ground_truth_y(ground_truth), engines, scale),
        "psnr_rgb": psnr(shave(ground_truth, border), shave(received, border)),
    }


def evaluate_set(paths, engines, scale, description=""):
    """Mean scores over image files, with a progress bar; also returns the image count."""
    scores = []
    for path in tqdm(paths, desc=description, leave=False, disable=None):
        with Image.open(path) as image:
            scores.append(evaluate_image(np.asarray(image.convert("RGB")), engines, scale))
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
    engines: tuple = ("onnxruntime-fp32",)  # engine names (srcnn.engine.ENGINES)


def evaluate(config):
    """A record per (set, scale, method, engine): set, scale, method, engine (None for bicubic), psnr_y,
    ssim_y, psnr_rgb, images."""
    records = []
    networks = {name: {} for name in config.engines}  # engine name -> trained scale -> engine
    for scale in config.scales:
        runs = [("bicubic", None, None)] if "bicubic" in config.methods else []
        if "srcnn" in config.methods:
            for name, engines in networks.items():
                for trained in passes(scale):
                    if trained not in engines:
                        path = weights_for_scale(config.weights, trained)
                        engines[trained] = load_engine(path, config.device, name=name)
                runs.append(("srcnn", name, engines))
        for set_name in config.sets:
            paths = list_images(config.data_dir / set_name)
            for method, name, engines in runs:
                label = f"{set_name} x{scale} {method}" + (f" {name}" if name else "")
                scores = evaluate_set(paths, engines, scale, label)
                records.append({"set": set_name, "scale": scale, "method": method, "engine": name, **scores})
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
        reference = r.get("engine") in (None, *REFERENCE.values())
        method = r["method"] if reference else f"{r['method']} ({r['engine']})"
        lines.append(
            f"| {r['set']} | ×{r['scale']} | {method} | {r['psnr_y']:.2f} | "
            f"{'—' if paper_psnr is None else f'{paper_psnr:.2f}'} | {r['ssim_y']:.4f} | "
            f"{'—' if paper_ssim is None else f'{paper_ssim:.4f}'} | {r['psnr_rgb']:.2f} | {r['images']} |"
        )
    return "\n".join(lines)


def engine_costs(records):
    """{(set, scale): {engine: PSNR-Y cost against the reference engine}} of SRCNN records (the reference, the
    first fp32 engine among them, included at 0)."""
    srcnn = [r for r in records if r["method"] == "srcnn"]
    reference = next(r["engine"] for r in srcnn if r["engine"].endswith("fp32"))
    costs = {}
    for r in srcnn:
        costs.setdefault((r["set"], r["scale"]), {})[r["engine"]] = r["psnr_y"]
    return {
        key: {engine: psnr_of[reference] - value for engine, value in psnr_of.items()} for key, psnr_of in costs.items()
    }


def write_costs(records, folder):
    """Record each engine's cost against the reference (`engine_costs`) in the sidecars of the trained scales'
    weight files in `folder`, with the weights' and calibration's identity (srcnn.choice reads it)."""
    costs = engine_costs(records)
    for scale in SCALES:
        if all((name, scale) in costs for name in EVALUATION_SETS):
            measured = {}
            for name in EVALUATION_SETS:
                for engine, cost in costs[(name, scale)].items():
                    measured.setdefault(engine, {})[name] = cost
            record_costs(weight_file(folder, scale), measured)


def engine_table(records):
    """SRCNN's PSNR-Y per engine, and its cost against the reference (the first fp32 engine), per set and scale."""
    srcnn = [r for r in records if r["method"] == "srcnn"]
    names = list(dict.fromkeys(r["engine"] for r in srcnn))
    reference = next(p for p in names if p.endswith("fp32"))
    lines = [
        "| set | scale | "
        + " | ".join(f"{p} PSNR-Y (dB)" + ("" if p == reference else f" | {p} cost (dB)") for p in names)
        + " |"
    ]
    lines.append("| --- | --- |" + " --- |" * (2 * len(names) - 1))
    for set_name, scale in dict.fromkeys((r["set"], r["scale"]) for r in srcnn):
        psnr_of = {r["engine"]: r["psnr_y"] for r in srcnn if (r["set"], r["scale"]) == (set_name, scale)}
        cells = [
            f"{psnr_of[p]:.3f}" + ("" if p == reference else f" | {psnr_of[reference] - psnr_of[p]:.3f}") for p in names
        ]
        lines.append(f"| {set_name} | ×{scale} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scale_argument(text):
    """argparse type of --scales: a factor the evaluation can crop for."""
    try:
        scale = parse_scale(text)
        crop_multiple(scale)
    except ScaleError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return scale


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DATA_DIR,
        help="folder whose sub-folders are test sets (default: the repository's data/)",
    )
    parser.add_argument("--sets", nargs="+", default=["Set5", "Set14"], help="sub-folders of --data-dir")
    parser.add_argument(
        "--scales",
        nargs="+",
        type=scale_argument,
        default=list(SCALES),
        metavar="SCALE",
        help="factors from 1 to 8: the trained 2 3 4 (default), or any p/q with p ≤ 64, such as 1.5 2.5 3.5 6 8",
    )
    parser.add_argument("--method", nargs="+", default=list(METHODS), choices=METHODS, dest="methods")
    parser.add_argument(
        "--weights",
        type=Path,
        default=SHIPPED,
        help="a weight file, or a folder of srcnn_x{2,3,4}.pth (default: %(default)s)",
    )
    parser.add_argument("--json", type=Path, help="also write the records to this JSON file")
    parser.add_argument("--device", default="cpu", help="torch device for the network (default: %(default)s)")
    parser.add_argument(
        "--engines",
        nargs="+",
        default=None,
        choices=["auto", *sorted({name for engines in ENGINES.values() for name in engines})],
        help="the engines to score, or auto: the one the service would choose on this machine "
        "(srcnn.choice; default: the device's fp32 reference, the weights' own score); "
        "with an fp32 engine among several, a table of each one's cost follows",
    )
    parser.add_argument(
        "--write-costs",
        action="store_true",
        help="also record each engine's cost against the reference in the weights' sidecars, "
        "where the service's engine choice reads it (srcnn.choice)",
    )
    args = parser.parse_args(argv)
    if (
        args.weights.is_file()
        and "srcnn" in args.methods
        and (len(args.scales) > 1 or passes(args.scales[0]) != (args.scales[0],))
    ):
        parser.error(
            "one weight file serves one trained scale: pass a single --scales 2, 3 or 4, or a folder to --weights"
        )
    device = args.device.split(":")[0]
    folder = args.weights.parent if args.weights.is_file() else args.weights
    names = [
        choose(folder, device=device).engine if name == "auto" else name for name in args.engines or [REFERENCE[device]]
    ]
    if args.write_costs and (args.weights.is_file() or not any(p.endswith("fp32") for p in names)):
        parser.error("--write-costs needs a folder of weights and an fp32 engine among --engines")
    config = EvaluateConfig(
        args.data_dir,
        tuple(args.sets),
        tuple(args.scales),
        tuple(args.methods),
        args.weights,
        args.json,
        args.device,
        tuple(dict.fromkeys(names)),
    )
    return config, args.write_costs


def main(argv=None):
    config, costs = parse_args(argv)
    records = evaluate(config)
    print(markdown_table(records))
    if "srcnn" in config.methods and len(config.engines) > 1 and any(p.endswith("fp32") for p in config.engines):
        print("\n" + engine_table(records))
    if costs:
        write_costs(records, config.weights)
    if config.json:
        config.json.write_text(json.dumps(records, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
