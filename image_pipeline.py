"""Two images in, the frames of a ``frame_schedule.Schedule`` out: the pipeline behind ``inference.py``.

Conventions used throughout this module:

- Frames are identified by their *slot* in the schedule: slot 0 is the first
  image, the schedule's last slot is the second.
- Inputs are (H, W, 3) float32 RGB arrays in [0, 1]; the model sees them as
  ``runtime`` prepares them (padded to a multiple of 64 by repeating edges);
  frames come out cropped back, as (H, W, 3) RGB arrays of the writer's
  sample type: uint8, or uint16 (full 16-bit scale) for deeper outputs.
- A model exposing ``encode``/``estimate_flows``/``synthesize`` (our export.py)
  has each frame's pyramids computed once and the flows of a pair computed
  once, which gives the same frames as plain ``forward`` calls; models with
  only ``forward(x0, x1, dt)`` (the original PyTorch port's files) get
  forward calls.
"""
from __future__ import annotations

from typing import Dict, Iterator, Optional, Tuple

import numpy as np
import torch
from tqdm import tqdm

import frame_schedule
import media.samples
import runtime


def run_schedule(model: torch.nn.Module, first: torch.Tensor, second: torch.Tensor,
                 schedule: frame_schedule.Schedule,
                 reuse: Optional[bool] = None) -> Iterator[Tuple[int, torch.Tensor]]:
    """``runtime.run_schedule`` for two padded input tensors on the model's device and dtype."""
    return runtime.run_schedule(model, runtime.ModelFrame(first), runtime.ModelFrame(second), schedule, reuse)


def make_frames(model_runtime: runtime.ModelRuntime, first: np.ndarray, second: np.ndarray,
                schedule: frame_schedule.Schedule, reuse: Optional[bool] = None,
                show_progress: bool = True, sample_dtype: type = np.uint8) -> Dict[int, np.ndarray]:
    """The schedule's output frames {slot: (H, W, 3) of ``sample_dtype``} for two (H, W, 3) float images.

    ``reuse``: as in ``run_schedule`` (default: when the model supports it).
    ``sample_dtype``: uint8, or uint16 for outputs deeper than 8 bits.
    """
    padded_first, crop = model_runtime.to_model(first)
    padded_second, _ = model_runtime.to_model(second)
    wanted = set(schedule.outputs)
    frames = {0: media.samples.to_samples(first, sample_dtype),
              schedule.last_slot: media.samples.to_samples(second, sample_dtype)}
    with tqdm(total=len(schedule.steps), desc="Interpolating", unit="frame",
              disable=not show_progress) as progress:
        for slot, frame in run_schedule(model_runtime.model, padded_first, padded_second, schedule, reuse):
            if slot in wanted:
                frames[slot] = runtime.tensor_to_samples(frame, crop, sample_dtype)
            progress.update()
    return frames
