"""The Python API: `from srcnn import Upscaler`."""

import threading

import numpy as np
import pytest
from PIL import Image

from srcnn import Upscaler, upscale
from srcnn.bands import Stopped
from srcnn.engine import load_engines
from srcnn.scaling import ScaleError
from srcnn.weights import SHIPPED


@pytest.fixture(scope="module")
def upscaler():
    return Upscaler(precision="onnxruntime-fp32", threads=1)


@pytest.mark.slow  # measures this machine's engines (srcnn.choice)
def test_the_readme_line_prints_the_size():
    assert Upscaler().upscale(Image.new("RGB", (40, 30)), scale=2.5).size == (100, 75)


def test_it_answers_what_upscale_answers_with_the_same_engines(upscaler, scene):
    image = scene(37, 23)
    expected = upscale(image, load_engines(SHIPPED, name="onnxruntime-fp32"), 3)
    assert np.array_equal(np.asarray(upscaler.upscale(image, scale=3)), np.asarray(expected))
    assert upscaler.engine == "onnxruntime-fp32" and upscaler.upscale(image).size == (74, 46)  # default ×2


def test_a_size_keeps_the_aspect_ratio_for_a_missing_side(upscaler, scene):
    image = scene(40, 30)
    assert upscaler.upscale(image, size=(100, None)).size == (100, 75)
    assert upscaler.upscale(image, size=(None, 60)).size == (80, 60)
    assert upscaler.upscale(image, size=(90, 40)).size == (90, 40)


@pytest.mark.parametrize("mode, expected", [("P", "RGB"), ("I;16", "L"), ("LA", "LA"), ("CMYK", "RGB")])
def test_any_decoded_mode_is_accepted_and_grey_stays_grey(upscaler, scene, mode, expected):
    image = scene(20, 16).convert("L" if mode == "I;16" else "RGB")
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image).astype(np.uint16) * 257)  # a 16-bit grey image
    else:
        image = image.convert(mode)
    assert mode == "I;16" or image.mode == mode
    assert upscaler.upscale(image, scale=2).mode == expected


def test_a_bad_factor_is_a_scale_error(upscaler):
    with pytest.raises(ScaleError, match="1 to 8"):
        upscaler.upscale(Image.new("L", (8, 8)), scale=9)


def test_one_upscaler_serves_several_threads_alike(upscaler, scene):
    images = [scene(33 + index, 21, seed=index) for index in range(4)]
    alone = [np.asarray(upscaler.upscale(image, scale=2)) for image in images]
    together = [None] * len(images)

    def work(index):
        together[index] = np.asarray(upscaler.upscale(images[index], scale=2))

    threads = [threading.Thread(target=work, args=(index,)) for index in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(np.array_equal(a, b) for a, b in zip(alone, together))


def test_lanes_are_loaded_once_an_image_has_more_than_one_stripe(scene):
    """Three lanes: an image of one stripe computes on the first alone; one of two stripes loads the others, and
    every lane holds the engines of each trained scale."""
    upscaler = Upscaler(precision="onnxruntime-fp32", threads=3)
    upscaler.upscale(scene(20, 10), scale=2)  # 20 rows, under one 64-row band: one stripe, one lane
    assert len(upscaler.lanes) == 1
    upscaler.upscale(scene(40, 40), scale=2.5)  # 100 rows resampled, a stripe a lane in 64-row bands: two
    assert len(upscaler.lanes) == 3 and all(sorted(lane) == [2, 3, 4] for lane in upscaler.lanes)


def test_an_upscaling_is_given_up_between_bands_when_stop_says_so(upscaler, scene):
    asked = []

    def stop_at_the_third_band():
        asked.append(True)
        return len(asked) >= 3

    with pytest.raises(Stopped):
        upscaler.upscale(scene(64, 300), 2, stop=stop_at_the_third_band)  # 600 rows: more than three bands
    assert len(asked) == 3
    assert upscaler.upscale(scene(64, 300), 2, stop=lambda: False).size == (128, 600)
