"""The banded pipeline (srcnn.upscale's row streams) against the whole-image computation it replaced: within 1
grey level at every scale, fractional factors and sizes, odd sides, and sizes that cross band and tile
boundaries; and its streams keep a bounded number of bands whatever the image's height."""

import numpy as np
import pytest
from PIL import Image

from srcnn.color import rgb_to_ycbcr, to_uint8, ycbcr_to_rgb8
from srcnn.engine import load_engines
from srcnn.imaging import resize_plane
from srcnn.scaling import output_size, passes_between
from srcnn.upscale import BAND, NetworkRows, PlaneRows, ResizedRows, super_resolve_plane, upscale
from srcnn.weights import SHIPPED


@pytest.fixture(scope="module")
def engines():
    return load_engines(SHIPPED, threads=1, name="onnxruntime-fp32")


def whole_image(image, engines, scale=None, size=None):
    """The upscale as it was computed before bands: every plane whole, in memory at once."""
    size = output_size(image.size, scale, size)
    pixels = np.asarray(image)
    ycbcr = rgb_to_ycbcr(pixels[..., :3])
    luma = ycbcr[..., 0]
    for trained in passes_between(image.size, size):
        height, width = luma.shape
        luma = super_resolve_plane(engines[trained], resize_plane(luma, (width * trained, height * trained)))
    if luma.shape != (size[1], size[0]):
        luma = resize_plane(luma, size)
    merged = np.empty((size[1], size[0], pixels.shape[-1]), np.uint8)
    ycbcr_to_rgb8(luma, resize_plane(ycbcr[..., 1], size), resize_plane(ycbcr[..., 2], size), merged)
    if pixels.shape[-1] == 4:
        merged[..., 3] = to_uint8(resize_plane(pixels[..., 3].astype(np.float32), size))
    return merged


@pytest.mark.parametrize("width, height, scale, size", [
    (41, 33, 2, None), (37, 23, 3, None), (29, 31, 4, None),  # trained scales, odd sides
    (45, BAND // 2 + 1, 2, None),  # the answer's rows just past one band
    (20, 129, 2, None),  # a network pass of two tile rows and a bit (256² tiles: 258 rows)
    (33, 27, 2.5, None), (17, 13, 5.3, None), (60, 50, 1.1, None),  # fractional factors, one and two passes
    (30, 40, None, (71, 47)), (23, 19, None, (None, 150)),  # sizes, one changing the aspect ratio
])
@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_banded_equals_the_whole_image_within_one_grey_level(engines, width, height, scale, size, mode):
    rng = np.random.default_rng(width * height)
    pixels = rng.integers(0, 256, (height, width, len(mode)), dtype=np.uint8)
    pixels[height // 3 :, : width // 2] = 200  # a flat region and its edges beside the noise
    image = Image.fromarray(pixels, mode)
    banded = np.asarray(upscale(image, engines, scale, size)).astype(int)
    reference = whole_image(image, engines, scale, size).astype(int)
    assert banded.shape == reference.shape
    assert np.abs(banded - reference).max() <= 1
    assert (banded != reference).mean() < 1e-3


class Counted(PlaneRows):
    """A plane whose readers' requests are recorded."""

    def __init__(self, plane):
        super().__init__(plane)
        self.requests = []

    def rows(self, top, bottom):
        self.requests.append((top, bottom))
        return super().rows(top, bottom)


def test_streams_read_in_order_and_keep_a_bounded_number_of_bands(engines):
    source = Counted(np.random.default_rng(0).uniform(0, 255, (700, 40)).astype(np.float32))
    network = NetworkRows(ResizedRows(source, 80, 1400), engines[2])
    stream = ResizedRows(network, 100, 1750)
    held = []
    for top in range(0, stream.height, BAND):
        stream.rows(top, min(stream.height, top + BAND))
        held.append((len(stream._bands), len(network._bands), len(network.source._bands)))
    # Whatever the height: what a filter or one row of tiles with its halo still reaches.
    row_of_tiles = -(-(network.band + 2 * engines[2].border) // BAND) + 1
    assert all(a <= b for a, b in zip([max(counts) for counts in zip(*held)], [1, 2, row_of_tiles]))
    starts = [top for top, _ in source.requests]
    assert starts == sorted(starts) and source.requests[-1][1] == 700
