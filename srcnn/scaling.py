"""Any factor in [1, 8], or any output size, served by the networks trained at `srcnn.weights.SCALES`.

SRCNN refines a bicubic upscale, so it is not tied to the factor it was trained for. A factor that is not a
trained scale is served by passes of trained networks, each a bicubic upscale by its own scale refined by its
network, and one bicubic resample from where the passes end to the exact output size (`passes`).

Sizes follow one rule everywhere: an output side is `round(side × scale)`, halves rounded up.
"""

import math
import re
from fractions import Fraction

from srcnn.weights import SCALES

MIN_SCALE, MAX_SCALE = 1, 8
DEFAULT_SCALE = 2  # without a scale or a size (srcnn upscale, Upscaler), as model-config.yaml's default_scale
SCALE_PATTERN = re.compile(r"\s*([0-9]{1,3}(?:\.[0-9]{1,6})?)\s*")
SIZE_PATTERN = re.compile(r"\s*([0-9]{1,6})?\s*[x×X]\s*([0-9]{1,6})?\s*")


# Which network serves a factor that is not a trained scale (see passes), chosen by measurement with the shipped
# weights (`python -m bench.scales`, docs/decisions.md, D8); tests/test_scaling.py repeats it at ×1.5, ×2.5 and
# ×3.5 so that new weights cannot leave a stale choice.
def remainder_scale(factor):
    """The trained scale whose network serves `factor` (between 1 and 4, not a trained scale) in one pass."""
    return 2 if factor < 2 else 3


RANGE_TEXT = f"a number from {MIN_SCALE} to {MAX_SCALE}, such as 2, 3 or 2.5"


class ScaleError(ValueError):
    """A scale or size that cannot be served; the message says what is allowed."""


def parse_scale(value: object) -> int | float:
    """A scale as text ("2.5"), bytes or a JSON number -> int when whole (2.0 -> 2), else float; in
    [MIN_SCALE, MAX_SCALE]. Raises ScaleError."""
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str) and (match := SCALE_PATTERN.fullmatch(value)):
        number = Fraction(match[1])
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        number = Fraction(value).limit_denominator(1_000_000)
    else:
        raise ScaleError(f"scale must be {RANGE_TEXT}, not {str(value)[:40]!r}")
    if not MIN_SCALE <= number <= MAX_SCALE:
        raise ScaleError(f"scale must be {RANGE_TEXT}, not {str(value)[:40]!r}")
    return int(number) if number.denominator == 1 else float(number)


def parse_size(value: object) -> tuple[int | None, int | None]:
    """A target size "WxH", "Wx" or "xH" (text or bytes) -> (width or None, height or None). Raises ScaleError."""
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    match = SIZE_PATTERN.fullmatch(value) if isinstance(value, str) else None
    sides = tuple(None if side is None else int(side) for side in match.groups()) if match else (None, None)
    if sides == (None, None) or 0 in sides:
        raise ScaleError(
            f"size must be WIDTHxHEIGHT in pixels, or one side alone to keep the aspect ratio "
            f"(1920x1080, 1920x or x1080), not {str(value)[:40]!r}"
        )
    return sides


def scaled_side(side, scale):
    """round(side × scale), halves up, computed exactly (no float surprises such as 3 × 1.1)."""
    return math.floor(side * Fraction(str(scale)) + Fraction(1, 2))


def output_size(
    input_size: tuple[int, int], scale: object = None, size: tuple[int | None, int | None] | None = None
) -> tuple[int, int]:
    """The (width, height) of the answer to an input of `input_size` = (width, height) at `scale` (see
    parse_scale) or `size` (see parse_size); each side 1 to 8 times the input's. Raises ScaleError."""
    width, height = input_size
    if (scale is None) == (size is None):
        raise ScaleError("give either a scale or a size")
    if size is None:
        scale = parse_scale(scale)
        return scaled_side(width, scale), scaled_side(height, scale)
    target_width, target_height = size
    if target_width is None:
        target_width = scaled_side(width, Fraction(target_height, height))
    elif target_height is None:
        target_height = scaled_side(height, Fraction(target_width, width))
    factors = target_width / width, target_height / height
    if not all(MIN_SCALE <= factor <= MAX_SCALE for factor in factors):
        raise ScaleError(
            f"a size of {target_width}x{target_height} is {factors[0]:.3g}× by {factors[1]:.3g}× the "
            f"{width}x{height} image; each side must be {MIN_SCALE} to {MAX_SCALE} times the image's"
        )
    return target_width, target_height


def largest_size(size, max_pixels):
    """The largest (width, height) of `size`'s shape (sides in the same ratio, to the pixel) with at most
    `max_pixels` pixels: what a refusal tells a user to resize to."""
    width, height = size
    factor = math.sqrt(max_pixels / (width * height))
    width, height = max(1, math.floor(width * factor)), max(1, math.floor(height * factor))
    while width * height > max_pixels:  # float rounding at the limit, or a side held at 1
        width, height = (width - 1, height) if width >= height else (width, height - 1)
    return width, height


def largest_scale(size, max_pixels):
    """The largest scale, in hundredths, whose answer to an image of `size` has at most `max_pixels` pixels,
    or None when even ×1 has more."""
    width, height = size
    # Each side rounds up by at most half a pixel, so the answer may be over sqrt(max / pixels) by 1/side.
    hundredths = min(
        100 * MAX_SCALE, math.floor(100 * (math.sqrt(max_pixels / (width * height)) + 1 / min(width, height))) + 1
    )
    while hundredths >= 100 * MIN_SCALE:
        scale = Fraction(hundredths, 100)
        if scaled_side(width, scale) * scaled_side(height, scale) <= max_pixels:
            return int(scale) if scale.denominator == 1 else float(scale)
        hundredths -= 1
    return None


def passes(factor):
    """The trained scales whose networks run in turn to enlarge by `factor` (the larger side's, for a size that
    changes the aspect ratio); a bicubic resample then meets the exact output size.

    A trained scale is its own one pass, so ×2, ×3 and ×4 are exactly the trained networks, and ×1 is none. A
    factor over 4 starts with ×2 passes until at most 4 remains; what remains, when it is not a trained scale, is
    one pass of the `remainder_scale` network, whether that ends above the size (resampled down) or below it
    (resampled up).
    """
    if factor == 1:
        return ()
    chain = []
    while factor > 4:
        chain.append(2)
        factor /= 2
    chain.append(int(factor) if factor in SCALES else remainder_scale(factor))
    return tuple(chain)


def passes_between(input_size, output_size):
    """`passes` for enlarging (width, height) `input_size` to `output_size`: by its larger side's factor."""
    return passes(max(output / given for given, output in zip(input_size, output_size)))
