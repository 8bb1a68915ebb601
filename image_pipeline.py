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

from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from tqdm import tqdm

import frame_schedule
import media.samples
import runtime


def run_schedule(model: torch.nn.Module, first: torch.Tensor, second: torch.Tensor,
                 schedule: frame_schedule.Schedule,
                 reuse: Optional[bool] = None) -> Iterator[Tuple[int, torch.Tensor]]:
    """Make the schedule's frames; yields (slot, frame) in the schedule's step order.

    ``first`` and ``second`` are the padded inputs on the model's device and dtype.
    Frames are clamped to [0, 1] (also before serving as inputs of later steps, as
    in the original port) and must not be modified in place by the caller: a
    frame may still be needed as an input.

    With ``reuse`` (default: when the model supports it) a frame's image and
    feature pyramids are computed once, and the flows of a pair once, and each is
    freed after the last step that needs it, so only the frames along the current
    branch of the schedule hold pyramids.
    """
    if reuse is None:
        reuse = runtime.supports_reuse(model)
    slot_last_use = schedule.last_use_of_slots()
    pair_last_use = schedule.last_use_of_pairs()
    images: Dict[int, torch.Tensor] = {0: first, schedule.last_slot: second}
    pyramids: Dict[int, Tuple[List[torch.Tensor], List[torch.Tensor]]] = {}
    flows: Dict[Tuple[int, int], Tuple[List[torch.Tensor], List[torch.Tensor]]] = {}

    def pyramids_of(slot: int) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        if slot not in pyramids:
            pyramids[slot] = model.encode(images.pop(slot))
        return pyramids[slot]

    # A function of its own, so that its local references to pyramids end with
    # the step and freed pyramids are really freed before the next encode.
    @torch.no_grad()
    def make_frame(step: frame_schedule.Step) -> torch.Tensor:
        dt = first.new_full((first.shape[0], 1), float(step.dt))
        if not reuse:
            return model(images[step.left], images[step.right], dt).clamp(0, 1)
        left_images, left_features = pyramids_of(step.left)
        right_images, right_features = pyramids_of(step.right)
        pair = (step.left, step.right)
        if pair not in flows:
            flows[pair] = model.estimate_flows(left_features, right_features)
        forward_flows, backward_flows = flows[pair]
        return model.synthesize(left_images, left_features, right_images, right_features,
                                forward_flows, backward_flows, dt).clamp(0, 1)

    for index, step in enumerate(schedule.steps):
        frame = make_frame(step)
        pair = (step.left, step.right)
        if step.new in slot_last_use:
            images[step.new] = frame
        if pair_last_use[pair] == index:
            flows.pop(pair, None)
        for slot in pair:
            if slot_last_use[slot] == index:
                pyramids.pop(slot, None)
                images.pop(slot, None)
        yield step.new, frame


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
    # TorchScript's optimizing executor re-profiles and recompiles during the
    # first calls (seconds each, per input size) for no measurable gain here.
    with torch.jit.optimized_execution(False), \
            tqdm(total=len(schedule.steps), desc="Interpolating", unit="frame",
                 disable=not show_progress) as progress:
        for slot, frame in run_schedule(model_runtime.model, padded_first, padded_second, schedule, reuse):
            if slot in wanted:
                frames[slot] = runtime.tensor_to_samples(frame, crop, sample_dtype)
            progress.update()
    return frames
