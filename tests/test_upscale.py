"""srcnn/bands.py on whole images: sizes and modes, the identity network gives bicubic, alpha and grey kept,
only luma changed, bad modes and scales refused."""

import numpy as np
import pytest
import torch
from PIL import Image

from srcnn import SRCNN, upscale
from srcnn.engine import make_engine
from srcnn.imaging import resize_plane
from srcnn.weights import SCALES


def every_scale(model):
    """The same network as the engine of every trained scale."""
    return {scale: make_engine(model) for scale in SCALES}


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "LA"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_size_and_mode_for_odd_sizes(scene, mode, scale):
    image = scene(37, 23).convert(mode)
    result = upscale(image, every_scale(SRCNN()), scale)
    assert result.mode == mode
    assert result.size == (37 * scale, 23 * scale)


def test_identity_network_gives_bicubic(scene, identity_model):
    image = scene(31, 17)
    network = np.asarray(upscale(image, every_scale(identity_model), 3))
    assert np.array_equal(network, np.asarray(upscale(image, None, 3)))


def test_bicubic_matches_pillow_rgb_bicubic_away_from_clipping():
    # Bicubic is linear, so resizing YCbCr planes equals resizing RGB wherever nothing clips; only rounding
    # differs (Pillow rounds between its two passes on 8-bit images).
    x, y = np.meshgrid(np.linspace(0, 1, 40), np.linspace(0, 1, 30))
    smooth = np.stack([60 + 120 * x, 60 + 120 * y, 120 + 60 * np.sin(6 * x * y)], -1)
    image = Image.fromarray(smooth.astype(np.uint8))
    ours = np.asarray(upscale(image, None, 2), dtype=int)
    pillow = np.asarray(image.resize((80, 60), Image.Resampling.BICUBIC), dtype=int)
    assert np.abs(ours - pillow).max() <= 1


def test_alpha_is_kept_and_upscaled_bicubically(scene):
    image = scene(25, 19).convert("RGBA")
    alpha = np.tile(np.linspace(0, 255, 25, dtype=np.uint8), (19, 1))
    image.putalpha(Image.fromarray(alpha))
    result = upscale(image, every_scale(SRCNN()), 2)
    expected = np.floor(np.clip(resize_plane(alpha.astype(np.float32), (50, 38)), 0, 255) + 0.5)
    assert np.array_equal(np.asarray(result)[..., 3], expected.astype(np.uint8))


def test_grey_stays_grey(scene, identity_model):
    result = upscale(scene(21, 21).convert("L"), every_scale(identity_model), 2)
    assert result.mode == "L"
    bicubic = upscale(scene(21, 21).convert("L"), None, 2)
    assert np.abs(np.asarray(result, dtype=int) - np.asarray(bicubic, dtype=int)).max() == 0


def test_network_changes_only_luma(scene, identity_model):
    # A network that adds a constant to Y moves R, G and B together: chroma (R-G, B-G) stays bicubic's.
    model = identity_model
    with torch.no_grad():
        model.convs[-1].bias.fill_(10 / 255)
    image = scene(20, 20)
    shifted = np.asarray(upscale(image, every_scale(model), 2), dtype=int)
    plain = np.asarray(upscale(image, None, 2), dtype=int)
    inner = (plain > 5).all(-1) & (plain < 235).all(-1)  # away from clipping
    difference = (shifted - plain)[inner]
    assert np.abs(difference - 255 / 219 * 10).max() <= 1
    assert np.abs(difference[:, 0] - difference[:, 1]).max() <= 1


@pytest.mark.parametrize("mode", ["P", "CMYK", "I;16", "F", "1"])
def test_unsupported_modes_are_refused(mode):
    with pytest.raises(ValueError, match="convert"):
        upscale(Image.new(mode, (4, 4)), None, 2)


@pytest.mark.parametrize("scale", [0, -2, 0.5, 8.5, "two", True, float("nan")])
def test_bad_scales_are_refused(scale):
    with pytest.raises(ValueError, match="scale"):
        upscale(Image.new("RGB", (4, 4)), None, scale)
