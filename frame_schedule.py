"""Frame schedules: which two frames make each in-between frame, and with which dt.

Conventions used throughout this module:

- A schedule for N in-between frames works on frame *slots* numbered in order of
  time. Slot 0 is the first input image (t = 0) and the last slot is the second
  input image (t = 1). Every other slot is a frame the model makes.
- Times are exact ``fractions.Fraction`` values, so ties between candidates are
  decided exactly instead of by floating point noise.
- A ``Step(left, right, new, dt)`` makes slot ``new`` from the existing slots
  ``left < new < right`` with the model's ``dt = (t_new - t_left) / (t_right - t_left)``.
- Steps are listed in an order in which they can run (both inputs of a step are
  input images or were made by an earlier step). Within that constraint they run
  depth first, so that only about log2(N) frames' pyramids are needed at once.
- A schedule depends only on N and the mode, so it is computed before any model
  runs and tested without one.

The three modes:

- ``balanced`` (default; the scheme of the original PyTorch port of FILM): the
  target times are k/(N+1). Starting from the two inputs, repeatedly take, over
  every (existing interval, remaining target) pair, the one whose
  dt = (t - start)/(end - start) is nearest to 0.5 (ties: first interval, then
  first target) and make that frame from the interval's two frames.
- ``recursive`` (FILM's own recipe; the released models were trained at
  dt = 0.5 only): every frame is the midpoint (dt = 0.5) of two frames. For
  N = 2^K - 1 the frames are exactly k/(N+1). For other N, the recursion goes
  K levels deep for the smallest 2^K - 1 >= N, and each target k/(N+1) is
  replaced by the nearest time j/2^K; only those frames and the midpoints they
  are made from are computed, and only the N chosen frames are output. Their
  times are then uneven by at most 1/2^(K+1).
- ``direct``: every frame is made straight from the two inputs with
  dt = k/(N+1) (the flows between the inputs are computed once).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from fractions import Fraction
from typing import Dict, List, NamedTuple, Sequence, Tuple

SCHEDULE_MODES = ("balanced", "recursive", "direct")
HALF = Fraction(1, 2)


class Step(NamedTuple):
    """Make slot ``new`` from slots ``left`` and ``right`` at model time ``dt``."""

    left: int
    right: int
    new: int
    dt: Fraction


@dataclass(frozen=True)
class Schedule:
    """A complete plan for making the in-between frames of one image pair."""

    mode: str
    requested: int                 # N, the number of in-between frames asked for
    times: Tuple[Fraction, ...]    # time of every slot, ascending, from 0 to 1
    steps: Tuple[Step, ...]        # in running order
    outputs: Tuple[int, ...]       # slots that form the result, ascending; includes both inputs

    @property
    def last_slot(self) -> int:
        return len(self.times) - 1

    def last_use_of_slots(self) -> Dict[int, int]:
        """For every slot used as an input: the index of the last step using it."""
        last: Dict[int, int] = {}
        for index, step in enumerate(self.steps):
            last[step.left] = index
            last[step.right] = index
        return last

    def last_use_of_pairs(self) -> Dict[Tuple[int, int], int]:
        """For every (left, right) pair: the index of the last step using it."""
        return {(step.left, step.right): index for index, step in enumerate(self.steps)}


def make_schedule(mode: str, frames: int) -> Schedule:
    """The schedule for ``frames`` in-between frames in the given mode."""
    builders = {"balanced": balanced_schedule, "recursive": recursive_schedule, "direct": direct_schedule}
    if mode not in builders:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(SCHEDULE_MODES)}")
    return builders[mode](frames)


def _check_count(frames: int) -> None:
    if frames < 1:
        raise ValueError(f"the number of in-between frames must be at least 1, not {frames}")


def _uniform_times(frames: int) -> Tuple[Fraction, ...]:
    return tuple(Fraction(k, frames + 1) for k in range(frames + 2))


def _depth_first(splits: Dict[Tuple[int, int], int], times: Sequence[Fraction],
                 first: int, last: int) -> List[Step]:
    """Order the interval splits {(left, right): new} depth first, left before right."""
    steps: List[Step] = []
    pending = [(first, last)]
    while pending:
        left, right = pending.pop()
        new = splits.get((left, right))
        if new is None:
            continue
        dt = (times[new] - times[left]) / (times[right] - times[left])
        steps.append(Step(left, right, new, dt))
        # Pushed right first so that the left half is worked on next.
        pending.append((new, right))
        pending.append((left, new))
    return steps


def balanced_schedule(frames: int) -> Schedule:
    """The original PyTorch port's scheme (see the module docstring)."""
    _check_count(frames)
    last = frames + 1
    # Slots here are the target indices themselves (slot k has time k/(N+1)), so
    # an interval (a, b) of existing slots holds exactly the remaining targets
    # a+1 .. b-1, and dt for target k is (k - a)/(b - a). A target outside an
    # interval would need |dt - 0.5| > 0.5, which never beats an inside one, so
    # only each interval's targets nearest its middle compete:
    # an even-length interval has one at dt = 0.5 exactly; an odd one of length
    # L >= 3 has two at distance 1/(2L), of which the earlier wins the tie.
    existing = [0, last]
    splits: Dict[Tuple[int, int], int] = {}
    for _ in range(frames):
        best = None
        for a, b in zip(existing, existing[1:]):
            length = b - a
            if length < 2:
                continue
            distance = Fraction(0) if length % 2 == 0 else Fraction(1, 2 * length)
            if best is None or distance < best[0]:  # strict: earlier interval wins ties
                best = (distance, a, b, a + length // 2 if length % 2 == 0 else a + (length - 1) // 2)
        _, a, b, new = best
        splits[(a, b)] = new
        bisect.insort(existing, new)
    times = _uniform_times(frames)
    return Schedule("balanced", frames, times, tuple(_depth_first(splits, times, 0, last)),
                    tuple(range(last + 1)))


def recursion_depth(frames: int) -> int:
    """The smallest K with 2^K - 1 >= frames."""
    _check_count(frames)
    return (frames).bit_length()


def recursive_schedule(frames: int) -> Schedule:
    """FILM's recursive midpoints (see the module docstring for N != 2^K - 1)."""
    depth = recursion_depth(frames)
    grid = 1 << depth
    # Nearest grid point to k/(N+1), i.e. round(k * grid / (N+1)) with halves up,
    # in integers. Distinct for distinct k because grid >= N+1.
    targets = sorted({(2 * k * grid + frames + 1) // (2 * (frames + 1)) for k in range(1, frames + 1)})
    assert len(targets) == frames
    return _midpoint_schedule(targets, grid, frames)


def _midpoint_schedule(targets: Sequence[int], grid: int, requested: int) -> Schedule:
    """Midpoints (dt = 0.5) down to the ``targets``, positions 0 < p < grid on a grid of ``grid`` steps."""
    def has_target_between(a: int, b: int) -> bool:
        i = bisect.bisect_right(targets, a)
        return i < len(targets) and targets[i] < b

    # Grid positions of every frame made: the targets and the midpoints above them.
    made: Dict[Tuple[int, int], int] = {}
    pending = [(0, grid)]
    while pending:
        a, b = pending.pop()
        if b - a < 2 or not has_target_between(a, b):
            continue
        middle = (a + b) // 2
        made[(a, b)] = middle
        pending.extend([(a, middle), (middle, b)])

    positions = sorted({0, grid, *made.values()})
    slot_of = {position: slot for slot, position in enumerate(positions)}
    times = tuple(Fraction(position, grid) for position in positions)
    splits = {(slot_of[a], slot_of[b]): slot_of[m] for (a, b), m in made.items()}
    steps = _depth_first(splits, times, 0, len(positions) - 1)
    outputs = tuple(slot_of[p] for p in [0, *targets, grid])
    return Schedule("recursive", requested, times, tuple(steps), outputs)


# Deeper than this, a time is not a multiple of a power of 1/2 in practice.
MAX_MIDPOINT_DEPTH = 20


def schedule_at(mode: str, times: Sequence[Fraction]) -> Schedule:
    """The frames at the given times 0 < t < 1 between two frames (the video path's pairs).

    ``direct``: each straight from the two frames with dt = t. ``recursive``:
    midpoints only, so every t must be a multiple of 1/2^D (D <= 20); each
    midpoint is made once. Output slots hold the times in ascending order.
    """
    times = sorted(set(times))
    if times and (times[0] <= 0 or times[-1] >= 1):
        raise ValueError(f"times must lie strictly between 0 and 1, got {times}")
    if mode == "direct":
        last = len(times) + 1
        slot_times = (Fraction(0), *times, Fraction(1))
        steps = tuple(Step(0, last, k, slot_times[k]) for k in range(1, last))
        return Schedule("direct", len(times), slot_times, steps, tuple(range(last + 1)))
    if mode != "recursive":
        raise ValueError(f"unknown mode {mode!r}; choose direct or recursive")
    grid = max((t.denominator for t in times), default=1)
    if grid & (grid - 1) or grid > 1 << MAX_MIDPOINT_DEPTH:
        raise ValueError(f"recursive mode needs times that are multiples of a power of 1/2, got {times}")
    return _midpoint_schedule([int(t * grid) for t in times], grid, len(times))


def direct_schedule(frames: int) -> Schedule:
    """Every frame straight from the two inputs with dt = k/(N+1)."""
    _check_count(frames)
    last = frames + 1
    times = _uniform_times(frames)
    steps = tuple(Step(0, last, k, times[k]) for k in range(1, last))
    return Schedule("direct", frames, times, steps, tuple(range(last + 1)))


def sequence_order(outputs: Sequence[int], pingpong: bool) -> List[int]:
    """The order in which output slots are shown.

    Forward: first input, in-betweens, second input. Ping-pong: then back again
    down to the first in-between frame, so that a player looping the result goes
    img1 -> img2 -> img1 smoothly without showing either end twice in a row.
    """
    forward = list(outputs)
    if not pingpong:
        return forward
    return forward + forward[-2:0:-1]
