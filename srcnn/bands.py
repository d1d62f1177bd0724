"""Super-resolve a whole image (8 or 16 bits): the network on Y, bicubic on chroma and alpha, a band of rows at a time.

Every plane of the work is a *row stream* (`Rows`): it computes its rows in bands, from the bands of the stream
it reads, and keeps only the bands its reader may still ask for. So colour conversion, each bicubic resize, each
network pass with its halo, and the merge to the answer's bits run band by band, and beyond the answer memory is
bounded by the bands (a few hundred rows of the widest plane), not by the image. The result is the whole-plane
computation's: each resize is given every input row its filter reaches, and each network pass runs the tiles
the whole plane would (`super_resolve_plane`'s), so the two differ only by float rounding.
"""

import math
import threading

import numpy as np
from PIL import Image

from srcnn.color import from_levels, rgb_to_channel, snapped_alpha, to_levels, ycbcr_to_rgb
from srcnn.cores import BAND, in_stripes
from srcnn.deep import DeepImage
from srcnn.imaging import BICUBIC_SUPPORT, resize_plane
from srcnn.scaling import output_size, passes_between

SUPPORTED_MODES = ("L", "LA", "RGB", "RGBA")
TILE_STEP = 16  # tile sides are multiples of this


def tile_shape(height, width, tile, multiple=(1, 1), lanes=1):
    """(rows, columns) of the output tiles of an (height, width) plane whose bands of rows `lanes` threads compute
    side by side (srcnn.cores.in_stripes). Columns: the width split evenly among as few tiles of at most `tile` as
    cover it, rounded up (`tile_side`). Rows: the height split evenly the same way among a multiple of `lanes`
    bands (of TILE_STEP rows at least), so that no lane waits on another's last band (docs/decisions.md, D22);
    that is the band of rows a stream computes at a time, and the last band's tiles have only the rows left
    (`last_rows`). So a plane is padded by less than TILE_STEP a tile (D19), while the engine sees at most a few
    hundred distinct shapes (engines build or cache kernels and buffers per shape, so unbounded shapes would mean
    unbounded memory)."""
    bands = -(-height // tile)  # as few as cover the height
    bands = min(-(-bands // lanes) * lanes, max(bands, height // TILE_STEP))  # in turns of the lanes
    across = -(-width // tile)
    rows, columns = -(-height // bands), -(-width // across)
    return min(tile, tile_side(rows, multiple[0])), min(tile, tile_side(columns, multiple[1]))


def tile_side(length, multiple):
    """`length` rounded up to a multiple of TILE_STEP, or below TILE_STEP, of `multiple` (the engine's alignment)."""
    step = TILE_STEP if length >= TILE_STEP else multiple
    return -(-length // step) * step


def last_rows(height, band, multiple):
    """Rows of the tiles of the last band of an `height`-row plane cut into bands of `band` rows."""
    return min(band, tile_side(height - (height - 1) // band * band, multiple))


class Rows:
    """A float32 (height, width) plane computed `band` rows at a time by `compute(top, bottom)`. Its reader asks
    for rows in order (each request starts no earlier than the one before), so bands above a request are dropped."""

    def __init__(self, height, width, band):
        self.height, self.width, self.band = height, width, band
        self._bands = {}

    def rows(self, top, bottom):
        """Rows top..bottom-1, float32 (bottom - top, width)."""
        first, last = top // self.band, (bottom - 1) // self.band
        for index in [index for index in self._bands if index < first]:
            del self._bands[index]
        for index in range(first, last + 1):
            if index not in self._bands:
                self._bands[index] = self.compute(index * self.band, min(self.height, (index + 1) * self.band))
        if first == last:
            return self._bands[first][top - first * self.band : bottom - first * self.band]
        joined = np.concatenate([self._bands[index] for index in range(first, last + 1)])
        return joined[top - first * self.band : bottom - first * self.band]

    def compute(self, top, bottom):
        raise NotImplementedError

    def plane(self):
        """Every row at once: the whole plane."""
        return self.rows(0, self.height)


class PlaneRows(Rows):
    """Rows of a float32 plane already in memory."""

    def __init__(self, plane):
        super().__init__(*plane.shape, band=max(1, plane.shape[0]))
        self.array = np.asarray(plane, dtype=np.float32)

    def rows(self, top, bottom):
        return self.array[top:bottom]


class ChannelRows(Rows):
    """Y (channel 0), Cb (1) or Cr (2) of uint8 or uint16 RGB pixels, or (channel None) their alpha on luma's scale
    (`alpha_to_luma`), as float32 rows on the 0..255 scale (16-bit values ÷ 257, unrounded). The colour of RGBA
    pixels is premultiplied by their alpha, so that what lies under alpha 0 weighs nothing (`ycbcr_to_rgb` divides
    it out again)."""

    def __init__(self, pixels, channel):
        super().__init__(*pixels.shape[:2], band=BAND)
        self.pixels, self.channel = pixels, channel

    def compute(self, top, bottom):
        rows = self.pixels[top:bottom]
        if rows.dtype == np.uint16:  # uint8 goes to rgb_to_channel as it is, converted there a chunk at a time
            rows = from_levels(rows)
        if self.channel is None:
            return alpha_to_luma(rows[:, :, 3])
        if rows.shape[-1] == 4:
            return rgb_to_channel(rows[:, :, :3] * (rows[:, :, 3:] / np.float32(255.0)), self.channel)
        return rgb_to_channel(rows, self.channel)


class ResizedRows(Rows):
    """`source` resized to (width, height) by `resize_plane`, a band at a time: each band is resized from the
    source rows its filter reaches, with the box of the whole plane's geometry."""

    def __init__(self, source, width, height):
        super().__init__(height, width, BAND)
        self.source = source
        self.scale = source.height / height
        self.reach = BICUBIC_SUPPORT * max(self.scale, 1.0) + 1  # input rows either side of a row's centre

    def compute(self, top, bottom):
        low = max(0, math.floor((top + 0.5) * self.scale - self.reach))
        high = min(self.source.height, math.ceil((bottom - 0.5) * self.scale + self.reach))
        box = (0, top * self.scale - low, self.source.width, bottom * self.scale - low)
        return resize_plane(self.source.rows(low, high), (self.width, bottom - top), box)


class NetworkRows(Rows):
    """`engine` (see srcnn.engine) over a float32 stream of Y (0..255, already bicubic-upscaled), in the tiles
    `super_resolve_plane` uses, cut for `lanes` threads (`tile_shape`): a band is one row of tiles. float32,
    unrounded."""

    def __init__(self, source, engine, tile=None, lanes=1):
        tile = tile or engine.tile
        if tile % engine.multiple[0] or tile % engine.multiple[1]:
            raise ValueError(f"tile {tile} is not a multiple of the engine's {engine.multiple}")
        tile_rows, self.tile_columns = tile_shape(source.height, source.width, tile, engine.multiple, lanes)
        super().__init__(source.height, source.width, tile_rows)
        self.source, self.engine = source, engine
        self.last_rows = last_rows(source.height, tile_rows, engine.multiple[0])

    def compute(self, top, bottom):
        border, height, width = self.engine.border, self.height, self.width
        tile_rows = self.band if bottom < height else self.last_rows
        low, high = max(0, top - border), min(height, top + tile_rows + border)
        # Indices clipped to the plane replicate its edges, without a padded copy; a band's tiles share one shape.
        rows = np.clip(np.arange(top - border, top + tile_rows + border), 0, height - 1) - low
        source = self.source.rows(low, high)[rows]
        output = np.empty((bottom - top, width), np.float32)
        for left in range(0, width, self.tile_columns):
            columns = np.clip(np.arange(left - border, left + self.tile_columns + border), 0, width - 1)
            result = self.engine(source[:, columns] / np.float32(255.0))  # (tile rows, tile columns)
            output[:, left : left + self.tile_columns] = result[: bottom - top, : width - left]
        output *= 255.0
        return output


def alpha_to_luma(alpha):
    """Alpha 0..255 -> float32 on Y's scale, 16..235: the premultiplied luma of white over transparency, so that
    the network enlarges alpha as it enlarges the luma premultiplied by it, and their ratio stays the colour."""
    return np.float32(16.0) + alpha.astype(np.float32) * np.float32(219.0 / 255.0)


def luma_to_alpha(values):
    """The inverse of `alpha_to_luma`, unrounded."""
    return (values - np.float32(16.0)) * np.float32(255.0 / 219.0)


def super_resolve_plane(engine, plane, tile=None):
    """Run `engine` over a float32 (H, W) Y plane (0..255, already bicubic-upscaled); float32 (H, W), unrounded.
    `tile` defaults to the engine's measured best. The plane is cut into tiles that overlap by the network's
    border, so the engine's memory is bounded by the tile and the result equals one full-size pass
    (`SRCNN(..., full_size=True)`)."""
    return NetworkRows(PlaneRows(plane), engine, tile).plane()


def passes_stream(source, engines, chain, lanes=1):
    """`source` enlarged by each trained scale of `chain` in turn: a bicubic upscale refined by `engines[scale]`,
    in tiles cut for `lanes` threads."""
    for scale in chain:
        upscaled = ResizedRows(source, source.width * scale, source.height * scale)
        source = NetworkRows(upscaled, engines[scale], None, lanes)
    return source


def enlarged_stream(source, engines, size, lanes=1):
    """`source` enlarged to `size` = (width, height): bicubic when `engines` is None, else the passes
    srcnn.scaling.passes_between chooses (`passes_stream`), then a bicubic resample to `size` where they do not
    end on it."""
    if engines is not None:
        source = passes_stream(source, engines, passes_between((source.width, source.height), size), lanes)
    if (source.width, source.height) != size:
        source = ResizedRows(source, *size)
    return source


def run_passes(plane, engines, chain):
    """A float32 (H, W) plane enlarged by `chain`'s passes (`passes_stream`). float32, unrounded."""
    return passes_stream(PlaneRows(plane), engines, chain).plane()


def enlarge_plane(plane, engines, size):
    """A float32 (H, W) plane enlarged to `size` (`enlarged_stream`). float32, unrounded."""
    return enlarged_stream(PlaneRows(plane), engines, size).plane()


def stripe_unit(image_size, engines, size, lanes=1):
    """The rows of a unit of `stripes` when an image of `image_size` = (width, height) is enlarged to `size` by
    `lanes` lanes of `engines` (one lane's, see `upscale`), so that two stripes compute the same tiles of the
    network as seldom as can be: where the network computes the last plane, its band (a row of tiles); where the
    last plane is a bicubic resample of the network's (a size the trained scales do not reach), one stripe a lane,
    since both stripes at an edge compute the network's band under it (the filter reads rows on either side);
    else (bicubic alone) the band of a resample, BAND."""
    width, height = image_size
    last = enlarged_stream(Rows(height, width, BAND), engines, size, lanes)
    if isinstance(last, ResizedRows) and isinstance(last.source, NetworkRows):
        return -(-size[1] // (lanes * BAND)) * BAND
    return last.band


class Stopped(Exception):
    """An upscaling given up between two bands because its `stop()` said so (its client has gone)."""


def upscale(
    image: Image.Image,
    engines: dict | list | None,
    scale: object = None,
    size: tuple[int | None, int | None] | None = None,
    stop=None,
    cut_for: int | None = None,
) -> Image.Image:
    """Upscale `image` by `scale` or to `size` (see srcnn.scaling.output_size); `engines` maps each trained
    scale to its engine (see srcnn.engine), or is None for plain bicubic, or is a list of such maps, one for each
    thread that may compute at once ("lanes": an engine runs on one thread at a time). The network's tiles are cut
    for `cut_for` lanes (`tile_shape`; default: as many as are given), so that a caller that loads its lanes as
    images need them gets the same answer before and after (an int8 engine's range guard judges whole tiles).

    `image` is a PIL image in one of SUPPORTED_MODES (L, LA, RGB, RGBA; 8 bits a channel), or a
    srcnn.deep.DeepImage (16 bits). The result is of the same kind and mode. Colour is split into YCbCr (MATLAB
    BT.601; premultiplied by alpha where there is one), the network's passes enlarge Y and alpha
    (`enlarged_stream`), chroma is upscaled bicubically in float straight to the output size, and colour is divided
    by the enlarged alpha again; all in float, a band of output rows at a time, so that memory beyond the answer is
    bounded by the bands. With several lanes the answer's rows are cut into stripes (srcnn.cores.in_stripes), each
    computed by one thread with streams of its own. Where `stop()` says so before a band, the work is given up
    (Stopped).
    """
    if image.mode not in SUPPORTED_MODES:
        raise ValueError(f"image mode {image.mode!r} is not one of {SUPPORTED_MODES}; convert it first")
    lanes = engines if isinstance(engines, list) else [engines]
    cut_for = cut_for or len(lanes)
    size = output_size(image.size, scale, size)
    has_alpha = image.mode in ("LA", "RGBA")
    deep = isinstance(image, DeepImage)
    pixels = colour_pixels(image) if deep else np.asarray(image.convert("RGBA" if has_alpha else "RGB"))

    def streams(engines):
        luma = enlarged_stream(ChannelRows(pixels, 0), engines, size, cut_for)
        chroma = [ResizedRows(ChannelRows(pixels, channel), *size) for channel in (1, 2)]
        if not has_alpha:
            return luma, chroma, None
        # Alpha twice: enlarged as Y is (the network's passes), which divides Y and is the answer's alpha, and as
        # Cb and Cr are (bicubic), which divides them: each premultiplied plane over the alpha enlarged its way.
        return (
            luma,
            chroma,
            (
                enlarged_stream(ChannelRows(pixels, None), engines, size, cut_for),
                ResizedRows(ChannelRows(pixels, None), *size),
            ),
        )

    # The only plane of the answer's size. Grey is computed as colour, then one channel kept: with Cb = Cr = 128
    # R = G = B up to rounding.
    if deep:
        result = DeepImage(np.empty((size[1], size[0], len(image.mode)), np.uint16))
        kept = [0, 3][: len(image.mode)] if image.mode in ("L", "LA") else slice(None)
    else:
        result = Image.new(image.mode, size)
    pasting = threading.Lock()

    def compute(engines, top, bottom):
        luma, chroma, alpha = streams(engines)
        for band_top in range(top, bottom, BAND):
            if stop is not None and stop():
                raise Stopped("stopped before its last band")
            band_bottom = min(bottom, band_top + BAND)
            merged = np.empty((band_bottom - band_top, size[0], pixels.shape[-1]), pixels.dtype)
            alphas = None if alpha is None else [luma_to_alpha(plane.rows(band_top, band_bottom)) for plane in alpha]
            ycbcr_to_rgb(
                luma.rows(band_top, band_bottom),
                *(plane.rows(band_top, band_bottom) for plane in chroma),
                merged,
                alphas,
            )
            if alphas is not None:
                merged[..., 3] = to_levels(snapped_alpha(alphas[0]), merged.dtype)
            if deep:  # each stripe writes rows of its own
                result.pixels[band_top:band_bottom] = merged[..., kept]
                continue
            band = Image.fromarray(merged)
            band = band.convert(image.mode) if image.mode in ("L", "LA") else band
            with pasting:
                result.paste(band, (0, band_top))

    in_stripes(size[1], stripe_unit(image.size, lanes[0], size, cut_for), lanes, compute)
    return result


def colour_pixels(image):
    """A DeepImage's pixels as RGB or RGBA (grey repeated), uint16 (H, W, 3 or 4)."""
    pixels = image.pixels
    return pixels if image.mode in ("RGB", "RGBA") else pixels[..., [0, 0, 0, 1][: 2 + len(image.mode)]]
