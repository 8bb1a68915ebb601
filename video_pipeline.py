"""The streaming video pipeline: source frames in, frames at an exact higher rate out.

Given frames from a source (``media.sources``), an ``OutputClock`` (where
the output frames fall between the source frames) and a ``PairRenderer``
around a ``runtime.ModelRuntime``, ``interpolate_stream`` writes every
output frame of the clock's window. ``video_jobs.render_segment`` calls it
for each segment of a job (the command line, ``inference_video.py``, runs
jobs); the scene-cut and held-frame tests here also serve the job's scan
of the source.

Conventions used throughout this module:

- Times are exact ``fractions.Fraction`` seconds (see ``media.sources``). Output
  frame ``n`` is at ``start + n / rate``, where ``start`` is the first source
  frame's time; writers give it pts ``n`` in time base ``1 / rate``, so the
  first source frame is at 0 in the output.
- Every output time lies in a *pair* of consecutive source frames (a, b), at
  ``t = (time - time_a) / (time_b - time_a)``, 0 <= t < 1. t = 0 and t = 1
  mean frame a and frame b themselves, written unchanged (passed through);
  other t are made by the model with ``dt = t``.
- Timestamps in files are rounded to steps of their stream's time base (the
  *timestamp step*: 1 ms in Matroska), so an output time within half a step
  of a source frame's time is that frame, and with a multiplier K a t within
  one step (in time)
  of a multiple of 1/K is that multiple: a 29.97 fps Matroska file doubled
  gets t = 1/2 exactly, not 0.4945 or 0.5055.
- The model sees frames as ``runtime`` prepares them: NCHW RGB in [0, 1],
  padded to a multiple of 64 by repeating edges, cropped back afterwards.
- Streaming: a source frame is decoded, used for the pair it ends and the
  pair it starts, and dropped; its image and feature pyramids are computed
  once, when the first pair that needs them is made, and the flows of a pair
  once for all of its t. At most two source frames (with their pyramids),
  the pair's flows and, in recursive mode, the midpoints on the current
  branch are alive at a time; frames are written as soon as they are made.
"""
from __future__ import annotations

import functools
import math
import time
from fractions import Fraction
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

import frame_schedule
import media.errors
import media.samples
import media.sources
import runtime

VIDEO_MODES = ("direct", "recursive")
# Scene cuts: see scene_difference, and inference_video's --help text for the
# measurements behind the default.
DEFAULT_SCENE_THRESHOLD = 0.2
SCENE_THUMBNAIL_WIDTH = 64
SCENE_MAX_SHIFT = 4
# Held frames: see duplicate_difference, and inference_video's --help text
# for the measurements behind the default.
DEFAULT_DEDUP_THRESHOLD = 0.05
DEDUP_BLOCK = 16


# --------------------------------------------------------------------------- timing

class Placement(NamedTuple):
    """Output frame ``index`` lies in the current pair at ``t`` (0: frame a, 1: frame b)."""

    index: int
    t: Fraction


class OutputClock:
    """Places output frames ``start + n / rate`` in the pairs of source frames, in order.

    ``timestamp_step`` is the step of the source's timestamps (0 if exact);
    ``multiplier`` is K for ``--multiplier K``: t near a multiple of 1/K is
    snapped to it (see the module docstring). ``multiples_only`` rounds every
    t to a multiple of 1/K, for recursive mode, which can only make those.

    ``first_index`` and ``end_index`` make the clock place only the output
    frames ``first_index <= n < end_index`` (None: no end): a segment of a
    longer job. A frame's placement does not depend on the window, so the
    segments of a job place their frames exactly as one clock over the whole
    video would.
    """

    def __init__(self, start: Fraction, rate: Fraction, timestamp_step: Fraction = Fraction(0),
                 multiplier: Optional[int] = None, multiples_only: bool = False, first_index: int = 0,
                 end_index: Optional[int] = None):
        if rate <= 0:
            raise ValueError(f"rate must be positive, not {rate}")
        if timestamp_step < 0:
            raise ValueError(f"timestamp_step must be >= 0, not {timestamp_step}")
        if multiplier is not None and multiplier < 1:
            raise ValueError(f"multiplier must be a positive whole number, not {multiplier}")
        if multiples_only and multiplier is None:
            raise ValueError("multiples_only needs a multiplier")
        self.start, self.rate = Fraction(start), Fraction(rate)
        self.timestamp_step = Fraction(timestamp_step)
        if first_index < 0 or (end_index is not None and end_index < first_index):
            raise ValueError(f"need 0 <= first_index <= end_index, got {first_index} and {end_index}")
        self.multiplier, self.multiples_only = multiplier, multiples_only
        self.next_index = first_index
        self.end_index = end_index

    def time_of(self, index: int) -> Fraction:
        return self.start + index / self.rate

    def first_index_from(self, time: Fraction) -> int:
        """The first output frame that a pair starting at ``time`` would get (see ``in_pair``)."""
        # The smallest n with start + n / rate >= time - timestamp_step / 2.
        return max(0, math.ceil((time - self.timestamp_step / 2 - self.start) * self.rate))

    @property
    def exhausted(self) -> bool:
        """Every frame of the window has been placed."""
        return self.end_index is not None and self.next_index >= self.end_index

    def _in_window(self) -> bool:
        return self.end_index is None or self.next_index < self.end_index

    def _t_in_pair(self, time: Fraction, time_a: Fraction, time_b: Fraction) -> Fraction:
        if time <= time_a + self.timestamp_step / 2:
            return Fraction(0)
        t = (time - time_a) / (time_b - time_a)
        if self.multiplier is not None:
            # Halves round up, so that ties do not alternate as with round().
            nearest = Fraction(math.floor(t * self.multiplier + Fraction(1, 2)), self.multiplier)
            if self.multiples_only or abs(t - nearest) * (time_b - time_a) <= self.timestamp_step:
                t = nearest
        return t

    def in_pair(self, time_a: Fraction, time_b: Fraction) -> List[Placement]:
        """The output frames from about ``time_a`` up to (not including) about ``time_b``."""
        if time_b <= time_a:
            raise ValueError(f"source times must increase, got {time_a} then {time_b}")
        placements = []
        while self._in_window() and self.time_of(self.next_index) < time_b - self.timestamp_step / 2:
            t = self._t_in_pair(self.time_of(self.next_index), time_a, time_b)
            placements.append(Placement(self.next_index, t))
            self.next_index += 1
        return placements

    def at_end(self, last_time: Fraction) -> List[Placement]:
        """The output frames that fall on the last source frame (t = 0: that frame)."""
        placements = []
        while self._in_window() and self.time_of(self.next_index) <= last_time + self.timestamp_step / 2:
            placements.append(Placement(self.next_index, Fraction(0)))
            self.next_index += 1
        return placements


# --------------------------------------------------------------------------- scene cuts

def scene_thumbnail(pixels: np.ndarray) -> np.ndarray:
    """Gray float32 thumbnail, SCENE_THUMBNAIL_WIDTH wide, values in [0, 1]."""
    height, width = pixels.shape[:2]
    size = (SCENE_THUMBNAIL_WIDTH, max(1, round(height * SCENE_THUMBNAIL_WIDTH / width)))
    # Area averaging first (on uint8 when possible: fast even at 4K), gray after.
    small = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(media.samples.to_float(small), cv2.COLOR_RGB2GRAY)


def scene_difference(thumbnail_a: np.ndarray, thumbnail_b: np.ndarray, max_shift: int = SCENE_MAX_SHIFT) -> float:
    """How different two frames look: 0 for the same picture, 1 for black vs white.

    The mean absolute difference of the gray thumbnails, over their overlap,
    for the best of the shifts by up to ``max_shift`` thumbnail pixels in x
    and y. Averaging 64-pixel-wide thumbnails ignores noise, compression and
    fine texture; the shift search ignores camera pans up to 1/16 of the
    width per frame. What is left grows with how much of the picture changes:
    little for motion (the edges of moving things), a lot for a new scene.
    """
    if thumbnail_a.shape != thumbnail_b.shape:
        raise ValueError(f"thumbnails differ in shape: {thumbnail_a.shape} and {thumbnail_b.shape}")
    height, width = thumbnail_a.shape
    # Keep at least half of the thumbnail overlapping.
    reach_y, reach_x = min(max_shift, height // 4), min(max_shift, width // 4)
    best = 1.0
    for dy in range(-reach_y, reach_y + 1):
        for dx in range(-reach_x, reach_x + 1):
            a = thumbnail_a[max(0, dy):height + min(0, dy), max(0, dx):width + min(0, dx)]
            b = thumbnail_b[max(0, -dy):height + min(0, -dy), max(0, -dx):width + min(0, -dx)]
            best = min(best, float(np.mean(np.abs(a - b))))
    return best


# --------------------------------------------------------------------------- held frames (animation on twos)

class DedupStats:
    """What ``drop_duplicates`` did: source frames seen and dropped."""

    def __init__(self):
        self.frames = 0
        self.dropped = 0


def duplicate_difference(pixels_a: np.ndarray, pixels_b: np.ndarray, block: int = DEDUP_BLOCK) -> float:
    """How far frame b is from repeating frame a: 0 for the same picture, 1 for black vs white.

    The largest mean absolute difference over ``block`` x ``block`` pixel
    blocks (at full resolution, the largest channel difference per pixel).
    A new drawing often changes only a small part of the picture (a mouth, a
    hand), which a mean over the whole frame would put at the level of
    compression noise; averaging within small blocks keeps such a change
    large while noise, which is spread out, stays small.
    """
    if pixels_a.shape != pixels_b.shape:
        raise ValueError(f"frames differ in shape: {pixels_a.shape} and {pixels_b.shape}")
    # On the integer samples first (exact, and ~30x faster at 720p than in
    # float), then one float channel for the block means.
    difference = cv2.absdiff(pixels_a, pixels_b)
    if difference.ndim == 3:
        channels = cv2.split(difference)
        difference = functools.reduce(cv2.max, channels[1:], channels[0])
    difference = media.samples.to_float(difference)
    height, width = difference.shape
    blocks = cv2.resize(difference, (max(1, -(-width // block)), max(1, -(-height // block))),
                        interpolation=cv2.INTER_AREA)
    return float(blocks.max())


def drop_duplicates(frames: Iterator[media.sources.SourceFrame], threshold: float = DEFAULT_DEDUP_THRESHOLD,
                    stats: Optional[DedupStats] = None) -> Iterator[media.sources.SourceFrame]:
    """``frames`` without the ones that repeat the frame before (``duplicate_difference`` <= threshold).

    For animation on twos or threes: the kept frames keep their timestamps,
    so new frames fall evenly between the distinct drawings. Whether frame i
    is dropped depends only on frames i - 1 and i as decoded (not on which
    frames were kept), so a worker that starts in the middle of a video
    decides it the same way. The first frame is always kept, and so is the
    last: dropping it would end the output one hold earlier than the source
    (and its sound); the price is a still last step.
    """
    if stats is None:
        stats = DedupStats()
    previous = None
    held = None  # a duplicate that is kept only if it turns out to be the last frame
    for frame in frames:
        stats.frames += 1
        if held is not None:
            stats.dropped += 1
            held = None
        if previous is not None and duplicate_difference(previous.pixels, frame.pixels) <= threshold:
            held = frame
        else:
            yield frame
        previous = frame
    if held is not None:
        yield held


# --------------------------------------------------------------------------- model

class HeldSourceFrame:
    """A decoded source frame with what the pairs it belongs to need from it (made when first needed)."""

    def __init__(self, frame: media.sources.SourceFrame, model_runtime: runtime.ModelRuntime,
                 sample_dtype: type = np.uint8):
        self.time = frame.time
        self.pixels = frame.pixels
        self.thumbnail = scene_thumbnail(frame.pixels)
        self._runtime = model_runtime
        self._sample_dtype = sample_dtype
        self._samples: Optional[np.ndarray] = None
        self._model_frame: Optional[runtime.ModelFrame] = None
        self.crop: Optional[runtime.CropBox] = None  # where the frame lies in the model's padded frames

    @property
    def samples(self) -> np.ndarray:
        """The frame as written (uint8 or uint16): the decoded samples themselves when they are of that type."""
        if self._samples is None:
            self._samples = media.samples.to_samples(self.pixels, self._sample_dtype)
        return self._samples

    def model_frame(self) -> runtime.ModelFrame:
        if self._model_frame is None:
            padded, self.crop = self._runtime.to_model(media.samples.to_float(self.pixels))
            self._model_frame = runtime.ModelFrame(padded)
        return self._model_frame


class PairRenderer:
    """Makes the frames at given t between two frames, with ``runtime.run_schedule``.

    ``direct``: every frame from the pair with dt = t (flows computed once per
    pair). ``recursive``: every t must be a multiple of 1/2^D; frames are made
    by halving intervals (dt = 0.5 only), each midpoint once, depth first
    (``frame_schedule.schedule_at``). Models with only ``forward`` run it
    whole for every frame made.
    """

    def __init__(self, model_runtime: runtime.ModelRuntime, mode: str = "direct", reuse: Optional[bool] = None):
        if mode not in VIDEO_MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(VIDEO_MODES)}")
        self.runtime, self.model, self.mode = model_runtime, model_runtime.model, mode
        self.reuse = model_runtime.reuse if reuse is None else reuse

    def render(self, a: runtime.ModelFrame, b: runtime.ModelFrame,
               times: Sequence[Fraction]) -> Iterator[Tuple[Fraction, torch.Tensor]]:
        """Yields (t, frame) for the distinct ``times`` (0 < t < 1), in ascending order.

        A frame is yielded as soon as every earlier one has been: in recursive
        mode a midpoint waits for the frames before it, which are made from it
        (so it is held anyway).
        """
        schedule = frame_schedule.schedule_at(self.mode, times)
        wanted = list(schedule.outputs[1:-1])  # ascending slots are ascending times
        made = {}
        for slot, frame in runtime.run_schedule(self.model, a, b, schedule, self.reuse):
            if slot in wanted:
                made[slot] = frame
            while wanted and wanted[0] in made:
                yield schedule.times[wanted[0]], made.pop(wanted.pop(0))


# --------------------------------------------------------------------------- the run

class Summary(NamedTuple):
    source_frames: int
    output_frames: int
    made: int               # frames made by the model
    passed_through: int     # source frames written unchanged (some possibly twice)
    repeated_at_cuts: int   # in-between frames that repeat a source frame at a scene cut
    scene_cuts: int
    compute_seconds: float


def interpolate_stream(frames: Iterator[media.sources.SourceFrame], clock: OutputClock, renderer: PairRenderer,
                       write, *, scene_threshold: float = DEFAULT_SCENE_THRESHOLD,
                       progress=None, minimum_frames: int = 2,
                       sample_dtype: type = np.uint8) -> Summary:
    """Write every output frame of ``clock`` with ``write(frame)``, streaming through ``frames``.

    Frames are (H, W, 3) arrays of ``sample_dtype`` (the writer's: uint8, or
    uint16 for deeper outputs); source frames of that type are passed on
    unchanged. ``progress.update(n)`` counts written frames.
    Reading stops once the clock's window is complete; ``frames`` may start
    before the window (their pairs place nothing), which is how a segment of
    a job starts from a seek point. Fewer than ``minimum_frames`` source
    frames is an error.
    """
    if not 0 <= scene_threshold:
        raise ValueError(f"scene_threshold must be >= 0, not {scene_threshold}")
    counts = dict(source=0, output=0, made=0, passed=0, repeated=0, cuts=0)
    compute_seconds = 0.0

    def emit(frame: np.ndarray, kind: str) -> None:
        write(frame)
        counts["output"] += 1
        counts[kind] += 1
        if progress is not None:
            progress.update(1)

    previous: Optional[HeldSourceFrame] = None
    for frame in frames:
        current = HeldSourceFrame(frame, renderer.runtime, sample_dtype)
        counts["source"] += 1
        if previous is None:
            previous = current
            continue
        placements = clock.in_pair(previous.time, current.time)
        # Pairs with no output frame (before a segment's window) need no cut test.
        cut = bool(placements) and scene_difference(previous.thumbnail, current.thumbnail) > scene_threshold
        counts["cuts"] += cut
        wanted = [] if cut else [p.t for p in placements if 0 < p.t < 1]
        rendered = renderer.render(previous.model_frame(), current.model_frame(), wanted) if wanted else iter(())
        made_t, made = None, None
        for placement in placements:
            t = placement.t
            if t == 0 or t == 1:
                emit(previous.samples if t == 0 else current.samples, "passed")
            elif cut:
                # No morphing across a cut: the nearer frame (the later one from the middle on).
                emit(previous.samples if t < Fraction(1, 2) else current.samples, "repeated")
            else:
                if made_t != t:  # several outputs can share a t (recursive mode, irregular input)
                    started = time.perf_counter()
                    made_t, tensor = next(rendered)
                    made = runtime.tensor_to_samples(tensor, previous.crop, sample_dtype)
                    del tensor
                    compute_seconds += time.perf_counter() - started
                emit(made, "made")
        del rendered, made
        previous = current  # the older frame and its pyramids are freed here
        if clock.exhausted:
            break
    if previous is None or (counts["source"] < 2 and minimum_frames >= 2):
        raise media.errors.MediaError("at least 2 frames are needed")
    # The source ended: frames on its last frame's time are that frame.
    for _ in clock.at_end(previous.time):
        emit(previous.samples, "passed")
    return Summary(counts["source"], counts["output"], counts["made"], counts["passed"], counts["repeated"],
                   counts["cuts"], compute_seconds)
