"""Operations shared by the FILM modules.

Conventions, stated once for the whole network:
- Tensors are NCHW. Images are RGB in [0, 1].
- Pyramids are Python lists ordered finest level first; level ``i`` has the
  size of level ``i - 1`` halved with floor (2×2 average pooling, 'valid'
  padding), exactly as the original TensorFlow code builds them, so any image
  size works as long as the coarsest level is at least one pixel.
- Flows are (B, 2, H, W) in pixels of the level they belong to. Channel 0 is
  the horizontal (x) and channel 1 the vertical (y) displacement: the order
  the original model produces (verified against its outputs), so converted
  weights need no channel shuffle.
- ``warp(image, flow)`` is backward warping: output pixel (y, x) samples
  ``image`` at (y + flow_y, x + flow_x), bilinearly, clamping sample positions
  to the image border, as the original's warp does.
"""
from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor

def leaky_relu(x: Tensor) -> Tensor:
    """The original's activation (slope 0.2), applied in place to a fresh conv output."""
    # In place: the conv output has no other user, and skipping a second
    # full-size buffer saves memory traffic. (A literal slope: TorchScript
    # cannot read a module-level float.)
    return F.leaky_relu_(x, 0.2)


def conv3x3(in_channels: int, out_channels: int) -> torch.nn.Conv2d:
    """A 3×3 convolution with TF's 'same' padding (1 pixel on every side)."""
    return torch.nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)


def conv1x1(in_channels: int, out_channels: int) -> torch.nn.Conv2d:
    return torch.nn.Conv2d(in_channels, out_channels, kernel_size=1)


def half_size(x: Tensor) -> Tensor:
    """2×2 average pooling with 'valid' padding: odd sizes are floored."""
    return F.avg_pool2d(x, kernel_size=2, stride=2)


def build_image_pyramid(image: Tensor, levels: int) -> List[Tensor]:
    pyramid: List[Tensor] = [image]
    for _ in range(levels - 1):
        image = half_size(image)
        pyramid.append(image)
    return pyramid


def upsample_flow(flow: Tensor, height: int, width: int) -> Tensor:
    """Flow of a coarser level brought to the next finer one.

    The vectors are doubled because a pixel of the coarse level spans two of
    the finer one; resampling is bilinear with half-pixel centres, which is
    what ``tf.image.resize`` does by default (also for odd target sizes).
    """
    return F.interpolate(2.0 * flow, size=(height, width), mode='bilinear', align_corners=False)


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """Backward-warps ``image`` by ``flow`` with border clamping (see module docstring)."""
    height, width = image.shape[-2], image.shape[-1]
    # grid_sample with align_corners=True maps -1 and +1 to the centres of the
    # first and last pixel, and padding_mode='border' clamps to them: this is
    # the original's bilinear interpolation with clamped query points.
    rows = torch.arange(height, dtype=flow.dtype, device=flow.device).view(1, height, 1)
    cols = torch.arange(width, dtype=flow.dtype, device=flow.device).view(1, 1, width)
    # max(size - 1, 1) keeps a one-pixel level finite: every position maps to it.
    x = (cols + flow[:, 0]) * (2.0 / max(width - 1, 1)) - 1.0
    y = (rows + flow[:, 1]) * (2.0 / max(height - 1, 1)) - 1.0
    grid = torch.stack((x, y), dim=-1).to(image.dtype)
    return F.grid_sample(image, grid, mode='bilinear', padding_mode='border', align_corners=True)
