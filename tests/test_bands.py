"""The banded pipeline (srcnn.bands's row streams) against the whole-image computation it replaced: within 1
grey level at every scale, fractional factors and sizes, odd sides, and sizes that cross band and tile
boundaries; and its streams keep a bounded number of bands whatever the image's height."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from helpers import Recording
from srcnn.bands import NetworkRows, PlaneRows, ResizedRows, stripe_unit, super_resolve_plane, tile_shape, upscale
from srcnn.color import rgb_to_ycbcr, to_uint8, ycbcr_to_rgb
from srcnn.cores import BAND, stripes
from srcnn.engine import load_engines
from srcnn.files import REPOSITORY as ROOT
from srcnn.imaging import resize_plane
from srcnn.scaling import output_size, passes_between
from srcnn.weights import SHIPPED


@pytest.fixture(scope="module")
def engines():
    return load_engines(SHIPPED, engine_threads=1, name="onnxruntime-fp32")


def whole_image(image, engines, scale=None, size=None):
    """The upscale computed with every plane whole, in memory at once: colour premultiplied by alpha, luma and
    alpha (on luma's scale) through the passes, chroma and alpha bicubic, each premultiplied plane divided by its
    alpha."""
    size = output_size(image.size, scale, size)
    pixels = np.asarray(image)
    rgb = pixels[..., :3].astype(np.float64)
    if pixels.shape[-1] == 4:
        rgb = rgb * (pixels[..., 3:] / 255.0)
    ycbcr = rgb_to_ycbcr(rgb)

    def enlarged(plane):
        for trained in passes_between(image.size, size):
            height, width = plane.shape
            plane = super_resolve_plane(engines[trained], resize_plane(plane, (width * trained, height * trained)))
        return plane if plane.shape == (size[1], size[0]) else resize_plane(plane, size)

    merged = np.empty((size[1], size[0], pixels.shape[-1]), np.uint8)
    alphas = None
    if pixels.shape[-1] == 4:
        on_luma_scale = (16 + pixels[..., 3] * (219 / 255)).astype(np.float32)
        alphas = [(plane - 16) * (255 / 219) for plane in (enlarged(on_luma_scale), resize_plane(on_luma_scale, size))]
    ycbcr_to_rgb(
        enlarged(ycbcr[..., 0]), resize_plane(ycbcr[..., 1], size), resize_plane(ycbcr[..., 2], size), merged, alphas
    )
    if alphas is not None:
        merged[..., 3] = to_uint8(alphas[0])
    return merged


@pytest.mark.parametrize(
    "width, height, scale, size",
    [
        (41, 33, 2, None),
        (37, 23, 3, None),
        (29, 31, 4, None),  # trained scales, odd sides
        (45, BAND // 2 + 1, 2, None),  # the answer's rows just past one band
        (20, 129, 2, None),  # a network pass of two tile rows and a bit (256² tiles: 258 rows)
        (33, 27, 2.5, None),
        (17, 13, 5.3, None),
        (60, 50, 1.1, None),  # fractional factors, one and two passes
        (30, 40, None, (71, 47)),
        (23, 19, None, (None, 150)),  # sizes, one changing the aspect ratio
    ],
)
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


@pytest.fixture(scope="module")
def lanes():
    """Three single-threaded sets of engines in 64² tiles, so that a small answer has many stripes."""
    return [load_engines(SHIPPED, engine_threads=1, name="onnxruntime-fp32", tile=64) for _ in range(3)]


@pytest.mark.parametrize("scale, size", [(2, None), (3, None), (2.5, None), (8, None), (None, (90, 400))])
@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_stripes_on_several_threads_equal_one_thread_exactly(lanes, scale, size, mode):
    rng = np.random.default_rng(7)
    image = Image.fromarray(rng.integers(0, 256, (150, 31, len(mode)), dtype=np.uint8).squeeze(), mode)
    one = np.asarray(upscale(image, lanes[0], scale, size))
    assert len(stripes(one.shape[0], 64, len(lanes))) > len(lanes)  # threads take turns at stripes
    assert np.array_equal(np.asarray(upscale(image, lanes, scale, size)), one)


def test_bands_cut_for_three_lanes_give_the_answer_of_one(lanes):
    image = Image.fromarray(np.random.default_rng(8).integers(0, 256, (100, 31, 3), dtype=np.uint8))
    multiple = lanes[0][2].multiple
    assert tile_shape(200, 62, 64, multiple, 3) == (48, 64) and tile_shape(200, 62, 64, multiple) == (64, 64)
    assert np.array_equal(np.asarray(upscale(image, lanes, 2)), np.asarray(upscale(image, lanes[0], 2)))


def test_stripes_cover_the_rows_once_in_whole_units():
    for height, unit, count in [(1000, 64, 2), (64, 64, 4), (65, 64, 2), (6048, 256, 2), (7, 256, 3)]:
        bounds = stripes(height, unit, count)
        assert [top for top, _ in bounds] == [0] + [bottom for _, bottom in bounds[:-1]]
        assert bounds[-1][1] == height and all(top % unit == 0 and bottom > top for top, bottom in bounds)
        assert len(bounds) == min(-(-height // unit), 4 * count)


def test_the_stripe_unit_follows_the_tile_and_the_last_plane(lanes):
    """×2 of 100×100: the answer ends on the network's plane, whose band is a row of tiles: 64 rows in 64² tiles;
    in 256² tiles the plane's 200 rows rounded up to 208 (multiples of 16), or cut in two bands of 112 for two
    lanes. ×2.5 ends on a bicubic resample of the network's ×3: one stripe a lane, in 64-row bands."""
    wide = load_engines(SHIPPED, engine_threads=1, name="onnxruntime-fp32", tile=256)
    assert stripe_unit((100, 100), lanes[0], (200, 200)) == 64
    assert stripe_unit((100, 100), wide, (200, 200)) == 208
    assert stripe_unit((100, 100), wide, (200, 200), lanes=2) == 112
    assert stripe_unit((100, 100), wide, (250, 250)) == stripe_unit((100, 100), lanes[0], (250, 250)) == 256
    assert stripe_unit((100, 100), wide, (250, 250), lanes=2) == 128
    assert stripe_unit((100, 100), None, (250, 250), lanes=2) == BAND  # bicubic alone


@pytest.mark.parametrize("size", [(380, 570), (300, 450)])
def test_stripes_ending_on_a_resample_compute_a_row_of_tiles_twice_at_most_a_lane(size):
    """Enlarged to a size no trained scale reaches (×1.9: the ×2 pass, then a resample), two lanes compute the
    tiles one lane does and at most one more row of them, where their stripes meet."""
    image = Image.fromarray(np.zeros((300, 200, 3), np.uint8))
    one, two = {2: Recording()}, [{2: Recording()}, {2: Recording()}]
    upscale(image, one, size=size)
    upscale(image, two, size=size)
    across = -(-400 // Recording.tile)  # tiles in a row of the ×2 plane, 400 columns wide
    assert len(one[2].windows) <= sum(len(lane[2].windows) for lane in two) <= len(one[2].windows) + across


class Shaped(Recording):
    """A stand-in engine whose answer is its tile's rows (in thousandths): an answer that shows how the plane was
    cut."""

    tile = 128

    def __call__(self, window):
        return np.full((window.shape[0] - 16, window.shape[1] - 16), (window.shape[0] - 16) / 1000, np.float32)


def test_tiles_are_cut_for_the_lanes_asked_for_not_the_lanes_loaded():
    """What an Upscaler that loads its second lane only when an image needs it relies on: one lane cutting the
    tiles for two computes the answer two lanes do."""
    image = Image.fromarray(np.zeros((40, 30, 3), np.uint8))  # ×2: 80 rows, one band of 80, or two of 48
    two = np.asarray(upscale(image, [{2: Shaped()}, {2: Shaped()}], 2))
    assert np.array_equal(np.asarray(upscale(image, {2: Shaped()}, 2, cut_for=2)), two)
    assert not np.array_equal(np.asarray(upscale(image, {2: Shaped()}, 2)), two)


def test_a_failing_thread_fails_the_call():
    class Broken:
        border, multiple, tile = 6, (1, 1), 64

        def __call__(self, window):
            raise RuntimeError("engine fault")

    image = Image.fromarray(np.zeros((60, 50, 3), np.uint8))
    with pytest.raises(RuntimeError, match="engine fault"):
        upscale(image, [{2: Broken()}, {2: Broken()}], 2)  # whichever thread takes a stripe


# A fresh process (the hazard is a process's first numpy view of a tensor) builds two lanes, then runs their first
# windows at the same instant with the GIL changing hands every microsecond, as two stripes of a first request do.
FIRST_WINDOWS = """
import sys, threading
import numpy as np
from srcnn.engine import load_engine
from srcnn.weights import SHIPPED, weight_file
lanes = [load_engine(weight_file(SHIPPED, 2), engine_threads=1, name=sys.argv[1]) for _ in range(2)]
window = np.random.default_rng(0).random((64 + 2 * lanes[0].border,) * 2, dtype=np.float32)
start = threading.Barrier(2)
def first(engine):
    start.wait()
    engine(window)
sys.setswitchinterval(1e-6)
threads = [threading.Thread(target=first, args=(engine,)) for engine in lanes]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""


@pytest.mark.slow
def test_the_first_windows_of_two_lanes_side_by_side_finish():
    """OpenVINO 2026.4.1's binding deadlocked here in about half of the fresh processes run one after another (both
    threads stuck in `tensor.data` for good, as a worker's first request was) until each engine ran a window when
    built. Eight processes in turn, as processes side by side rarely interleave the two threads finely enough."""
    outcomes = []
    for _ in range(8):
        try:
            run = subprocess.run(
                [sys.executable, "-c", FIRST_WINDOWS, "openvino-int8"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
            )  # seconds when it works
            outcomes.append("finished" if run.returncode == 0 else run.stderr[-1000:])
        except subprocess.TimeoutExpired:
            outcomes.append("deadlocked")
    assert outcomes == ["finished"] * 8
