"""The original FILM's test metrics in torch: PSNR, SSIM, L1 and L2, differentiable.

Conventions, stated once for this module:

- Images are (B, 3, H, W) tensors (torch's layout; the original's are
  (B, H, W, 3)), RGB, on the scale where ``max_val`` (1.0, as the original
  passes it) is white. Both arguments have the same shape; they are computed
  with in float32 whatever their dtype (TensorFlow converts its inputs to
  float32 too). Nothing is clipped or quantised here: the evaluation clips the
  prediction to [0, 1] before calling these (``evaluation.runner``), as the
  original's eval loop does, and training losses must not.
- Each function returns the batch mean, a 0-d tensor, as the original's
  ``losses.py`` does (``tf.reduce_mean`` over the batch of per-image values);
  ``psnr_per_image`` and ``ssim_per_image`` give the (B,) values.
- ``psnr``: ``tf.image.psnr``: per image 20 log10(max_val) - 10 log10(MSE),
  the MSE over all pixels and channels. Identical images give +inf, as there.
- ``ssim``: ``tf.image.ssim`` with its defaults (11x11 Gaussian window,
  sigma 1.5, k1 0.01, k2 0.03): the window is the softmax of -(x^2 + y^2) /
  (2 sigma^2) over the 11x11 offsets, applied per channel over 'VALID'
  positions only (no padding, so an image needs at least 11x11 pixels); the
  mean of luminance x contrast-structure over positions, then over channels.
  That mean over positions is summed accurately here (torch's cascaded
  sums); what remains is the float32 rounding of the per-position terms that
  TensorFlow has too (within 2.1e-6 of float64 in the tests). TensorFlow on
  a CPU sums the positions one after the other in float32 (its reduce_mean
  over the middle axes), so its SSIM drifts from the exact value as images
  grow: up to 1.7e-5 at 448x256 and 1.2e-3 at
  896x512 (measured, TensorFlow 2.21). ``sums="tensorflow-cpu"`` sums that
  way too (numpy's float32 cumulative sum, in the same order: within 4e-7 of
  TensorFlow's at every size tested) to reproduce numbers the original made
  on a CPU; it has no gradient.
- ``l1`` / ``l2``: the mean absolute / squared difference over everything.

Checked in tests/test_evaluate.py against ``tf.image.psnr`` / ``tf.image.ssim``
on the same images and against the original code's values and gradients.
"""
from __future__ import annotations

import math
from typing import Dict

import numpy as np
import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

SSIM_SUMS = ("exact", "tensorflow-cpu")

# The columns of the original's results.csv, in its configs' order (eval/config/*.gin).
METRIC_NAMES = ("l1", "l2", "ssim", "psnr")


def _as_float32_pair(prediction: torch.Tensor, target: torch.Tensor):
    if prediction.shape != target.shape or prediction.dim() != 4:
        raise ValueError(f"expected two (B, C, H, W) images of one shape, got {list(prediction.shape)} "
                         f"and {list(target.shape)}")
    return prediction.float(), target.float()


def psnr_per_image(prediction: torch.Tensor, target: torch.Tensor, max_val: float = 1.0) -> torch.Tensor:
    """(B,) PSNR in dB of each image (see the module docstring)."""
    prediction, target = _as_float32_pair(prediction, target)
    mse = (prediction - target).square().mean(dim=(1, 2, 3))
    # The same two terms as TensorFlow, in the same order.
    return 20.0 * math.log(max_val) / math.log(10.0) - (10.0 / math.log(10.0)) * torch.log(mse)


def psnr(prediction: torch.Tensor, target: torch.Tensor, max_val: float = 1.0) -> torch.Tensor:
    """Mean PSNR in dB over the batch, as the original's ``psnr_loss``."""
    return psnr_per_image(prediction, target, max_val).mean()


def _gaussian_window(channels: int, device: torch.device) -> torch.Tensor:
    """The (channels, 1, 11, 11) depthwise kernel tf.image.ssim builds (a softmax over the offsets)."""
    offsets = torch.arange(SSIM_WINDOW, dtype=torch.float32, device=device) - (SSIM_WINDOW - 1) / 2.0
    exponents = offsets.square() * (-0.5 / SSIM_SIGMA ** 2)
    window = torch.softmax((exponents[None, :] + exponents[:, None]).reshape(-1), dim=0)
    return window.reshape(1, 1, SSIM_WINDOW, SSIM_WINDOW).expand(channels, 1, SSIM_WINDOW, SSIM_WINDOW)


def _sequential_float32_mean(values: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C): the mean over positions as TensorFlow's CPU kernel makes it, one float32
    addition after the other in row-major order, then divided by the count in float32."""
    batch, channels = values.shape[:2]
    flat = values.detach().cpu().numpy().reshape(batch, channels, -1)
    sums = np.cumsum(flat, axis=2, dtype=np.float32)[:, :, -1]
    return torch.from_numpy(sums / np.float32(flat.shape[2])).to(values.device)


def ssim_per_image(prediction: torch.Tensor, target: torch.Tensor, max_val: float = 1.0,
                   sums: str = "exact") -> torch.Tensor:
    """(B,) SSIM of each image (see the module docstring)."""
    if sums not in SSIM_SUMS:
        raise ValueError(f"unknown SSIM sums {sums!r}; choose one of {', '.join(SSIM_SUMS)}")
    prediction, target = _as_float32_pair(prediction, target)
    channels = prediction.shape[1]
    if min(prediction.shape[2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, "
                         f"got {prediction.shape[3]}x{prediction.shape[2]}")
    window = _gaussian_window(channels, prediction.device)

    def local_mean(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, groups=channels)  # 'VALID': no padding

    c1 = (SSIM_K1 * max_val) ** 2
    c2 = (SSIM_K2 * max_val) ** 2
    mean_p, mean_t = local_mean(prediction), local_mean(target)
    twice_means = mean_p * mean_t * 2.0
    squared_means = mean_p.square() + mean_t.square()
    luminance = (twice_means + c1) / (squared_means + c1)
    twice_cross = local_mean(prediction * target) * 2.0
    squares = local_mean(prediction.square() + target.square())
    contrast_structure = (twice_cross - twice_means + c2) / (squares - squared_means + c2)
    ssim_map = luminance * contrast_structure
    per_channel = ssim_map.mean(dim=(2, 3)) if sums == "exact" else _sequential_float32_mean(ssim_map)
    return per_channel.mean(dim=1)


def ssim(prediction: torch.Tensor, target: torch.Tensor, max_val: float = 1.0, sums: str = "exact") -> torch.Tensor:
    """Mean SSIM over the batch, as the original's ``ssim_loss``."""
    return ssim_per_image(prediction, target, max_val, sums).mean()


def l1(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference, as the original's ``l1_loss``."""
    prediction, target = _as_float32_pair(prediction, target)
    return (prediction - target).abs().mean()


def l2(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference, as the original's ``l2_loss``."""
    prediction, target = _as_float32_pair(prediction, target)
    return (prediction - target).square().mean()


METRICS = {"l1": l1, "l2": l2, "ssim": ssim, "psnr": psnr}


@torch.no_grad()
def evaluate_metrics(prediction: torch.Tensor, target: torch.Tensor, ssim_sums: str = "exact") -> Dict[str, float]:
    """Every metric of ``METRIC_NAMES`` for one prediction and its ground truth, as Python floats."""
    functions = dict(METRICS, ssim=lambda p, t: ssim(p, t, sums=ssim_sums))
    return {name: float(functions[name](prediction, target)) for name in METRIC_NAMES}
