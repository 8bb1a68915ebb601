"""Cascaded feature extractor (FILM, section 3.1).

One small convolutional sub-tree, shared by every level of the image pyramid,
turns an image into ``sub_levels`` feature maps, each half the size of the one
before. The feature pyramid's level ``i`` stacks the sub-tree's output ``j`` of
image level ``i - j`` for every ``j`` that exists, so the same scale sees
features from several depths ("cascaded"), and the deeper levels share weights.

Conventions (NCHW, pyramids finest first) are those of ``util``.
Parameter ``sub_extractor.convs.{k}`` is the original ``cfeat_conv_{k}``.
"""
from typing import List

import torch
from torch import Tensor, nn

import util


class SubTreeExtractor(nn.Module):
    """Two 3×3 convs per sub-level; sub-level ``i`` has ``filters << i`` channels."""

    def __init__(self, filters: int, sub_levels: int, in_channels: int = 3):
        super().__init__()
        convs = []
        channels = in_channels
        for i in range(sub_levels):
            convs.append(util.conv3x3(channels, filters << i))
            convs.append(util.conv3x3(filters << i, filters << i))
            channels = filters << i
        self.convs = nn.ModuleList(convs)

    def forward(self, image: Tensor, n: int) -> List[Tensor]:
        """The first ``n`` sub-levels' features of ``image``."""
        pyramid: List[Tensor] = []
        head = image
        for k, conv in enumerate(self.convs):
            if k < 2 * n:
                head = util.conv_leaky_relu(head, conv.weight, conv.bias)
                if k % 2 == 1:
                    pyramid.append(head)
                    if k < 2 * n - 1:
                        head = util.half_size(head)
        return pyramid


class FeatureExtractor(nn.Module):
    def __init__(self, filters: int, sub_levels: int):
        super().__init__()
        self.sub_levels = sub_levels
        self.sub_extractor = SubTreeExtractor(filters, sub_levels)

    @staticmethod
    def channels(filters: int, sub_levels: int, levels: int) -> List[int]:
        """Channel count of each level of the feature pyramid."""
        return [sum(filters << j for j in range(min(i, sub_levels - 1) + 1)) for i in range(levels)]

    def forward(self, image_pyramid: List[Tensor]) -> List[Tensor]:
        levels = len(image_pyramid)
        sub_pyramids: List[List[Tensor]] = []
        for i in range(levels):
            sub_pyramids.append(self.sub_extractor(image_pyramid[i], min(levels - i, self.sub_levels)))
        feature_pyramid: List[Tensor] = []
        for i in range(levels):
            parts: List[Tensor] = [sub_pyramids[i][0]]
            for j in range(1, min(i, self.sub_levels - 1) + 1):
                parts.append(sub_pyramids[i - j][j])
            # (cat would copy even a single part)
            feature_pyramid.append(parts[0] if len(parts) == 1 else torch.cat(parts, dim=1))
        return feature_pyramid
