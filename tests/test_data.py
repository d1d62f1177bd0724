"""training/data.py: T91's patches (count, stride, augmentation, blur), the patch cache, reading Y, the
validation split, and the datasets shipped in data/."""

import numpy as np
import torch

from srcnn.imaging import bicubic_degrade, modcrop
from training.data import (
    DATA_DIR,
    PatchConfig,
    build_patches,
    cached_patches,
    image_patches,
    list_images,
    read_y,
    split_validation,
)


def test_patch_count_and_content_for_a_known_size():
    y = np.random.default_rng(0).integers(16, 236, (80, 100)).astype(np.float32)
    config = PatchConfig(scale=3)  # mod-crop to 78 × 99: rows 0..42 step 14 (4), columns 0..56 (5)
    inputs, labels = image_patches(y, config)
    assert inputs.shape == (20, 33, 33) and labels.shape == (20, 17, 17)
    cropped = modcrop(y, 3)
    degraded = bicubic_degrade(cropped, 3)
    # the patch at row 14, column 28 is the 1·5 + 2 = 7th
    np.testing.assert_allclose(inputs[7], degraded[14:47, 28:61] / 255, rtol=1e-6)
    np.testing.assert_allclose(labels[7], cropped[22:39, 36:53] / 255, rtol=1e-6)


def test_stride_and_patch_size_change_the_count():
    y = np.zeros((64, 64), np.float32)
    assert len(image_patches(y, PatchConfig(scale=2, stride=31))[0]) == 4  # corners 0, 31
    assert len(image_patches(y, PatchConfig(scale=2, patch_size=64))[0]) == 1


def test_augmentation_scales_add_patches(image_folder):
    paths = list_images(image_folder() / "train")
    plain, _ = build_patches(paths, PatchConfig(scale=2, image_scales=(1.0,)))
    augmented, _ = build_patches(paths, PatchConfig(scale=2))
    # 96 × 80 gives 5 × 4 patches; at 0.9 86 × 72: 4 × 3; at 0.8 77 × 64: 4 × 3; 0.7 67 × 56: 3 × 2;
    # 0.6 58 × 48: 2 × 2.
    assert len(plain) == 4 * 20
    assert len(augmented) == 4 * (20 + 12 + 12 + 6 + 4)
    assert plain.shape[1:] == (1, 33, 33)


def test_blur_changes_inputs_not_labels():
    y = np.random.default_rng(0).integers(16, 236, (50, 50)).astype(np.float32)
    sharp_inputs, sharp_labels = image_patches(y, PatchConfig(scale=2))
    blurred_inputs, blurred_labels = image_patches(y, PatchConfig(scale=2, blur_sigma=1.2))
    assert np.array_equal(sharp_labels, blurred_labels)
    assert np.abs(sharp_inputs - blurred_inputs).mean() > 1 / 255


def test_cache_is_written_once_and_returns_the_same_tensors(image_folder, tmp_path):
    paths = list_images(image_folder() / "train")
    config = PatchConfig(scale=3, image_scales=(1.0,))
    first = cached_patches(paths, config, tmp_path / "cache")
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 1
    second = cached_patches(paths, config, tmp_path / "cache")
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    cached_patches(paths, PatchConfig(scale=2, image_scales=(1.0,)), tmp_path / "cache")
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_read_y_of_grey_and_colour(tmp_path, scene):
    scene(10, 8).convert("L").save(tmp_path / "grey.png")
    y = read_y(tmp_path / "grey.png")
    assert y.shape == (8, 10)
    grey = np.asarray(scene(10, 8).convert("L"), dtype=float)
    np.testing.assert_array_equal(y, np.floor(16 + grey * 219 / 255 + 0.5))


def test_validation_split_holds_out_every_ninth_image():
    paths = [f"t{index}.png" for index in range(91)]
    training, validation = split_validation(paths)
    assert validation == [f"t{index}.png" for index in range(0, 91, 9)] and len(validation) == 11
    assert len(training) == 80 and not set(training) & set(validation)


def test_the_shipped_datasets_are_complete():
    counts = {name: len(list_images(DATA_DIR / name)) for name in ("T91", "Set5", "Set14")}
    assert counts == {"T91": 91, "Set5": 5, "Set14": 14}
