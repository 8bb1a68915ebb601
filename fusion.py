"""U-Net-like fusion decoder (FILM, section 3.3).

Input: for each of the finest ``fusion_pyramid_levels`` levels, the parts of
the channel concatenation [warped image 0 + features 0, warped image 1 +
features 1, flow used to warp image 0, flow used to warp image 1], passed as
a list so that they are copied once, straight into the convolution's input.
From the coarsest level down, the running tensor is upsampled (nearest),
passed through a 2×2 conv, concatenated with that level's input and refined
by two 3×3 convs; a 1×1 conv gives RGB.

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
        self.filters = filters
        self.up_conv = nn.Conv2d(coarser_channels, filters, kernel_size=2)
        self.conv1 = util.conv3x3(level_channels + filters, filters)
        self.conv2 = util.conv3x3(filters, filters)

    def _upsample_conv_into(self, coarser: Tensor, out: Tensor):
        """Writes up_conv(pad(upsample(coarser))) into ``out``.

        When the level is exactly twice the coarser one (any size divisible
        by 16 for the five fusion levels), each output pixel's 2×2 window
        covers only 1, 2 or 4 distinct coarse pixels, depending on the
        pixel's row and column parity. So each of the four parities is a
        1×1, 1×2, 2×1 or 2×2 convolution of the coarse tensor with the
        2×2 kernel's taps summed accordingly: 9/16 of the multiply-adds, no
        upsampled copy, and the results land straight in the concatenation
        buffer. Odd sizes take the literal path.
        """
        height, width = out.shape[-2], out.shape[-1]
        coarse_height, coarse_width = coarser.shape[-2], coarser.shape[-1]
        if height != 2 * coarse_height or width != 2 * coarse_width:
            out.copy_(self.literal_upsample_conv(coarser, height, width))
            return
        weight, bias = self.up_conv.weight, self.up_conv.bias
        # The original pads the upsampled tensor with one zero row/column at
        # the bottom/right: on the coarse grid that is one zero row/column too.
        padded = F.pad(coarser, (0, 1, 0, 1))
        by_parity = out.view(out.shape[0], out.shape[1], coarse_height, 2, coarse_width, 2)
        by_parity[:, :, :, 0, :, 0].copy_(F.conv2d(coarser, weight.sum(dim=(2, 3), keepdim=True), bias))
        by_parity[:, :, :, 0, :, 1].copy_(
            F.conv2d(padded[:, :, :coarse_height], weight.sum(dim=2, keepdim=True), bias))
        by_parity[:, :, :, 1, :, 0].copy_(
            F.conv2d(padded[:, :, :, :coarse_width], weight.sum(dim=3, keepdim=True), bias))
        by_parity[:, :, :, 1, :, 1].copy_(F.conv2d(padded, weight, bias))

    def literal_upsample_conv(self, coarser: Tensor, height: int, width: int) -> Tensor:
        """The original's operations, one by one (no activation after up_conv, as there)."""
        # 'nearest-exact' is TF's nearest-neighbour resize with half-pixel centres.
        upsampled = F.interpolate(coarser, size=(height, width), mode="nearest-exact")
        return self.up_conv(F.pad(upsampled, (0, 1, 0, 1)))

    def forward(self, coarser: Tensor, level_input: List[Tensor]) -> Tensor:
        """``level_input``: this level's aligned inputs, concatenated here in order.

        The list is emptied once copied, so its tensors are freed before the
        convolutions allocate theirs.
        """
        return util.conv_leaky_relu(self._conv1(coarser, level_input), self.conv2.weight, self.conv2.bias)

    def _conv1(self, coarser: Tensor, level_input: List[Tensor]) -> Tensor:
        if not torch.jit.is_scripting():  # the scripted file names no oneDNN op (util.fused_cpu_kernels)
            if torch.compiler.is_exporting():
                # A graph export (ONNX) is one graph for every frame size: the
                # literal operations, whatever the level's parity, and a Concat.
                height, width = level_input[0].shape[-2], level_input[0].shape[-1]
                net = torch.cat(level_input + [self.literal_upsample_conv(coarser, height, width)], dim=1)
                level_input.clear()
                return util.conv_leaky_relu(net, self.conv1.weight, self.conv1.bias)
            if util.fused_cpu_kernels(level_input[1]):
                return self._conv1_by_parts(coarser, level_input)
        net = util.concat_channels(level_input, spare_channels=self.filters)
        level_input.clear()
        self._upsample_conv_into(coarser, net[:, net.shape[1] - self.filters:])
        return util.conv_leaky_relu(net, self.conv1.weight, self.conv1.bias)

    def _conv1_by_parts(self, coarser: Tensor, level_input: List[Tensor]) -> Tensor:
        """conv1 + activation with oneDNN (eager, CPU) without the level's concatenation.

        The two warped feature maps (nearly all the channels) are read where
        the warp wrote them; only the narrow rest (images, flows, up_conv)
        is gathered into one buffer, and the three convolutions are summed
        into one output (``util.conv_sum_leaky_relu``).
        """
        image0, features0, image1, features1, flow0, flow1 = level_input
        rest = util.concat_channels([image0, image1, flow0, flow1], spare_channels=self.filters)
        level_input.clear()
        self._upsample_conv_into(coarser, rest[:, rest.shape[1] - self.filters:])
        # conv1's input channels are [image0, features0, image1, features1, flow0, flow1, up_conv].
        weight = self.conv1.weight
        start1 = image0.shape[1] + features0.shape[1]
        start_flows = start1 + image1.shape[1] + features1.shape[1]
        rest_weight = torch.cat([weight[:, :image0.shape[1]], weight[:, start1:start1 + image1.shape[1]],
                                 weight[:, start_flows:]], dim=1)
        return util.conv_sum_leaky_relu(
            [rest, features0, features1],
            [rest_weight, weight[:, image0.shape[1]:start1], weight[:, start1 + image1.shape[1]:start_flows]],
            self.conv1.bias)


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

    def forward(self, pyramid: List[List[Tensor]]) -> Tensor:
        """``pyramid[i]``: the parts of level ``i``'s input, in channel order.

        Consumes ``pyramid``: each level's list is emptied once it is copied
        into the decoder, which keeps the peak memory at the size of one
        level's working set rather than the whole aligned pyramid's.
        """
        net = util.concat_channels(pyramid[-1])
        pyramid[-1].clear()
        for i in range(len(pyramid) - 2, -1, -1):
            for k, level in enumerate(self.levels):
                if k == i:
                    net = level(net, pyramid[i])
        return self.output_conv(net).contiguous()
