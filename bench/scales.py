"""Which trained networks serve a factor that is not a trained scale (srcnn.scaling.passes), measured.

    python -m bench.scales [--factors 1.1 1.5 2.1 2.15 2.5 3.5 3.95 4.25 5 6 8] [--weights weights]

Every candidate chain of a factor is scored by mean PSNR-Y on T91's held-out images (every 9th, 11 of 91; never
Set5 or Set14, which the README reports): the ground truth's Y bicubic-downscaled by the factor (sides rounded),
enlarged by the chain's passes, resampled to the ground truth's size, rounded, ⌈factor⌉ pixels shaved. The
candidates are the ×2 passes that `passes` starts with above 4 followed by one pass of each trained scale, and,
above 4, one pass of each trained scale alone. Prints a Markdown table: bicubic, each candidate, and the chain
`passes` chooses beside the best one.
"""

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from srcnn.bands import run_passes
from srcnn.color import to_uint8
from srcnn.engine import load_engines
from srcnn.imaging import resize_plane
from srcnn.metrics import psnr, shave
from srcnn.scaling import passes
from srcnn.weights import SCALES, SHIPPED
from training.data import DATA_DIR, list_images, read_y, split_validation

FACTORS = (1.1, 1.5, 2.1, 2.15, 2.5, 3.5, 3.95, 4.25, 5, 6, 8)


def candidates(factor):
    """The chains compared at `factor`, as tuples of trained scales (the empty chain is bicubic)."""
    prefix = passes(factor)[:-1]
    chains = [(), *((*prefix, scale) for scale in SCALES)]
    if prefix:
        chains += [(scale,) for scale in SCALES]
    return list(dict.fromkeys(chains))


def mean_psnr(planes, engines, factor, chain):
    scores = []
    for y in planes:
        height, width = y.shape
        low = resize_plane(y, (round(width / factor), round(height / factor)))
        estimate = resize_plane(run_passes(low, engines, chain), (width, height))
        border = math.ceil(factor)
        scores.append(psnr(shave(y, border), shave(to_uint8(estimate), border)))
    return float(np.mean(scores))


def name(chain):
    return "×".join(map(str, chain)) or "bicubic"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.scales", description=__doc__.split("\n\n")[0])
    parser.add_argument("--factors", nargs="+", type=float, default=FACTORS)
    parser.add_argument("--weights", type=Path, default=SHIPPED, help="a folder of srcnn_x{2,3,4}.pth")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    engines = load_engines(args.weights)
    _, held_out = split_validation(list_images(args.data_dir / "T91"))
    planes = [read_y(path) for path in held_out]
    print(
        "| factor | PSNR-Y of each chain (dB; a chain: the trained scales' passes in turn) | chosen | best (its lead) |"
    )
    print("| --- | --- | --- | --- |")
    for factor in args.factors:
        scores = {chain: mean_psnr(planes, engines, factor, chain) for chain in candidates(factor)}
        best = max(scores, key=scores.get)
        chosen = passes(factor)
        cells = ", ".join(f"{name(chain)} {score:.3f}" for chain, score in scores.items())
        print(
            f"| ×{factor:g} | {cells} | {name(chosen)} | {name(best)} ({scores[best] - scores[chosen]:+.3f}) |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
