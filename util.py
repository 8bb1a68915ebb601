"""Operations shared by the FILM modules.

Conventions, stated once for the whole network:
- Tensors are NCHW by shape. Inside the network they are stored channels_last
  (NHWC strides): oneDNN's convolutions run 1.4-1.7x faster on that layout
  on CPU than on contiguous NCHW, and the CPU warp reads whole pixel vectors
  (see ``gather_bilinear``). Results do not depend on the layout; the final
  image is returned contiguous.
- Images are RGB in [0, 1].
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
import contextlib
from typing import Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

def leaky_relu(x: Tensor) -> Tensor:
    """The original's activation (slope 0.2), applied in place to a fresh conv output."""
    # In place: the conv output has no other user, and skipping a second
    # full-size buffer saves memory traffic. (A literal slope: TorchScript
    # cannot read a module-level float.)
    return F.leaky_relu_(x, 0.2)


# Which device's branches the network takes in eager mode: None for the
# tensors' own device; a device type ('cuda', 'mps') makes CPU tensors take
# that device's branches, so that a machine without a GPU runs them all
# (``device_branches``).
_forced_branches: Optional[str] = None


@contextlib.contextmanager
def device_branches(device_type: str) -> Iterator[None]:
    """Within the block, eager models take ``device_type``'s code paths
    (warp, convolutions) whatever device their tensors are on. For tests: the
    result equals what that device computes up to its own rounding."""
    global _forced_branches
    previous, _forced_branches = _forced_branches, device_type
    try:
        yield
    finally:
        _forced_branches = previous


def branch_device(x: Tensor) -> str:
    """The device type whose code path ``x`` takes (see ``device_branches``)."""
    if not torch.jit.is_scripting():
        if _forced_branches is not None:
            return _forced_branches
    return x.device.type


def fused_cpu_kernels(x: Tensor) -> bool:
    """Whether ``x`` takes oneDNN's fused CPU kernels (``conv_leaky_relu``).

    Eager mode only: TorchScript does not compile the code under
    ``if not torch.jit.is_scripting()``, so a scripted (exported) model never
    names a oneDNN op and loads in every torch build, including those without
    oneDNN (macOS arm64). The project's programs run our files eagerly
    (``runtime.load_model``) and so still get these kernels.

    float32 only: oneDNN refuses float16 on CPUs without AVX-512 FP16, and
    bfloat16 keeps the plain path, whose speed the precision checks measure.
    Inference only, as those ops have no autograd formula. Inputs of at most
    20480 values take the plain path, as torch's own convolution does: there
    its non-oneDNN kernel is faster (3x on the tiny test networks).
    """
    if not torch.jit.is_scripting():
        return (branch_device(x) == "cpu" and x.dtype == torch.float32 and x.numel() > 20480
                and not torch.is_grad_enabled() and torch.backends.mkldnn.is_available())
    return False


def conv_leaky_relu(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """``leaky_relu(conv(x))`` for the network's odd-sized 'same' convolutions
    (stride 1, padding k // 2: ``conv3x3`` and ``conv1x1``), given as weight and
    bias (TorchScript does not let a function read a Conv2d's settings).

    With ``fused_cpu_kernels`` it is one oneDNN convolution with the
    activation as a post-op: the output is written once and not read again,
    where the in-place activation is a second full pass over it.
    """
    padding = weight.shape[-1] // 2
    if not torch.jit.is_scripting():
        if fused_cpu_kernels(x):
            return _onednn_conv(x, weight, bias, padding, "leaky_relu", [0.2])
    return leaky_relu(F.conv2d(x, weight, bias, padding=padding))


def _onednn_conv(x: Tensor, weight: Tensor, bias: Optional[Tensor], padding: int, post_op: str,
                 post_op_scalars: list) -> Tensor:
    """oneDNN's convolution (stride 1, no dilation, one group) with a post-op. Eager only."""
    return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, [padding, padding], [1, 1], [1, 1], 1,
                                                   post_op, post_op_scalars, None)


def conv_sum_leaky_relu(inputs: List[Tensor], weights: List[Tensor], bias: Optional[Tensor]) -> Tensor:
    """``leaky_relu(sum_k conv(inputs[k], weights[k]) + bias)``: the convolution
    of the inputs' channel concatenation by the weights concatenated along
    their input channels. For ``fused_cpu_kernels`` inputs only (eager).

    A convolution is a sum over its input channels, so each input's share is
    accumulated into one output by oneDNN (sum post-op) and the inputs are read
    where they are: no concatenation buffer is written and read again (at the
    finest flow level that buffer has 128 channels, the output 32).
    """
    padding = weights[0].shape[-1] // 2
    out = _onednn_conv(inputs[0], weights[0], bias, padding, "none", [])
    for k in range(1, len(inputs)):
        torch.ops.mkldnn._convolution_pointwise_(out, inputs[k], weights[k], None, [padding, padding], [1, 1],
                                                 [1, 1], 1, "add", None, None, [], None)
    # oneDNN fuses only ReLU after a sum, hence the separate activation (on
    # the output, narrower than the inputs).
    return leaky_relu(out)


def conv_pair_leaky_relu(a: Tensor, b: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """``conv_leaky_relu(cat([a, b], 1), weight, bias)``, without the
    concatenation where ``fused_cpu_kernels`` (``conv_sum_leaky_relu``)."""
    if not torch.jit.is_scripting():
        if fused_cpu_kernels(a):
            split = a.shape[1]
            return conv_sum_leaky_relu([a, b], [weight[:, :split], weight[:, split:]], bias)
    return conv_leaky_relu(concat_channels([a, b]), weight, bias)


def to_channels_last(x: Tensor) -> Tensor:
    if not torch.jit.is_scripting():
        if torch.compiler.is_exporting():
            return x  # a layout is no part of an exported graph, and would guard its sizes
    return x.contiguous(memory_format=torch.channels_last)


def concat_channels(parts: List[Tensor], spare_channels: int = 0) -> Tensor:
    """``torch.cat(parts, 1)`` written into one new channels_last tensor.

    The parts may have any layout (grid_sample, the GPU warp, returns NCHW):
    copying each straight into its slice costs one pass, where ``cat``
    followed by the convolution's own layout conversion costs two. The last
    ``spare_channels`` channels are left uninitialised for the caller to fill
    in place (see ``fusion``).
    """
    if not torch.jit.is_scripting():
        if spare_channels == 0 and torch.compiler.is_exporting():
            return torch.cat(parts, dim=1)  # a graph export (ONNX): one Concat, not slice writes
    first = parts[0]
    channels = spare_channels
    for part in parts:
        channels += part.shape[1]
    out = torch.empty((first.shape[0], first.shape[2], first.shape[3], channels),
                      dtype=first.dtype, device=first.device).permute(0, 3, 1, 2)
    start = 0
    for part in parts:
        out[:, start:start + part.shape[1]].copy_(part)
        start += part.shape[1]
    return out


def conv3x3(in_channels: int, out_channels: int) -> torch.nn.Conv2d:
    """A 3×3 convolution with TF's 'same' padding (1 pixel on every side)."""
    return torch.nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)


def conv1x1(in_channels: int, out_channels: int) -> torch.nn.Conv2d:
    return torch.nn.Conv2d(in_channels, out_channels, kernel_size=1)


def half_size(x: Tensor) -> Tensor:
    """2×2 average pooling with 'valid' padding: odd sizes are floored."""
    return F.avg_pool2d(x, kernel_size=2, stride=2)


def build_image_pyramid(image: Tensor, levels: int) -> List[Tensor]:
    image = to_channels_last(image)
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
    return F.interpolate(2.0 * flow, size=(height, width), mode="bilinear", align_corners=False)


def bilinear_taps(flow: Tensor) -> Tuple[Tensor, Tensor]:
    """Where and how much each output pixel of the backward warp by ``flow`` reads.

    Returns (indices, weights), each (B, H, W, 4): rows of the (B·H·W, C) pixel
    table of a channels_last image, and their bilinear weights. Positions are
    clamped to the image, then the 2×2 cell is clamped inside it (a position on
    the last row/column gets weight 1 on it): the original's
    ``interpolate_bilinear`` rule. Computed in float32 whatever the images'
    dtype, and in pixel units, so no precision is lost to normalised
    coordinates.
    """
    flow = flow.float()
    batch, height, width = flow.shape[0], flow.shape[2], flow.shape[3]
    cols = torch.arange(width, dtype=flow.dtype, device=flow.device).view(1, 1, width)
    rows = torch.arange(height, dtype=flow.dtype, device=flow.device).view(1, height, 1)
    x = (cols + flow[:, 0]).clamp_(0, width - 1)
    y = (rows + flow[:, 1]).clamp_(0, height - 1)
    left = x.floor().clamp_(max=max(width - 2, 0))
    top = y.floor().clamp_(max=max(height - 2, 0))
    fx, fy = x - left, y - top
    gx, gy = 1.0 - fx, 1.0 - fy
    image_starts = torch.arange(batch, device=flow.device).view(batch, 1, 1) * (height * width)
    first = image_starts + (top * width + left).long()
    step_x, step_y = min(width - 1, 1), width if height > 1 else 0
    indices = torch.stack((first, first + step_x, first + step_y, first + (step_x + step_y)), dim=-1)
    weights = torch.stack((gx * gy, fx * gy, gx * fy, fx * fy), dim=-1)
    return indices, weights


def _check_warp_sizes(image: Tensor, per_pixel: Tensor):
    """``per_pixel`` (B, H, W, ...): taps or grid, which must match the image's B, H, W."""
    if (per_pixel.shape[0] != image.shape[0] or per_pixel.shape[1] != image.shape[2]
            or per_pixel.shape[2] != image.shape[3]):
        raise ValueError(f"cannot warp a {image.shape[2]}x{image.shape[3]} image (batch {image.shape[0]}) by a "
                         f"flow of {per_pixel.shape[1]}x{per_pixel.shape[2]} (batch {per_pixel.shape[0]})")


def gather_bilinear(image: Tensor, taps: Tuple[Tensor, Tensor]) -> Tensor:
    """``image`` (B, C, H, W) read at ``bilinear_taps``: a channels_last result.

    A weighted bag of four whole pixel vectors per output pixel: on a
    channels_last image each is one contiguous read, three times faster on
    the CPU than grid_sample (which also returns NCHW, to be converted).
    """
    batch, channels, height, width = image.shape
    indices, weights = taps
    _check_warp_sizes(image, indices)
    table = image.permute(0, 2, 3, 1).reshape(batch * height * width, channels)
    warped = F.embedding_bag(indices.view(-1, 4), table, per_sample_weights=weights.view(-1, 4).to(image.dtype),
                             mode="sum")
    return warped.view(batch, height, width, channels).permute(0, 3, 1, 2)


def sampling_grid(flow: Tensor) -> Tensor:
    """The float32 ``grid_sample`` grid of the backward warp by ``flow``.

    Always float32: in bfloat16 a normalised coordinate is off by up to 15 px
    at 3840 px width (float16: 2 px).
    """
    flow = flow.float()
    height, width = flow.shape[-2], flow.shape[-1]
    rows = torch.arange(height, dtype=flow.dtype, device=flow.device).view(1, height, 1)
    cols = torch.arange(width, dtype=flow.dtype, device=flow.device).view(1, 1, width)
    # grid_sample with align_corners=True maps -1 and +1 to the centres of the
    # first and last pixel, and padding_mode='border' clamps to them: the same
    # rule as bilinear_taps. max(size - 1, 1) keeps a one-pixel level finite.
    x = (cols + flow[:, 0]) * (2.0 / max(width - 1, 1)) - 1.0
    y = (rows + flow[:, 1]) * (2.0 / max(height - 1, 1)) - 1.0
    return torch.stack((x, y), dim=-1)


def warp_with_grid(image: Tensor, grid: Tensor) -> Tensor:
    _check_warp_sizes(image, grid)  # grid_sample itself would resample to the grid's size without a word
    if image.dtype == grid.dtype:
        return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)
    # Reduced precision: sample float32 slices of 32 channels (bounded extra
    # memory) and cast back.
    warped = torch.empty_like(image)
    for start in range(0, image.shape[1], 32):
        part = image[:, start:start + 32].float()
        warped[:, start:start + 32] = F.grid_sample(part, grid, mode="bilinear", padding_mode="border",
                                                    align_corners=True)
    return warped


def warp_sampler(flow: Tensor) -> Tuple[Tensor, Tensor]:
    """What ``warp_with`` needs to warp any number of tensors by one ``flow``.

    On the CPU, ``bilinear_taps``; elsewhere (grid_sample is the fast kernel
    on GPUs, and MPS lacks embedding_bag) the grid and an unused placeholder.
    """
    if branch_device(flow) == "cpu":
        return bilinear_taps(flow)
    return sampling_grid(flow), flow.new_empty(0)


def warp_with(image: Tensor, sampler: Tuple[Tensor, Tensor]) -> Tensor:
    if branch_device(image) == "cpu":
        return gather_bilinear(image, sampler)
    return warp_with_grid(image, sampler[0])


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """Backward-warps ``image`` by ``flow`` with border clamping (see module docstring)."""
    return warp_with(image, warp_sampler(flow))
