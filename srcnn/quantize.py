"""int8 for the mapping layer: its calibration on training images, and the equalized network it quantizes.

The mapping layer (5×5, 64 → 32 channels) is 90% of SRCNN's multiply-adds; the int8 engines (srcnn.engine) run
it on 8-bit integers, unsigned activations in and out with one step each, signed weights with one step per
output channel, and keep the first layer in fp32 (its input is the bicubic image, which 8 bits would round) or, in
"int8-bf16", in bfloat16 (docs/decisions.md, D21). The last layer is fp32 too, or on OpenVINO, int8 on the mapping
layer's 8-bit output with its weights in two int8 halves (`split_weight`), as exact as fp32. Equalization, clipped
steps and the bias correction below make that cost about 0.01 dB (docs/decisions.md, D2, has the ablation).

Equalization: one step for all 64 input channels wastes most of the 8 bits on the channels whose activations are
small, so channel c of the first layer is divided by e[c] = (range[c] / largest range) ** power and the mapping
layer's weights on that channel multiplied by it (ReLU commutes with a positive factor, so the fp32 network
computes the same function). Power 1 makes every channel span the same range but shrinks the weights of small
channels, which then lose precision in the weights' per-channel step; 0.75 balances the two. The mapping layer's
32 outputs are equalized the same way at power 1: the last layer's weights take the factor back.

A channel that never fires on the calibration images counts as spanning RANGE_FLOOR of the largest range, so
that the first sharp edge that wakes it does not send the tile past the range guard (docs/decisions.md, D3).
"""

import copy

import numpy as np
import torch
from torch.nn import functional as F

EQUALIZATION_POWER = 0.75
RANGE_FLOOR = 1 / 16  # a channel's range counts as at least this fraction of the largest (see `calibrate`)
# A tile whose largest first-layer activation is past this many times the int8 range runs in fp32 instead
# (srcnn.engine.GraphEngine): between photographs' peaks and full-contrast patterns' (docs/decisions.md, D3).
FALLBACK_RANGE = 1.8
SAMPLES_PER_PLANE = 20_000  # activation pixels drawn from each calibration plane
BIAS_WINDOW = 160  # side of the crop of each plane that measures the mapping layer's mean error
LEVELS = 255  # an unsigned 8-bit activation: 0 .. 255 steps


def weight_steps(weight):
    """Per-output-channel steps of a symmetric int8 weight: the largest magnitude maps to 127."""
    return weight.abs().amax(dim=(1, 2, 3)).clamp_min(1e-12) / 127


def quantize_weight(weight):
    """(int8 tensor, float32 steps) of a (out, in, k, k) weight, rounded to the nearest step."""
    steps = weight_steps(weight)
    return torch.round(weight / steps[:, None, None, None]).clamp(-127, 127).to(torch.int8), steps


def split_weight(weight):
    """(int8 tensor (2·out, in, k, k), float32 steps (2·out,)) of a weight as two int8 halves, the weight rounded
    (`quantize_weight`) and what that rounding left rounded on a step of its own, whose sum is the weight to within
    1/64,000 of each output channel's largest magnitude: fp32's precision for a layer computed in int8."""
    coarse, steps = quantize_weight(weight)
    fine, fine_steps = quantize_weight(weight - coarse.float() * steps[:, None, None, None])
    return torch.cat([coarse, fine]), torch.cat([steps, fine_steps])


def fake_quantize(values, step):
    """Activations rounded to an unsigned 8-bit grid of `step` (values past the top clip to it)."""
    return torch.clamp(torch.round(values / step), 0, LEVELS) * step


def least_squares_clip(values, candidates=86):
    """The top of the 8-bit range that minimises the squared rounding-and-clipping error of `values` (a 1-D
    sample of non-negative activations), searched from 15% to 100% of their maximum."""
    best_error, best_top = None, None
    for top in float(values.max()) * np.linspace(0.15, 1.0, candidates):
        error = float(((fake_quantize(values, top / LEVELS) - values) ** 2).mean())
        if best_error is None or error < best_error:
            best_error, best_top = error, top
    return best_top


def layer_samples(model, planes, seed=0):
    """(first layer's activations (64, N), mapping layer's (32, N)) after ReLU, `SAMPLES_PER_PLANE` random
    pixels of each plane (float32 (H, W) network inputs in [0, 1])."""
    generator = torch.Generator().manual_seed(seed)
    first, second = [], []
    with torch.inference_mode():
        for plane in planes:
            a1 = F.relu(model.convs[0](torch.from_numpy(np.ascontiguousarray(plane, dtype=np.float32))[None, None]))
            a2 = F.relu(model.convs[1](a1))[0].flatten(1)
            a1 = a1[0].flatten(1)
            first.append(a1[:, torch.randint(0, a1.shape[1], (SAMPLES_PER_PLANE,), generator=generator)])
            second.append(a2[:, torch.randint(0, a2.shape[1], (SAMPLES_PER_PLANE,), generator=generator)])
    return torch.cat(first, 1), torch.cat(second, 1)


def calibrate(model, planes):
    """The int8 calibration of a 9-5-5 `model` on `planes` (float32 (H, W) network inputs in [0, 1], bicubic
    upscales of training images at the network's scale): a JSON-able dict that `equalized` and the int8 engine
    read. Deterministic for the same model and planes."""
    if model.layers[1][:2] != (64, 32) or model.channels != 1:
        raise ValueError(f"int8 calibration is written for the 9-5-5 network on Y, not layers {model.layers}")
    first, second = layer_samples(model, planes)
    first_range, second_range = (ranges / ranges.max() for ranges in (first.amax(1), second.amax(1)))
    calibration = {
        "first_factors": (first_range.clamp_min(RANGE_FLOOR) ** EQUALIZATION_POWER).tolist(),
        "mapping_factors": second_range.clamp_min(RANGE_FLOOR).tolist(),
        "bias_correction": [0.0] * len(second_range),
    }
    first = first / torch.tensor(calibration["first_factors"])[:, None]
    second = second / torch.tensor(calibration["mapping_factors"])[:, None]
    # Every 7th and 3rd value: ~260,000 per layer from 82 planes, enough for a clip that holds to 3 digits.
    calibration["input_step"] = least_squares_clip(first.flatten()[::7]) / LEVELS
    calibration["output_step"] = least_squares_clip(second.flatten()[::3]) / LEVELS
    calibration["bias_correction"] = mapping_bias_error(equalized(model, calibration), planes, calibration)
    return calibration


def mapping_bias_error(model, planes, calibration):
    """Per output channel, the mean of (int8 mapping layer − fp32 mapping layer) before its bias, on a crop of
    each plane: rounding the weights and clipping activations shifts each channel's mean, which the bias takes
    back (`equalized` subtracts it)."""
    weight = model.convs[1].weight.detach()
    integers, steps = quantize_weight(weight)
    rounded = integers.float() * steps[:, None, None, None]
    errors = []
    with torch.inference_mode():
        for plane in planes:
            window = np.ascontiguousarray(plane[:BIAS_WINDOW, :BIAS_WINDOW], dtype=np.float32)
            a1 = F.relu(model.convs[0](torch.from_numpy(window)[None, None]))
            error = F.conv2d(fake_quantize(a1, calibration["input_step"]), rounded) - F.conv2d(a1, weight)
            errors.append(error.mean(dim=(0, 2, 3)))
    return torch.stack(errors).mean(0).tolist()


def equalized(model, calibration):
    """A copy of `model` with the calibration's equalization and bias correction applied: in fp32 the same
    function as `model` up to the correction, in the form whose mapping layer the int8 engine quantizes."""
    model = copy.deepcopy(model).float().cpu()
    first = torch.tensor(calibration["first_factors"])
    mapping = torch.tensor(calibration["mapping_factors"])
    conv1, conv2, conv3 = model.convs
    with torch.no_grad():
        conv1.weight /= first[:, None, None, None]
        conv1.bias /= first
        conv2.weight *= first[None, :, None, None] / mapping[:, None, None, None]
        conv2.bias.copy_(conv2.bias / mapping - torch.tensor(calibration["bias_correction"]))
        conv3.weight *= mapping[None, :, None, None]
    return model
