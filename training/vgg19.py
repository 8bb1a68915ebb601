"""VGG-19 features for the perceptual and style losses, from MatConvNet's ``imagenet-vgg-verydeep-19.mat``.

The original FILM reads that file (http://www.vlfeat.org/matconvnet/models/imagenet-vgg-verydeep-19.mat,
about 550 MB) and runs its first 14 convolutions, conv1_1 … conv5_2, each a
3×3 'SAME' convolution followed by ReLU, with a 2×2 average pool of stride 2
after conv1_2, conv2_2, conv3_4 and conv4_4. Its pools use TF's 'SAME'
padding: at an odd size the last row or column forms a window of its own and
is averaged over the pixels that exist, which is ``avg_pool2d`` with
``ceil_mode=True`` and ``count_include_pad=False``.

The file's ``layers`` is a cell array of structs; layers are found here by
their ``name`` field and the kernel and bias by field name (``weights`` =
{kernel, bias}, or the older ``filters`` and ``biases``), so the file's other
fields, its fully connected layers and any channel widths are fine. Kernels
are (kh, kw, in, out), TF's layout.

Inputs are (B, 3, H, W) RGB; ``forward`` takes pixel values in [0, 255]
(``losses`` multiplies by 255) and subtracts the ImageNet mean itself. The
weights are buffers: they move with ``.to()`` and are never trained.
"""
from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training import matlab

IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)
# The convolutions the original runs, block by block; a pool follows every block but the last.
BLOCKS = (("conv1_1", "conv1_2"), ("conv2_1", "conv2_2"), ("conv3_1", "conv3_2", "conv3_3", "conv3_4"),
          ("conv4_1", "conv4_2", "conv4_3", "conv4_4"), ("conv5_1", "conv5_2"))
# The layers whose (post-ReLU) activations the losses compare.
FEATURE_LAYERS = ("conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2")
CONV_NAMES = tuple(name for block in BLOCKS for name in block)


class VGGFileError(ValueError):
    """The file does not hold the VGG-19 convolutions the losses need; the message is one line."""


def _scalar(value):
    """A MATLAB value unwrapped from its 1×1 cells and structs."""
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.ravel()[0]
    return value


def read_conv_weights(path: str) -> Dict[str, tuple]:
    """{layer name: (kernel (kh, kw, in, out), bias (out,))} float32 for conv1_1 … conv5_2."""
    try:
        variables = matlab.load(path)
    except OSError as error:
        raise VGGFileError(f"cannot read {path}: {error.strerror or error}") from None
    except matlab.MatFileError as error:
        raise VGGFileError(str(error)) from None
    if "layers" not in variables:
        raise VGGFileError(f"{path} has no 'layers' variable: not a MatConvNet SimpleNN model such as "
                           "imagenet-vgg-verydeep-19.mat")
    found = {}
    for layer in np.asarray(variables["layers"], dtype=object).ravel():
        layer = _scalar(layer)
        if not isinstance(layer, dict) or not isinstance(layer.get("name"), str):
            continue
        name = layer["name"]
        if name not in CONV_NAMES:
            continue
        if "weights" in layer:
            parts = [p for p in np.asarray(layer["weights"], dtype=object).ravel()]
            if len(parts) != 2:
                raise VGGFileError(f"{path}: layer {name}'s weights hold {len(parts)} arrays, expected kernel and bias")
            kernel, bias = parts
        elif "filters" in layer and "biases" in layer:
            kernel, bias = layer["filters"], layer["biases"]
        else:
            raise VGGFileError(f"{path}: layer {name} has neither 'weights' nor 'filters'/'biases'")
        kernel = np.asarray(kernel, dtype=np.float32)
        if kernel.ndim == 3:  # MATLAB drops a trailing singleton output dimension
            kernel = kernel[..., np.newaxis]
        bias = np.asarray(bias, dtype=np.float32).reshape(-1)
        if kernel.ndim != 4 or kernel.shape[:2] != (3, 3) or kernel.shape[3] != bias.size:
            raise VGGFileError(f"{path}: layer {name} has a kernel of shape {list(kernel.shape)} and "
                               f"{bias.size} biases, expected (3, 3, in, out) and out")
        found[name] = (kernel, bias)
    missing = [name for name in CONV_NAMES if name not in found]
    if missing:
        raise VGGFileError(f"{path} lacks the VGG-19 layers {', '.join(missing)}")
    channels = 3
    for name in CONV_NAMES:
        if found[name][0].shape[2] != channels:
            raise VGGFileError(f"{path}: layer {name} takes {found[name][0].shape[2]} channels, "
                               f"the layer before gives {channels}")
        channels = found[name][0].shape[3]
    return found


def same_avg_pool(x: Tensor) -> Tensor:
    """TF's ``avg_pool(ksize 2, stride 2, padding='SAME')``: odd edges averaged over the pixels present."""
    return F.avg_pool2d(x, kernel_size=2, stride=2, ceil_mode=True, count_include_pad=False)


class VGG19Features(nn.Module):
    def __init__(self, conv_weights: Dict[str, tuple]):
        super().__init__()
        for name in CONV_NAMES:
            kernel, bias = conv_weights[name]
            self.register_buffer(name + "_weight", torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))))
            self.register_buffer(name + "_bias", torch.from_numpy(bias.copy()))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN_RGB, dtype=torch.float32).view(1, 3, 1, 1))

    @classmethod
    def from_file(cls, path: str) -> "VGG19Features":
        return cls(read_conv_weights(path))

    def forward(self, pixels: Tensor, layers: Sequence[str] = FEATURE_LAYERS) -> List[Tensor]:
        """Activations (after ReLU) at ``layers`` of RGB ``pixels`` in [0, 255]; stops after the last one."""
        wanted = set(layers)
        features: Dict[str, Tensor] = {}
        net = pixels - self.mean
        for b, block in enumerate(BLOCKS):
            if b > 0:
                net = same_avg_pool(net)
            for name in block:
                net = F.relu(F.conv2d(net, getattr(self, name + "_weight"), getattr(self, name + "_bias"), padding=1))
                if name in wanted:
                    features[name] = net
                    if len(features) == len(wanted):
                        return [features[name] for name in layers]
        raise ValueError(f"unknown VGG layers {sorted(wanted - set(features))}")
