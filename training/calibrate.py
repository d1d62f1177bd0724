"""Calibrate the int8 engine of each weight file on T91, into the file's sidecar (`make calibrate`).

    python -m training.calibrate [--weights weights] [--scales 2 3 4]

For each scale, the calibration images are T91's training split (the validation split, Set5 and Set14 choose
nothing), bicubic down and up by the scale as in training; srcnn.quantize.calibrate measures the activations'
ranges and the mapping layer's mean error on them. The result goes into the sidecar under "int8", with the
weights' sha256: the int8 engine refuses a calibration of other weights, so run this again after training.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from srcnn.imaging import bicubic_degrade, modcrop
from srcnn.quantize import calibrate
from srcnn.weights import SCALES, SHIPPED, load_model, record_int8_calibration
from training.data import DATA_DIR, list_images, read_y, split_validation
from training.evaluate import weights_for_scale


def calibration_planes(data_dir, scale):
    """Network inputs in [0, 1] of T91's training split at `scale`: float32 (H, W) bicubic down-and-up planes."""
    training, _ = split_validation(list_images(Path(data_dir) / "T91"))
    return [(bicubic_degrade(modcrop(read_y(path), scale), scale) / 255.0).astype(np.float32) for path in training]


def calibrate_file(weights_path, scale, data_dir):
    """Calibrate one weight file and write the result into its sidecar; returns the calibration."""
    planes = calibration_planes(data_dir, scale)
    return record_int8_calibration(
        weights_path,
        {
            "images": f"T91 training split, {len(planes)} images, bicubic ×{scale} down and up",
            **calibrate(load_model(weights_path), planes),
        },
    )


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m training.calibrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=SHIPPED, help="a folder of srcnn_xS.pth, or one file")
    parser.add_argument("--scales", type=int, nargs="+", choices=SCALES, default=list(SCALES))
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="holds T91")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for scale in args.scales:
        started = time.perf_counter()
        path = weights_for_scale(args.weights, scale)
        calibration = calibrate_file(path, scale, args.data_dir)
        print(
            f"{path}: input step {calibration['input_step']:.5f}, output step {calibration['output_step']:.5f} "
            f"({time.perf_counter() - started:.0f} s)"
        )


if __name__ == "__main__":
    main()
