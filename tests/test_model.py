"""srcnn/model.py: the 9-5-5 network's parameters and FLOP, its valid and full-size modes, its arguments and
initialisation."""

import torch
from torch.nn import functional as F

from srcnn import SRCNN


def test_parameter_counts_match_the_paper():
    model = SRCNN()
    weights = sum(conv.weight.numel() for conv in model.convs)
    biases = sum(conv.bias.numel() for conv in model.convs)
    assert (weights, biases) == (57_184, 97)
    assert model.border == 8
    # Every weight is one multiply-add per output pixel (57,184 for the 9-5-5 network), two FLOP each.
    assert model.flops_per_pixel == 2 * 57_184
    assert SRCNN(kernel_sizes=(9, 1, 5)).flops_per_pixel == 2 * (81 * 64 + 64 * 32 + 25 * 32)


def test_valid_mode_output_size():
    assert SRCNN()(torch.rand(2, 1, 33, 33)).shape == (2, 1, 17, 17)
    assert SRCNN()(torch.rand(1, 1, 40, 27)).shape == (1, 1, 24, 11)


def test_full_size_mode_keeps_size_and_equals_valid_mode_on_replicate_padded_input():
    model = SRCNN()
    x = torch.rand(1, 1, 23, 31)
    full = model(x, full_size=True)
    assert full.shape == (1, 1, 23, 31)
    torch.testing.assert_close(full, model(F.pad(x, (8, 8, 8, 8), mode="replicate")))


def test_constructor_arguments_change_the_architecture():
    model = SRCNN(kernel_sizes=(9, 1, 5), widths=(64, 32))
    assert model.border == 6
    assert [conv.kernel_size for conv in model.convs] == [(9, 9), (1, 1), (5, 5)]
    assert SRCNN(widths=(16, 8)).convs[1].out_channels == 8


def test_initialisation():
    torch.manual_seed(0)
    model = SRCNN()
    last = model.convs[-1].weight
    assert abs(last.std().item() - 1e-3) < 2e-4
    first = model.convs[0].weight  # He: std = sqrt(2 / fan_in) = sqrt(2 / 81)
    assert abs(first.std().item() - (2 / 81) ** 0.5) < 0.01
    assert all(conv.bias.abs().sum() == 0 for conv in model.convs)
