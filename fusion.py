"""U-Net-like fusion decoder (FILM, section 3.3).

Input: for each of the finest ``fusion_pyramid_levels`` levels, the channel
concatenation [warped image 0 + features 0, warped image 1 + features 1,
flow used to warp image 0, flow used to warp image 1]. From the coarsest level
down, the running tensor is upsampled (nearest), passed through a 2×2 conv,
concatenated with that level's input and refined by two 3×3 convs; a 1×1 conv
gives RGB.

Conventions are those of ``util``. The original's 2×2 'same' convolution pads
one pixel at the bottom and right only, reproduced here. Parameter
``levels.{i}.{up_conv,conv1,conv2}`` are the original's auto-numbered
``conv2d_{3i}``, ``conv2d_{3i+1}``, ``conv2d_{3i+2}``, and ``output_conv`` is
the last one.
"""
from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import util

NUMBER_OF_COLOR_CHANNELS = 3


class FusionLevel(nn.Module):
    def __init__(self, coarser_channels: int, level_channels: int, filters: int):
        super().__init__()
        self.up_conv = nn.Conv2d(coarser_channels, filters, kernel_size=2)
        self.conv1 = util.conv3x3(level_channels + filters, filters)
        self.conv2 = util.conv3x3(filters, filters)

    def forward(self, coarser: Tensor, level_input: Tensor) -> Tensor:
        height, width = level_input.shape[-2], level_input.shape[-1]
        # 'nearest-exact' is TF's nearest-neighbour resize with half-pixel centres.
        net = F.interpolate(coarser, size=(height, width), mode='nearest-exact')
        net = self.up_conv(F.pad(net, (0, 1, 0, 1)))  # no activation, as in the original
        net = torch.cat((level_input, net), dim=1)
        net = util.leaky_relu(self.conv1(net))
        return util.leaky_relu(self.conv2(net))


class Fusion(nn.Module):
    def __init__(self, level_channels: List[int], filters: int, specialized_levels: int):
        """``level_channels[i]``: channels of the aligned input at level ``i``."""
        super().__init__()
        widths = [filters << min(i, specialized_levels) for i in range(len(level_channels) - 1)]
        levels = []
        for i, width in enumerate(widths):
            coarser = level_channels[i + 1] if i + 1 == len(widths) else widths[i + 1]
            levels.append(FusionLevel(coarser, level_channels[i], width))
        self.levels = nn.ModuleList(levels)
        self.output_conv = util.conv1x1(widths[0], NUMBER_OF_COLOR_CHANNELS)

    def forward(self, pyramid: List[Tensor]) -> Tensor:
        net = pyramid[-1]
        for i in range(len(pyramid) - 2, -1, -1):
            for k, level in enumerate(self.levels):
                if k == i:
                    net = level(net, pyramid[i])
        return self.output_conv(net)
