"""SRCNN (Dong, Loy, He, Tang, TPAMI 2015), the 9-5-5 network on the Y channel."""

import torch
from torch import nn
from torch.nn import functional as F


class SRCNN(nn.Module):
    """Three convolutions: patch extraction, non-linear mapping, reconstruction.

    The convolutions have no padding ("valid" mode), as in training on patches: a (B, 1, H, W) input gives a
    (B, 1, H - 2*border, W - 2*border) output. `full_size=True` replicate-pads the input by `border` first, so
    the output has the input's size (inference). Padding the input once, rather than each layer, keeps every
    output pixel a function of a fixed 17×17 input window, which is what makes tiled inference exact.
    """

    def __init__(self, kernel_sizes=(9, 5, 5), widths=(64, 32), channels=1):
        super().__init__()
        self.kernel_sizes = tuple(kernel_sizes)
        self.widths = tuple(widths)
        self.channels = channels
        self.convs = nn.ModuleList(nn.Conv2d(cin, cout, k) for cin, cout, k in self.layers)
        self.reset_parameters()

    @property
    def border(self):
        """Pixels lost on each side in valid mode: 8 for 9-5-5 (a 17×17 receptive field)."""
        return sum(k // 2 for k in self.kernel_sizes)

    @property
    def layers(self):
        """(in channels, out channels, kernel size) of each convolution."""
        in_out = zip((self.channels, *self.widths), (*self.widths, self.channels))
        return [(cin, cout, k) for (cin, cout), k in zip(in_out, self.kernel_sizes)]

    @property
    def flops_per_pixel(self):
        """Floating-point operations per output pixel (a multiply-add counts 2): 114,368 for 9-5-5."""
        return sum(2 * k * k * cin * cout for cin, cout, k in self.layers)

    def reset_parameters(self):
        # He init where a ReLU follows; the paper's N(0, 0.001) for the linear reconstruction layer.
        for conv in self.convs[:-1]:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        nn.init.normal_(self.convs[-1].weight, std=1e-3)
        nn.init.zeros_(self.convs[-1].bias)

    def forward(self, x, full_size=False):
        # x: (B, C, H, W) float, Y in [0, 1]
        if full_size:
            b = self.border
            x = F.pad(x, (b, b, b, b), mode="replicate")
        for conv in self.convs[:-1]:
            x = torch.relu(conv(x))
        return self.convs[-1](x)
