"""One training step as the original's train_lib computes it.

``WeightedLoss`` is the original's sum of ``loss(example, prediction) *
weight(step)`` over the recipe's losses (all of them computed, also at weight
0, so that the parts can be logged); ``train_step`` runs the model on a batch
(x0, x1, time → image, as ``model(batch, training=True)['image']``: FILM has
no batch norm or dropout, so training mode is inference), backpropagates the
total, sets the optimizer's learning rate for the step and applies it.

Batches are dicts of (B, 3, H, W) float32 tensors ``x0``, ``y``, ``x1`` in
[0, 1] and ``time`` (B, 1). Steps count from 0 (Keras's ``iterations``).
"""
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

from training import losses


class WeightedLoss:
    def __init__(self, weights: Mapping[str, Callable[[int], float]], vgg=None,
                 layer_weights: Optional[Sequence[float]] = None):
        self.weights = dict(weights)
        self.vgg = vgg
        self.layer_weights = layer_weights
        if any(name in losses.VGG_LOSSES for name in self.weights) and vgg is None:
            raise ValueError("the vgg and style losses need the VGG-19 network (--vgg_file)")

    def __call__(self, prediction: Tensor, target: Tensor, step: int) -> Tuple[Tensor, Dict[str, Tensor]]:
        """(total, {name: unweighted part}) at ``step``."""
        parts = losses.compute_losses(list(self.weights), prediction, target, self.vgg, self.layer_weights)
        total = None
        for name, weight in self.weights.items():
            term = parts[name] * float(weight(step))
            total = term if total is None else total + term
        return total, parts


def forward_and_loss(model, loss: WeightedLoss, batch: Mapping[str, Tensor], step: int):
    """(image, total, parts) with autograd recording."""
    image = model(batch["x0"], batch["x1"], batch["time"])
    total, parts = loss(image, batch["y"], step)
    return image, total, parts


def train_step(model, optimizer, loss: WeightedLoss, batch: Mapping[str, Tensor], step: int,
               learning_rate: float, after_backward: Optional[Callable[[], None]] = None, scaler=None):
    """One optimizer step at ``step``; returns (total, parts) as floats.

    ``scaler``: a ``torch.amp.GradScaler`` for fp16 (the loss is scaled so that
    small gradients survive in fp16, and a step with inf/NaN gradients is skipped).
    """
    model.train()
    optimizer.zero_grad(set_to_none=True)
    _, total, parts = forward_and_loss(model, loss, batch, step)
    (scaler.scale(total) if scaler is not None else total).backward()
    if after_backward is not None:
        after_backward()  # e.g. averaging gradients over processes (linear: scaled gradients average alike)
    for group in optimizer.param_groups:
        group["lr"] = learning_rate
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return float(total.detach()), {name: float(value.detach()) for name, value in parts.items()}


@torch.no_grad()
def batch_to_tensors(batch: Mapping, device=None) -> Dict[str, Tensor]:
    return {key: torch.as_tensor(value, device=device) for key, value in batch.items()}
