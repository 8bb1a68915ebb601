"""Workload D: one 3840x2160 frame (``--quick``: 448x256), tiled to fit the memory budget.

``tiled_4k``: ``tiling.choose_tile_size`` for a 4 GB budget (``--quick``:
512 MB), then one timed ``tiling.interpolate_tiled`` run (untiled when the
frame fits) with the network the CLIs run (``common.cli_network``).
"""
from __future__ import annotations

from typing import Dict

import torch

from benchmarks import common


def tiled_4k(args) -> Dict:
    import tiling
    height, width = (256, 448) if args.quick else (2160, 3840)
    model = common.cli_network(args.scratch, args.quick)
    budget = (512 << 20) if args.quick else (4 << 30)
    tile = tiling.choose_tile_size(height, width, budget, filters=common.network_config(args.quick)["filters"])
    x0, x1 = common.frames_of_size(height, width)
    dt = common.mid_time()
    with torch.no_grad():
        model(x0[:, :, :128, :128], x1[:, :, :128, :128], dt)  # warm-up
        seconds = common.timed(lambda: model(x0, x1, dt) if tile is None else
                               tiling.interpolate_tiled(model, x0, x1, dt, tile_size=tile))
    return dict(seconds=seconds, gflop=None, frames=1, note=f"tile {tile}" if tile else "untiled")


VARIANTS = {"tiled": tiled_4k}


def add_notes(results: Dict[str, Dict], args) -> None:
    """D's one row carries its own note."""
