"""Shared test set-up: the repo root on sys.path and the reference data beside the checkout."""
import json
import os
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REFERENCE = pathlib.Path(os.environ.get('FILM_REFERENCE_DIR', ROOT.parent / 'shared' / 'reference'))
REFERENCE_CONFIGS = ('small', 'alt')
REFERENCE_CASES = ('photos_192x256', 'random_64x128')


def reference_config(name):
    return json.loads((REFERENCE / f'{name}_config.json').read_text())


def reference_weights(name):
    with np.load(REFERENCE / f'{name}_weights.npz') as weights:
        return dict(weights)


def reference_case(name, case):
    with np.load(REFERENCE / f'{name}_{case}.npz') as data:
        return dict(data)



def random_interpolator(seed=0, **config):
    """A network with PyTorch's default initialisation and non-zero biases.

    Gives outputs of order 0.1-1 and flows of several pixels on random frames,
    so warps, flows and fusion all matter (no path is silently zero).
    """
    import torch
    from interpolator import Interpolator
    torch.manual_seed(seed)
    model = Interpolator(**config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith('bias'):
                parameter.normal_(std=0.05)
    return model
