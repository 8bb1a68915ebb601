"""The original's training configurations (training/config/film_net-{Style,L1,VGG}.gin) as presets.

Every recipe trains the same network (the Style architecture unless a start
model or ``--config`` says otherwise) with Adam at 1e-4, decayed by
ExponentialDecay(750,000 steps, rate 0.464158, staircase) over 3,000,000
steps of batch 8, on random 256×256 crops with the augmentations
rot90, flip, rotate and time reverse. They differ in the loss weights, each a
PiecewiseConstantDecay of the step:

- ``style``: l1 1.0; vgg 1.0, then 0.25 after step 1,500,000; style 0.0, then 40.0 after it.
- ``vgg``:   l1 1.0; vgg 1.0, then 0.25 after step 1,500,000.
- ``l1``:    l1 1.0.
"""
from typing import Dict

from training.optim import ExponentialDecay, PiecewiseConstant

AUGMENTATIONS = ("rot90", "flip", "rotate", "reverse")
STYLE_BOUNDARY = 1_500_000

RECIPES = {
    "style": {"l1": PiecewiseConstant([0], [1.0, 1.0]),
              "vgg": PiecewiseConstant([STYLE_BOUNDARY], [1.0, 0.25]),
              "style": PiecewiseConstant([STYLE_BOUNDARY], [0.0, 40.0])},
    "vgg": {"l1": PiecewiseConstant([0], [1.0, 1.0]),
            "vgg": PiecewiseConstant([STYLE_BOUNDARY], [1.0, 0.25])},
    "l1": {"l1": PiecewiseConstant([0], [1.0, 1.0])},
}
DEFAULTS = dict(learning_rate=1e-4, decay_steps=750_000, decay_rate=0.464158, staircase=True,
                steps=3_000_000, batch_size=8, crop_size=256)


def loss_weights(recipe: str) -> Dict[str, PiecewiseConstant]:
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; known: {', '.join(RECIPES)}")
    return dict(RECIPES[recipe])


def learning_rate(initial=DEFAULTS["learning_rate"], decay_steps=DEFAULTS["decay_steps"],
                  decay_rate=DEFAULTS["decay_rate"], staircase=DEFAULTS["staircase"]) -> ExponentialDecay:
    return ExponentialDecay(initial, decay_steps, decay_rate, staircase)
