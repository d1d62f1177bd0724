"""The README's pictures of what the service does (`make pictures`), from Set5 and Set14 and the shipped weights.

    python -m tools.pictures [--out docs] [--weights weights]

For each of CROPS: one row of the same crop, enlarged with nearest neighbour so pixels stay visible, of the
low-resolution input, bicubic, SRCNN and the ground truth, each labelled with the whole image's PSNR-Y under the
evaluation protocol (training.evaluate); labels write "x" for "×", which the default font lacks. The crop is the
window with the most detail in the ground truth (the largest sum of squared gradients of Y), not the one where
SRCNN gains most. And WHOLE: the whole low-resolution
input, enlarged with nearest neighbour, beside SRCNN's answer; and COMPARE: `srcnn compare`'s before/after page of
a low-resolution input (the protocol's bicubic downscale), output that git ignores.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from srcnn import Upscaler, upscale
from srcnn.compare import compare_page
from srcnn.engine import REFERENCE, load_engines
from srcnn.files import REPOSITORY, write_atomically
from srcnn.weights import SHIPPED
from training.data import DATA_DIR, ground_truth_y
from training.evaluate import degrade, score_y

CROPS = (("Set5", "bird", 2), ("Set5", "butterfly", 3), ("Set14", "zebra", 4))  # (set, image, scale)
WHOLE = ("Set14", "monarch", 4)
COMPARE = ("Set14", "comic", 3)
CROP_SIDE, ZOOM = 72, 3  # ground-truth pixels of a crop, and the enlargement of every panel
LABEL_HEIGHT, GAP = 28, 6


def most_detailed_window(y, side):
    """(top, left) of the side × side window of Y with the largest sum of squared gradients."""
    energy = np.zeros_like(y, dtype=np.float64)
    energy[:, 1:] += np.diff(y, axis=1) ** 2
    energy[1:, :] += np.diff(y, axis=0) ** 2
    table = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # summed-area table
    sums = table[side:, side:] - table[:-side, side:] - table[side:, :-side] + table[:-side, :-side]
    top, left = np.unravel_index(np.argmax(sums), sums.shape)
    return int(top), int(left)


def labelled(panel, text, font):
    """The panel with a white strip and `text` under it."""
    canvas = Image.new("RGB", (panel.width, panel.height + LABEL_HEIGHT), "white")
    canvas.paste(panel, (0, 0))
    ImageDraw.Draw(canvas).text((4, panel.height + 5), text, fill="black", font=font)
    return canvas


def side_by_side(panels):
    canvas = Image.new(
        "RGB", (sum(p.width for p in panels) + GAP * (len(panels) - 1), max(p.height for p in panels)), "white"
    )
    left = 0
    for panel in panels:
        canvas.paste(panel, (left, 0))
        left += panel.width + GAP
    return canvas


def degraded(data_dir, set_name, image_name, scale):
    """(ground truth, low-resolution input) as RGB PIL images, as the evaluation makes them."""
    with Image.open(data_dir / set_name / f"{image_name}.png") as image:
        truth, low = degrade(np.asarray(image.convert("RGB")), scale)
    return Image.fromarray(truth), low


def crop_row(data_dir, engines, set_name, image_name, scale, font):
    truth, low = degraded(data_dir, set_name, image_name, scale)
    y = ground_truth_y(np.asarray(truth))
    scores = {
        method: score_y(y, chosen, scale, with_ssim=False)["psnr_y"]
        for method, chosen in (("bicubic", None), ("SRCNN", engines))
    }
    top, left = most_detailed_window(y, CROP_SIDE)
    top, left = top - top % scale, left - left % scale  # so the input's crop covers the same pixels
    box = (left, top, left + CROP_SIDE, top + CROP_SIDE)
    low_box = tuple(side // scale for side in box)
    shown = ZOOM * CROP_SIDE
    panels = [
        (low.crop(low_box).resize((shown, shown), Image.Resampling.NEAREST), f"input, 1/{scale} size"),
        (upscale(low, None, scale).crop(box), f"bicubic {scores['bicubic']:.2f} dB"),
        (upscale(low, engines, scale).crop(box), f"SRCNN {scores['SRCNN']:.2f} dB"),
        (truth.crop(box), "ground truth"),
    ]
    return side_by_side(
        [labelled(image.resize((shown, shown), Image.Resampling.NEAREST), text, font) for image, text in panels]
    )


def whole_pair(data_dir, engines, set_name, image_name, scale, font):
    truth, low = degraded(data_dir, set_name, image_name, scale)
    answer = upscale(low, engines, scale)
    return side_by_side(
        [
            labelled(low.resize(answer.size, Image.Resampling.NEAREST), f"input, {low.width}x{low.height}", font),
            labelled(answer, f"SRCNN x{scale}, {answer.width}x{answer.height}", font),
        ]
    )


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.pictures", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPOSITORY / "docs")
    parser.add_argument("--weights", type=Path, default=SHIPPED, help="a folder of srcnn_x{2,3,4}.pth")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    engines = load_engines(args.weights)
    font = ImageFont.load_default(size=17)
    args.out.mkdir(parents=True, exist_ok=True)
    for set_name, image_name, scale in CROPS:
        path = args.out / f"{image_name}_x{scale}.png"
        crop_row(args.data_dir, engines, set_name, image_name, scale, font).save(path)
        print(path)
    set_name, image_name, scale = WHOLE
    path = args.out / f"{image_name}_x{scale}_whole.png"
    whole_pair(args.data_dir, engines, set_name, image_name, scale, font).save(path)
    print(path)
    set_name, image_name, scale = COMPARE
    path = args.out / f"compare_{image_name}_x{scale}.html"
    with Image.open(args.data_dir / set_name / f"{image_name}.png") as image:
        _, low = degrade(np.asarray(image.convert("RGB")), scale)
    page = compare_page(
        low,
        Upscaler(args.weights, REFERENCE["cpu"]),
        scale,
        title=f"{set_name} {image_name}, ×{scale} of its bicubic downscale",
    )
    write_atomically(path, page)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
