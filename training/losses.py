"""The original FILM's training losses: l1, l2, the VGG perceptual loss and the style (Gram) loss.

``prediction`` and ``target`` are (B, 3, H, W) float32 RGB, nominally in
[0, 1]; nothing is clipped (the original does not clip either). Every loss is
a scalar tensor, differentiable with respect to ``prediction``, and equal to
what the original's ``losses/losses.py`` and ``losses/vgg19_loss.py`` return
(held to it by tests/test_training_losses.py).

- l1, l2: mean absolute / squared error over every value.
- vgg: for conv1_2, conv2_2, conv3_2, conv4_2, conv5_2 of VGG-19 run on
  ``255 * image``, the mean absolute difference of the two images'
  activations, times the layer's weight; summed, divided by 255.
- style: for the same layers, the Gram matrices (C×C, over the activations
  divided by 255, normalised by h·w) of both images; the mean squared
  difference of the two, times the layer's weight; summed.

Default layer weights: 1/2.6, 1/4.8, 1/3.7, 1/5.6, 10/1.5 (Chen and Koltun,
ICCV 2017), for both. SSIM and PSNR, which the original uses as test metrics,
are in ``evaluation.metrics``.
"""
from typing import Dict, Optional, Sequence

import torch
from torch import Tensor

from evaluation import metrics
from training.vgg19 import FEATURE_LAYERS, VGG19Features

DEFAULT_LAYER_WEIGHTS = (1.0 / 2.6, 1.0 / 4.8, 1.0 / 3.7, 1.0 / 5.6, 10.0 / 1.5)
LOSS_NAMES = ("l1", "l2", "vgg", "style")
VGG_LOSSES = ("vgg", "style")


# The same functions as the evaluation's metrics: one definition of each.
l1_loss = metrics.l1
l2_loss = metrics.l2


def gram_matrix(features: Tensor) -> Tensor:
    """(B, C, C) Gram matrices of (B, C, H, W) features, divided by H·W."""
    batch, channels, height, width = features.shape
    flat = features.reshape(batch, channels, height * width)
    return torch.bmm(flat, flat.transpose(1, 2)) / float(height * width)


def _layer_weights(weights: Optional[Sequence[float]]) -> Sequence[float]:
    weights = DEFAULT_LAYER_WEIGHTS if not weights else weights
    if len(weights) != len(FEATURE_LAYERS):
        raise ValueError(f"need {len(FEATURE_LAYERS)} layer weights, got {len(weights)}")
    return weights


def vgg_loss_from_features(prediction_features, target_features, weights=None) -> Tensor:
    total = None
    for weight, fake, real in zip(_layer_weights(weights), prediction_features, target_features):
        # The original computes |reference - image|: the same value, named as it does.
        part = (real - fake).abs().mean() * weight
        total = part if total is None else total + part
    return total / 255.0


def style_loss_from_features(prediction_features, target_features, weights=None) -> Tensor:
    total = None
    for weight, fake, real in zip(_layer_weights(weights), prediction_features, target_features):
        part = (gram_matrix(real / 255.0) - gram_matrix(fake / 255.0)).square().mean() * weight
        total = part if total is None else total + part
    return total


def vgg_features(vgg: VGG19Features, prediction: Tensor, target: Tensor):
    """(prediction's, target's) activations at the loss layers; the target's without autograd."""
    with torch.no_grad():
        target_features = vgg(target * 255.0)
    return vgg(prediction * 255.0), target_features


def vgg_loss(prediction: Tensor, target: Tensor, vgg: VGG19Features,
             weights: Optional[Sequence[float]] = None) -> Tensor:
    return vgg_loss_from_features(*vgg_features(vgg, prediction, target), weights)


def style_loss(prediction: Tensor, target: Tensor, vgg: VGG19Features,
               weights: Optional[Sequence[float]] = None) -> Tensor:
    return style_loss_from_features(*vgg_features(vgg, prediction, target), weights)


def compute_losses(names: Sequence[str], prediction: Tensor, target: Tensor, vgg: Optional[VGG19Features] = None,
                   layer_weights: Optional[Sequence[float]] = None) -> Dict[str, Tensor]:
    """{name: loss} for ``names`` (of ``LOSS_NAMES``); vgg and style share one VGG pass per image."""
    unknown = [name for name in names if name not in LOSS_NAMES]
    if unknown:
        raise ValueError(f"unknown losses {unknown}; known: {', '.join(LOSS_NAMES)}")
    features = None
    if any(name in VGG_LOSSES for name in names):
        if vgg is None:
            raise ValueError("the vgg and style losses need the VGG-19 network")
        features = vgg_features(vgg, prediction, target)
    losses = {}
    for name in names:
        if name == "l1":
            losses[name] = l1_loss(prediction, target)
        elif name == "l2":
            losses[name] = l2_loss(prediction, target)
        elif name == "vgg":
            losses[name] = vgg_loss_from_features(*features, layer_weights)
        else:
            losses[name] = style_loss_from_features(*features, layer_weights)
    return losses
