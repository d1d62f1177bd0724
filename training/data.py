"""Training data: Y-channel patches cut from a folder of images, cached so epochs never re-decode PNGs."""

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from srcnn.color import rgb_to_y, to_uint8
from srcnn.files import REPOSITORY, write_atomically
from srcnn.imaging import bicubic_degrade, gaussian_blur, modcrop, resize_plane

IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff"}
DATA_DIR = REPOSITORY / "data"  # T91, Set5, Set14 as shipped (data/README.md)
VALIDATION_EVERY = 9  # every 9th T91 image (11 of 91) is the validation split that recipes are compared on


def list_images(folder):
    """Image files directly inside `folder`, sorted by name; raises if there are none."""
    folder = Path(folder)
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    if not paths:
        raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return paths


def split_validation(paths, every=VALIDATION_EVERY):
    """(training, validation): every `every`-th path, counting from the first, is held out for validation."""
    validation = paths[::every]
    return [path for path in paths if path not in validation], validation


def ground_truth_y(rgb):
    """The ground-truth luma of a uint8 (H, W, 3) RGB array: float32 (H, W), integer values in [16, 235].

    Y is rounded to integers as MATLAB's rgb2ycbcr does on uint8 input.
    """
    return to_uint8(rgb_to_y(rgb)).astype(np.float32)


def read_y(path):
    """`ground_truth_y` of an image file; grey images are read as R = G = B."""
    with Image.open(path) as image:
        return ground_truth_y(np.asarray(image.convert("RGB")))


def file_list_hash(paths):
    """sha256 over the names and bytes of `paths`, naming exactly which files a model was trained on."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).name.encode() + b"\0" + hashlib.sha256(Path(path).read_bytes()).digest())
    return digest.hexdigest()


@dataclass(frozen=True)
class PatchConfig:
    scale: int = 3
    patch_size: int = 33  # input patch side
    stride: int = 14
    border: int = 8  # pixels the network's valid convolutions remove on each side (SRCNN.border)
    image_scales: tuple = (1.0, 0.9, 0.8, 0.7, 0.6)  # each training image also at these sizes (augmentation)
    blur_sigma: float = 0.0  # Gaussian blur of the ground truth before downscaling; 0 for the paper's bicubic


def patch_grid(height, width, patch_size, stride):
    """Top-left corners of the patches cut from an (height, width) plane, row-major."""
    rows = range(0, height - patch_size + 1, stride)
    columns = range(0, width - patch_size + 1, stride)
    return [(row, column) for row in rows for column in columns]


def image_patches(y, config):
    """Patches from one ground-truth plane `y` (float32 (H, W), 0..255).

    Returns (inputs, labels): float32 arrays (N, P, P) and (N, P - 2·border, P - 2·border) on the 0..1 scale,
    inputs cut from the bicubic-degraded, mod-cropped plane and labels from the same place of the ground truth.
    """
    y = modcrop(y, config.scale)
    source = gaussian_blur(y, config.blur_sigma) if config.blur_sigma > 0 else y
    degraded = bicubic_degrade(source, config.scale)
    size, border = config.patch_size, config.border
    corners = patch_grid(*y.shape, size, config.stride)
    inputs = np.empty((len(corners), size, size), np.float32)
    labels = np.empty((len(corners), size - 2 * border, size - 2 * border), np.float32)
    for index, (row, column) in enumerate(corners):
        inputs[index] = degraded[row : row + size, column : column + size]
        labels[index] = y[row + border : row + size - border, column + border : column + size - border]
    return inputs / 255.0, labels / 255.0


def scaled_planes(y, image_scales):
    """`y` at each factor of `image_scales` (bicubic, rounded like an 8-bit image)."""
    height, width = y.shape
    for factor in image_scales:
        size = (round(width * factor), round(height * factor))
        yield y if factor == 1.0 else to_uint8(resize_plane(y, size)).astype(np.float32)


def build_patches(paths, config):
    """All patches of all `paths` as a pair of tensors (N, 1, P, P) and (N, 1, L, L), float32, 0..1."""
    inputs, labels = [], []
    for path in paths:
        for plane in scaled_planes(read_y(path), config.image_scales):
            if min(plane.shape) >= config.patch_size:
                patch_inputs, patch_labels = image_patches(plane, config)
                inputs.append(patch_inputs)
                labels.append(patch_labels)
    return torch.from_numpy(np.concatenate(inputs))[:, None], torch.from_numpy(np.concatenate(labels))[:, None]


def cached_patches(paths, config, cache_dir):
    """`build_patches`, memoised on disk under `cache_dir` by the files' contents and the config."""
    key = hashlib.sha256((file_list_hash(paths) + json.dumps(asdict(config), sort_keys=True)).encode())
    cache = Path(cache_dir) / f"patches-x{config.scale}-{key.hexdigest()[:16]}.pt"
    if cache.exists():
        stored = torch.load(cache, weights_only=True)
        return stored["inputs"], stored["labels"]
    inputs, labels = build_patches(paths, config)
    cache.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(cache, lambda file: torch.save({"inputs": inputs, "labels": labels}, file))
    return inputs, labels
