"""Precision on unseen images: an engine's PSNR-Y cost against the fp32 reference on dead-leaves pictures drawn
afresh and on T91's held-out photographs.

Unseen: the costs that decide which engines may serve are measured on Set5 and Set14 (srcnn.choice), and the
int8 calibration reads T91's training split; neither reads these. (The shipped weights were trained on all of
T91, so its held-out photographs are new to the calibration, not to the network; dead leaves are new to both.)
Dead leaves are the standard model of natural images' occlusions: opaque discs of random colour whose radii have
the density r⁻³, which makes the picture look alike at every scale, dropped until they cover it, drawn at 4× and
box-filtered down so that their edges are anti-aliased as a lens leaves them. With the smallest radius 2 pixels,
SRCNN's fp32 reference scores about Set14's PSNR-Y at ×2 (32 dB). Both sets are scored by the paper's protocol
(training.evaluate.score_y).
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from srcnn.engine import REFERENCE, load_engine
from srcnn.imaging import modcrop
from srcnn.weights import SCALES, weight_file
from training.data import ground_truth_y, list_images, read_y, split_validation
from training.evaluate import score_y

SIDE = 256
SMALLEST, LARGEST = 2.0, 100.0  # leaf radii, pixels
LEAVES = 20_000  # enough to cover a SIDE² picture many times over
SUPERSAMPLING = 4


def dead_leaves(seed, side=SIDE):
    """An RGB dead-leaves picture, uint8 (side, side, 3), the same for the same seed."""
    rng = np.random.default_rng(seed)
    drawn = side * SUPERSAMPLING
    image = Image.new("RGB", (drawn, drawn))
    draw = ImageDraw.Draw(image)
    # Inverse transform sampling of the density r⁻³ on [SMALLEST, LARGEST].
    uniform = rng.random(LEAVES)
    radii = SUPERSAMPLING / np.sqrt(uniform / SMALLEST**2 + (1 - uniform) / LARGEST**2)
    centres = rng.random((LEAVES, 2)) * drawn
    colours = rng.integers(0, 256, (LEAVES, 3))
    for radius, (x, y), colour in zip(radii, centres, colours):
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=tuple(int(c) for c in colour))
    return np.asarray(image.resize((side, side), Image.Resampling.BOX))


def held_out(data_dir):
    """T91's held-out photographs (training.data.split_validation) as Y planes, integers 0..255."""
    return [read_y(path) for path in split_validation(list_images(Path(data_dir) / "T91"))[1]]


def costs(sets, weights_folder, name, scale):
    """{set: engine `name`'s PSNR-Y cost (dB) against the reference engine at `scale`}: the difference of their
    mean scores over each of `sets` ({set: Y planes, integers 0..255}), both engines built once."""
    path = weight_file(weights_folder, scale)
    engines = [load_engine(path, name=REFERENCE["cpu"]), load_engine(path, name=name)]
    found = {}
    for set_name, ground_truths in sets.items():
        reference, engine = (
            np.mean([score_y(modcrop(y, scale), {scale: e}, scale, with_ssim=False)["psnr_y"] for y in ground_truths])
            for e in engines
        )
        found[set_name] = float(reference - engine)
    return found


def unseen_costs(weights_folder, name, data_dir, seed, images=8):
    """{set: {scale: cost}} of engine `name` (`costs`) on `images` dead-leaves pictures from `seed` and on T91's
    held-out photographs, at every trained scale."""
    sets = {
        f"dead leaves (seed {seed})": [ground_truth_y(dead_leaves(seed + index)) for index in range(images)],
        "T91 held out": held_out(data_dir),
    }
    by_scale = {scale: costs(sets, weights_folder, name, scale) for scale in SCALES}
    return {set_name: {scale: by_scale[scale][set_name] for scale in SCALES} for set_name in sets}
