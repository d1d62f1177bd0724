"""srcnn/bands.py on whole images: sizes and modes, the identity network gives bicubic, alpha enlarged as grey is
and colour premultiplied by it (what lies under alpha 0 never shows), grey kept, only luma changed, bad modes and
scales refused."""

import numpy as np
import pytest
import torch
from PIL import Image

from srcnn import SRCNN, upscale
from srcnn.engine import load_engines, make_engine
from srcnn.weights import SCALES, SHIPPED


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


def test_alpha_is_enlarged_as_a_grey_image_of_its_values_is(scene):
    image = scene(25, 19).convert("RGBA")
    alpha = np.tile(np.linspace(0, 255, 25, dtype=np.uint8), (19, 1))
    image.putalpha(Image.fromarray(alpha))
    network = every_scale(SRCNN())  # an untrained network: it changes what it enlarges
    answer = np.asarray(upscale(image, network, 2), dtype=int)[..., 3]
    grey = np.asarray(upscale(Image.fromarray(alpha), network, 2), dtype=int)
    assert answer.shape == (38, 50) and np.abs(answer - grey).max() <= 1


def hidden_under(colour, logo):
    """An RGBA icon: the logo's colour, opaque, in a square and half-covering in a bar, `colour` under alpha 0."""
    pixels = np.zeros((40, 48, 4), np.uint8)
    pixels[..., :3] = colour
    pixels[10:30, 12:36] = (*logo, 255)
    pixels[18:22, 4:44] = (*logo, 128)
    return Image.fromarray(pixels)


@pytest.mark.parametrize("logo", [(255, 255, 255), (200, 40, 90), (10, 10, 10)])
def test_the_colour_under_alpha_0_never_shows(logo):
    engines = load_engines(SHIPPED, name="onnxruntime-fp32")  # the trained networks: they sharpen edges
    black, red, white = (
        np.asarray(upscale(hidden_under(colour, logo), engines, 2), dtype=int)
        for colour in ((0, 0, 0), (255, 0, 0), (255, 255, 255))
    )
    assert np.abs(black - red).max() <= 1 and np.abs(black - white).max() <= 1
    opaque = black[..., 3] == 255
    assert opaque.sum() > 800 and np.abs(black - white)[opaque].max() == 0


def test_a_white_logo_keeps_its_colour_at_its_edges(identity_model):
    answer = np.asarray(upscale(hidden_under((0, 0, 0), (255, 255, 255)), every_scale(identity_model), 2), dtype=int)
    seen = answer[..., 3] > 0
    assert np.all(answer[..., :3][seen] == 255)  # no dark fringe where the logo fades out


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
