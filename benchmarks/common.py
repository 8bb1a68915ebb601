"""What the benchmark's programs share.

- ``random_network``: the network with random weights (speed does not depend
  on their values), the one definition that the device table
  (``benchmarks/device.py``) and the test suite
  (``tests/conftest.py::random_interpolator``) both use; ``STYLE`` is the
  released Style configuration, ``QUICK`` the tiny one of ``--quick``.
"""
from __future__ import annotations

from typing import Dict

import torch

from interpolator import Interpolator

STYLE = dict(filters=64, flow_filters=(32, 64, 128, 256))
QUICK = dict(filters=4, flow_filters=(4, 4, 8, 8))


def random_network(config: Dict, seed: int = 0) -> Interpolator:
    """A network with PyTorch's default initialisation and non-zero biases, in eval mode.

    Gives outputs of order 0.1-1 and flows of several pixels on random frames,
    so warps, flows and fusion all matter (no path is silently zero).
    """
    torch.manual_seed(seed)
    model = Interpolator(**config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.normal_(std=0.05)
    return model
