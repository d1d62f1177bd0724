"""`make pictures`: the README's figures are written, at the documented layout, from the repository's data."""

import numpy as np
import pytest
from PIL import Image

from srcnn import save_state_dict
from tools.pictures import CROP_SIDE, CROPS, GAP, LABEL_HEIGHT, WHOLE, ZOOM, main, most_detailed_window


def test_the_most_detailed_window_is_found():
    plane = np.zeros((60, 80))
    plane[5:15, 5:15] = np.random.default_rng(1).uniform(0, 20, (10, 10))  # faint texture
    plane[30:40, 50:60] = np.random.default_rng(0).uniform(0, 255, (10, 10))  # strong texture
    top, left = most_detailed_window(plane, 10)
    assert abs(top - 30) <= 1 and abs(left - 50) <= 1  # the patch's own edges may pull it by a pixel


@pytest.mark.slow
def test_pictures_are_written(tmp_path, identity_model):
    weights = tmp_path / "weights"
    for scale in (2, 3, 4):
        save_state_dict(identity_model, weights / f"srcnn_x{scale}.pth")
    assert main(["--out", str(tmp_path / "docs"), "--weights", str(weights)]) == 0
    shown = ZOOM * CROP_SIDE
    for _, name, scale in CROPS:
        with Image.open(tmp_path / "docs" / f"{name}_x{scale}.png") as image:
            assert image.size == (4 * shown + 3 * GAP, shown + LABEL_HEIGHT)
    set_name, name, scale = WHOLE
    with (
        Image.open(tmp_path / "docs" / f"{name}_x{scale}_whole.png") as image,
        Image.open(f"data/{set_name}/{name}.png") as truth,
    ):
        assert image.size == (2 * (truth.width // scale * scale) + GAP, truth.height // scale * scale + LABEL_HEIGHT)
