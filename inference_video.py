"""Raise a video's frame rate with FILM: new frames between every two source frames.

    python inference_video.py MODEL INPUT [--save_path OUT] [--multiplier K | --fps F]
                              [--mode {direct,recursive}] [--scene_threshold X]
                              [--input_fps F] [--gpu] [--precision P]

Conventions used throughout this module:

- Times are exact ``fractions.Fraction`` seconds (see ``video_io``). Output
  frame ``n`` is at ``start + n / rate``, where ``start`` is the first source
  frame's time; it is written with pts ``n`` in time base ``1 / rate``, so the
  first source frame is at 0 in the output and the audio is shifted with it.
- Every output time lies in a *pair* of consecutive source frames (a, b), at
  ``t = (time - time_a) / (time_b - time_a)``, 0 <= t < 1. t = 0 and t = 1
  mean frame a and frame b themselves, written unchanged (passed through);
  other t are made by the model with ``dt = t``.
- Timestamps in files are rounded to ticks of their stream's time base (1 ms
  in Matroska), so an output time within half a tick of a source frame's
  time is that frame, and with ``--multiplier K`` a t within one tick (in
  time) of a multiple of 1/K is that multiple: a 29.97 fps Matroska file
  doubled gets t = 1/2 exactly, not 0.4945 or 0.5055.
- The model sees frames as ``inference`` prepares them: NCHW RGB in [0, 1],
  padded to a multiple of 64 by repeating edges, cropped back afterwards.
- Streaming: a source frame is decoded, used for the pair it ends and the
  pair it starts, and dropped; its image and feature pyramids are computed
  once, when the first pair that needs them is made, and the flows of a pair
  once for all of its t. At most two source frames (with their pyramids),
  the pair's flows and, in recursive mode, the midpoints on the current
  branch are alive at a time; frames are written as soon as they are made.
- Problems the user can fix end the program with one line on stderr and exit
  status 1 (2 for bad command-line arguments); nothing is left at the output path.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from fractions import Fraction
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from tqdm import tqdm

import inference
import media_io
import video_io
from inference import UserError

log = inference.log

MODES = ("direct", "recursive")
DEFAULT_MULTIPLIER = 2
DEFAULT_FOLDER_FPS = Fraction(30)
# Scene cuts: see scene_difference, and the --help text for the measurements
# behind the default.
DEFAULT_SCENE_THRESHOLD = 0.2
SCENE_THUMBNAIL_WIDTH = 64
SCENE_MAX_SHIFT = 4
# --fps may be this much (relative) below the source's rate, so that typing
# 29.97 for a 30000/1001 fps video is not refused.
RATE_SLACK = Fraction(1, 1000)


# --------------------------------------------------------------------------- timing

class Placement(NamedTuple):
    """Output frame ``index`` lies in the current pair at ``t`` (0: frame a, 1: frame b)."""

    index: int
    t: Fraction


class OutputClock:
    """Places output frames ``start + n / rate`` in the pairs of source frames, in order.

    ``time_resolution`` is the tick of the source's timestamps (0 if exact);
    ``lattice`` is K for ``--multiplier K``: t near a multiple of 1/K is
    snapped to it (see the module docstring). ``snap_all`` rounds every t to
    the lattice, for recursive mode, which can only make multiples of 1/K.
    """

    def __init__(self, start: Fraction, rate: Fraction, time_resolution: Fraction = Fraction(0),
                 lattice: Optional[int] = None, snap_all: bool = False):
        if rate <= 0:
            raise ValueError(f"rate must be positive, not {rate}")
        if time_resolution < 0:
            raise ValueError(f"time_resolution must be >= 0, not {time_resolution}")
        if lattice is not None and lattice < 1:
            raise ValueError(f"lattice must be a positive whole number, not {lattice}")
        if snap_all and lattice is None:
            raise ValueError("snap_all needs a lattice")
        self.start, self.rate = Fraction(start), Fraction(rate)
        self.tick = Fraction(time_resolution)
        self.lattice, self.snap_all = lattice, snap_all
        self.next_index = 0

    def time_of(self, index: int) -> Fraction:
        return self.start + index / self.rate

    def _t_in_pair(self, time: Fraction, time_a: Fraction, time_b: Fraction) -> Fraction:
        if time <= time_a + self.tick / 2:
            return Fraction(0)
        t = (time - time_a) / (time_b - time_a)
        if self.lattice is not None:
            # Halves round up, so that ties do not alternate as with round().
            nearest = Fraction(math.floor(t * self.lattice + Fraction(1, 2)), self.lattice)
            if self.snap_all or abs(t - nearest) * (time_b - time_a) <= self.tick:
                t = nearest
        return t

    def in_pair(self, time_a: Fraction, time_b: Fraction) -> List[Placement]:
        """The output frames from about ``time_a`` up to (not including) about ``time_b``."""
        if time_b <= time_a:
            raise ValueError(f"source times must increase, got {time_a} then {time_b}")
        placements = []
        while self.time_of(self.next_index) < time_b - self.tick / 2:
            t = self._t_in_pair(self.time_of(self.next_index), time_a, time_b)
            placements.append(Placement(self.next_index, t))
            self.next_index += 1
        return placements

    def at_end(self, last_time: Fraction) -> List[Placement]:
        """The output frames that fall on the last source frame (t = 0: that frame)."""
        placements = []
        while self.time_of(self.next_index) <= last_time + self.tick / 2:
            placements.append(Placement(self.next_index, Fraction(0)))
            self.next_index += 1
        return placements


def estimate_output_frames(frame_count: Optional[int], source_rate: Fraction, output_rate: Fraction) -> Optional[int]:
    """Output frames for ``frame_count`` evenly spaced source frames (exact for constant-rate input)."""
    if not frame_count:
        return None
    return math.floor((frame_count - 1) / source_rate * output_rate) + 1


# --------------------------------------------------------------------------- scene cuts

def scene_thumbnail(pixels: np.ndarray) -> np.ndarray:
    """Gray float32 thumbnail, SCENE_THUMBNAIL_WIDTH wide, values in [0, 1]."""
    height, width = pixels.shape[:2]
    size = (SCENE_THUMBNAIL_WIDTH, max(1, round(height * SCENE_THUMBNAIL_WIDTH / width)))
    # Area averaging first (on uint8 when possible: fast even at 4K), gray after.
    small = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(video_io.as_float(small), cv2.COLOR_RGB2GRAY)


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


# --------------------------------------------------------------------------- model

class ModelFrame:
    """A frame as the model sees it: a padded tensor, and its pyramids once computed."""

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor
        self._pyramids: Optional[Tuple[List[torch.Tensor], List[torch.Tensor]]] = None

    def pyramids(self, model) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        if self._pyramids is None:
            self._pyramids = model.encode(self.tensor)
        return self._pyramids


class SourceSlot:
    """A decoded source frame with what the pairs it belongs to need from it (made when first needed)."""

    def __init__(self, frame: video_io.SourceFrame, device: torch.device, dtype: torch.dtype):
        self.time = frame.time
        self.pixels = frame.pixels
        self.thumbnail = scene_thumbnail(frame.pixels)
        self._device, self._dtype = device, dtype
        self._uint8: Optional[np.ndarray] = None
        self._model_frame: Optional[ModelFrame] = None
        self.crop: Optional[inference.CropBox] = None  # where the frame lies in the model's padded frames

    @property
    def uint8(self) -> np.ndarray:
        if self._uint8 is None:
            self._uint8 = video_io.as_uint8(self.pixels)
        return self._uint8

    def model_frame(self) -> ModelFrame:
        if self._model_frame is None:
            padded, self.crop = inference.pad_to_multiple(inference.image_to_tensor(video_io.as_float(self.pixels)))
            self._model_frame = ModelFrame(padded.to(device=self._device, dtype=self._dtype))
        return self._model_frame


class PairRenderer:
    """Makes the frames at given t between two frames, reusing pyramids and flows when the model allows.

    ``direct``: every frame from the pair with dt = t (flows computed once per
    pair). ``recursive``: every t must be a multiple of 1/2^D; frames are made
    by halving intervals (dt = 0.5 only), each midpoint once, depth first.
    Models with only ``forward`` run it whole for every frame made.
    """

    def __init__(self, model: torch.nn.Module, mode: str = "direct", reuse: Optional[bool] = None):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        self.model, self.mode = model, mode
        self.reuse = inference.supports_reuse(model) if reuse is None else reuse

    @torch.no_grad()
    def _make(self, a: ModelFrame, b: ModelFrame, dt: Fraction,
              flows: Optional[Tuple[List[torch.Tensor], List[torch.Tensor]]] = None) -> torch.Tensor:
        dt_tensor = a.tensor.new_full((a.tensor.shape[0], 1), float(dt))
        if not self.reuse:
            return self.model(a.tensor, b.tensor, dt_tensor).clamp(0, 1)
        images_a, features_a = a.pyramids(self.model)
        images_b, features_b = b.pyramids(self.model)
        if flows is None:
            flows = self.model.estimate_flows(features_a, features_b)
        return self.model.synthesize(images_a, features_a, images_b, features_b,
                                     flows[0], flows[1], dt_tensor).clamp(0, 1)

    def render(self, a: ModelFrame, b: ModelFrame, times: Sequence[Fraction]) -> Iterator[Tuple[Fraction, torch.Tensor]]:
        """Yields (t, frame) for the distinct ``times`` (0 < t < 1), in ascending order."""
        times = sorted(set(times))
        if not times:
            return
        if times[0] <= 0 or times[-1] >= 1:
            raise ValueError(f"times must lie strictly between 0 and 1, got {times}")
        if self.mode == "recursive":
            yield from self._bisect(a, b, Fraction(0), Fraction(1), times)
            return
        flows = None
        if self.reuse:
            with torch.no_grad():
                flows = self.model.estimate_flows(a.pyramids(self.model)[1], b.pyramids(self.model)[1])
        for t in times:
            yield t, self._make(a, b, t, flows)

    def _bisect(self, low: ModelFrame, high: ModelFrame, low_t: Fraction, high_t: Fraction,
                times: Sequence[Fraction]) -> Iterator[Tuple[Fraction, torch.Tensor]]:
        inside = [t for t in times if low_t < t < high_t]
        if not inside:
            return
        middle_t = (low_t + high_t) / 2
        if high_t - low_t < Fraction(1, 2**20):
            raise ValueError(f"recursive mode needs times that are multiples of a power of 1/2, got {inside}")
        middle = ModelFrame(self._make(low, high, Fraction(1, 2)))
        yield from self._bisect(low, middle, low_t, middle_t, inside)
        if middle_t in inside:
            yield middle_t, middle.tensor
        yield from self._bisect(middle, high, middle_t, high_t, inside)


# --------------------------------------------------------------------------- the run

class Summary(NamedTuple):
    source_frames: int
    output_frames: int
    made: int               # frames made by the model
    passed_through: int     # source frames written unchanged (some possibly twice)
    repeated_at_cuts: int   # in-between frames that repeat a source frame at a scene cut
    scene_cuts: int
    compute_seconds: float


def interpolate_stream(frames: Iterator[video_io.SourceFrame], clock: OutputClock, renderer: PairRenderer,
                       write, *, scene_threshold: float = DEFAULT_SCENE_THRESHOLD,
                       device: torch.device = torch.device("cpu"), dtype: torch.dtype = torch.float32,
                       after_pair=None, progress=None) -> Summary:
    """Write every output frame of ``clock`` with ``write(uint8 frame)``, streaming through ``frames``.

    ``after_pair()`` is called after each pair's frames are written (to pass
    audio on); ``progress.update(n)`` counts written frames.
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

    previous: Optional[SourceSlot] = None
    for frame in frames:
        current = SourceSlot(frame, device, dtype)
        counts["source"] += 1
        if previous is None:
            previous = current
            continue
        placements = clock.in_pair(previous.time, current.time)
        cut = scene_difference(previous.thumbnail, current.thumbnail) > scene_threshold
        counts["cuts"] += cut
        wanted = [] if cut else [p.t for p in placements if 0 < p.t < 1]
        rendered = renderer.render(previous.model_frame(), current.model_frame(), wanted) if wanted else iter(())
        made_t, made = None, None
        for placement in placements:
            t = placement.t
            if t == 0 or t == 1:
                emit(previous.uint8 if t == 0 else current.uint8, "passed")
            elif cut:
                # No morphing across a cut: the nearer frame (the later one from the middle on).
                emit(previous.uint8 if t < Fraction(1, 2) else current.uint8, "repeated")
            else:
                if made_t != t:  # several outputs can share a t (recursive mode, irregular input)
                    started = time.perf_counter()
                    made_t, tensor = next(rendered)
                    made = inference.tensor_to_uint8(tensor, previous.crop)
                    del tensor
                    compute_seconds += time.perf_counter() - started
                emit(made, "made")
        del rendered, made
        if after_pair is not None:
            after_pair()
        previous = current  # the older frame and its pyramids are freed here
    if previous is None or counts["source"] < 2:
        raise media_io.MediaError("at least 2 frames are needed")
    for _ in clock.at_end(previous.time):
        emit(previous.uint8, "passed")
    return Summary(counts["source"], counts["output"], counts["made"], counts["passed"], counts["repeated"],
                   counts["cuts"], compute_seconds)


# --------------------------------------------------------------------------- command line

def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (1 turns cut detection off), got {text}")
    return value


DESCRIPTION = """\
Raise the frame rate of a video (or of a folder of frames) with FILM (Frame
Interpolation for Large Motion): new frames are made between every two
source frames; source frames are kept unchanged."""

EPILOG = f"""\
timing:
  --multiplier K  K - 1 new frames between each pair of source frames, at t =
                  1/K ... (K-1)/K; the output rate is K x the source's average
                  rate. N source frames give K(N-1)+1 frames (the last output
                  frame is the last source frame).
  --fps F         an exact output rate (60, 59.94, 60000/1001). Output frame n
                  is at first + n/F; each is made from the two source frames
                  around that time, at the matching t (24 -> 60 fps: t = 0.4,
                  0.8, 0.2, 0.6, then a source frame again). Source frames
                  that fall on an output time are passed through unchanged.
                  F may not be below the source's rate (by more than 0.1%):
                  this tool does not drop frames.
  Times come from the file's timestamps, so variable-frame-rate input
  works: outputs lie on a uniform grid at the output rate starting at the
  first frame, each made at its real position between the source frames
  around it. Times within one timestamp tick are taken as equal (Matroska
  rounds to 1 ms). With --multiplier the average rate (frames / duration,
  kept to a denominator of at most 1001) is the source rate.

frame making (--mode):
  direct     (default) each frame is made straight from its two source
             frames with dt = t; the pair's flows are computed once for all
             its frames. Works with --multiplier and --fps. Fastest, but the
             released models were trained at dt = 0.5 only, so frames far
             from the middle of a pair may look worse than in recursive mode.
  recursive  FILM's own recipe, which the released models were trained for
             (dt = 0.5 only): the midpoint of the pair, then the midpoints of
             the halves, and so on. Needs --multiplier 2, 4, 8, 16 ...; with
             variable-frame-rate input each t is rounded to the nearest
             multiple of 1/K, so motion is then slightly uneven.
  Each source frame's feature pyramid is computed once for both pairs it
  belongs to (with a model from our export.py; files that only have
  forward() run the whole network for each new frame).

scene cuts:
  Two consecutive source frames that differ by more than --scene_threshold
  are not morphed into each other: the in-between frames repeat the nearer
  source frame (the later one from the middle on). The difference is the
  mean absolute difference of the two frames as gray thumbnails {SCENE_THUMBNAIL_WIDTH} pixels
  wide (0 = same, 1 = black vs white), at the best shift of up to {SCENE_MAX_SHIFT}
  thumbnail pixels, which discounts camera pans. Measured: the two photos
  in photos/ (a child moving) 0.023; a pattern moving 3 pixels per frame
  0.01-0.03; a pan by 1/20 of the width per frame 0.00; a cut to a close-up
  of the same photo 0.28, to a different place 0.35; (the same photo upside
  down: 0.13). Default {DEFAULT_SCENE_THRESHOLD}: lower it if cuts between similar-looking
  shots get morphed, raise it (1 = off) if fast motion is taken for cuts.
  The number of cuts found is reported.

input:
  A video file (anything FFmpeg decodes) or a folder of images (PNG, JPEG,
  TIFF, ..., in natural order: frame2 before frame10; all one size; at
  --input_fps). Rotation metadata (phone videos) is applied to the pixels,
  so the output is upright without it. At least 2 frames are needed.

output:
  Default: <input name>_<rate>fps.mp4 beside the input.
  .mp4/.m4v/.mov/.mkv  H.264, yuv420p (BT.709), +faststart for MP4/MOV.
                  Audio streams are copied unchanged when the container takes
                  their codec (AAC, MP3, AC-3, E-AC-3, ALAC into MP4; nearly
                  anything into MKV), otherwise re-encoded to AAC; they are
                  shifted with the video so that the first video frame is at
                  0, and stay in sync. Sound before the first video frame is
                  dropped (but for one packet that decoders need to start).
                  Matroska cannot store negative times: when the audio starts
                  before the video (as AAC does by a packet), all streams are
                  shifted together.
  folder          a path without extension, ending in '/' or naming an existing
                  folder: PNG frames frame_00000.png ...; no audio.
  The video is decoded, interpolated and encoded as it goes, so memory does
  not grow with its length. The output is written to a temporary file and
  renamed into place at the end: a failed or interrupted (Ctrl-C) run leaves
  nothing at the output path.

exit status: 0 on success, 1 on a problem with the files or the run, 2 on
bad arguments, 130 when interrupted."""


def build_parser() -> argparse.ArgumentParser:
    parser = inference.OneLineParser(
        prog=os.path.basename(sys.argv[0]) if sys.argv[0] else "inference_video.py",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_path",
                        help="TorchScript model written by export.py or by the original PyTorch port of "
                             "FILM, or a state dict written by export.py --statedict")
    parser.add_argument("input", help="a video file, or a folder of frames (see below)")
    parser.add_argument("--save_path", "--save-path", dest="save_path", metavar="SAVE_PATH",
                        help="output file or folder; the extension picks the format (see below). "
                             "Default: <input name>_<rate>fps.mp4 beside the input")
    rate = parser.add_mutually_exclusive_group()
    rate.add_argument("--multiplier", type=inference.whole_number(2, " (K - 1 new frames between each pair)"), default=None, metavar="K",
                      help=f"K - 1 new frames between each pair, K >= 2 (default: {DEFAULT_MULTIPLIER})")
    rate.add_argument("--fps", type=inference.frame_rate, default=None, metavar="F",
                      help="exact output frame rate instead: 60, 59.94 or 60000/1001 (at least the source's)")
    parser.add_argument("--mode", choices=MODES, default="direct",
                        help="how new frames are made (see below; default: direct)")
    parser.add_argument("--scene_threshold", "--scene-threshold", dest="scene_threshold", type=_threshold,
                        default=DEFAULT_SCENE_THRESHOLD, metavar="X",
                        help=f"frame difference (0-1) above which a pair is a scene cut and is not morphed "
                             f"(default: {DEFAULT_SCENE_THRESHOLD}; 1 turns it off)")
    parser.add_argument("--input_fps", "--input-fps", dest="input_fps", type=inference.frame_rate,
                        default=None, metavar="F",
                        help=f"frame rate of a folder of frames (default: {DEFAULT_FOLDER_FPS}; "
                             f"videos carry their own)")
    parser.add_argument("--gpu", action="store_true",
                        help="use CUDA, or Apple MPS, when available (otherwise say so and use the CPU)")
    inference.add_precision_arguments(parser)
    inference.add_tiling_arguments(parser)
    return parser


def _check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.mode == "recursive":
        multiplier = args.multiplier or DEFAULT_MULTIPLIER
        if args.fps is not None or multiplier & (multiplier - 1):
            parser.error("--mode recursive makes midpoints only: it needs --multiplier 2, 4, 8, 16, ... "
                         "(use --mode direct for other multipliers and for --fps)")


def _same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def output_rate_for(args: argparse.Namespace, source: video_io.FrameSource) -> Fraction:
    if args.fps is None:
        return (args.multiplier or DEFAULT_MULTIPLIER) * source.rate
    if args.fps < source.rate * (1 - RATE_SLACK):
        raise UserError(f"--fps {inference.format_fps(args.fps)} is lower than the source's {inference.format_fps(source.rate)} fps: "
                        f"this tool does not drop frames (use at least {inference.format_fps(source.rate)})")
    return args.fps


def default_save_path(input_path: str, name: str, rate: Fraction) -> str:
    folder = os.path.dirname(os.path.abspath(input_path))
    return os.path.join(folder, f"{name}_{inference.format_fps(rate)}fps.mp4")


def _check_output(save_path: str, kind: str, input_path: str) -> None:
    if kind == "gif":
        raise UserError("GIF output is not offered for videos (it keeps every frame in memory until the end): "
                        "use .mp4, .mkv or a folder")
    if kind != "png" and _same_file(save_path, input_path):
        raise UserError(f"the output path is the input: {save_path}")
    if kind == "png" and os.path.isdir(input_path) and _same_file(save_path.rstrip("/" + os.sep), input_path):
        raise UserError(f"the output folder is the input folder {input_path}: choose another folder")


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if not os.path.exists(args.model_path):
        raise inference.ModelLoadError(f"model file not found: {args.model_path}")
    with video_io.open_source(args.input, folder_fps=args.input_fps or DEFAULT_FOLDER_FPS) as source:
        if args.input_fps is not None and not isinstance(source, video_io.FolderSource):
            log.warning("--input_fps is ignored: it is for folders of frames, a video has its own rate")
        rate = output_rate_for(args, source)
        save_path = args.save_path or default_save_path(args.input, source.name, rate)
        kind = media_io.output_kind(save_path)
        _check_output(save_path, kind, args.input)
        if kind != "video" and source.audio_streams:
            log.warning("the audio is not written to PNG frames")
            source.discard_audio()

        device = inference.choose_device(args.gpu)
        dtype = inference.choose_dtype(device, args.precision)
        model = inference.load_model(args.model_path, device, dtype)
        pad = inference.PAD_MULTIPLE
        model = inference.apply_tiling(model, source.height + (-source.height % pad),
                                       source.width + (-source.width % pad), args.tile, args.max_memory, dtype, device)
        renderer = PairRenderer(model, args.mode)
        if not renderer.reuse:
            log.info("the model only has forward(): each new frame runs the whole network")

        multiplier = None if args.fps is not None else (args.multiplier or DEFAULT_MULTIPLIER)
        clock = OutputClock(source.start_time, rate, source.time_resolution, lattice=multiplier,
                            snap_all=args.mode == "recursive")
        expected = estimate_output_frames(source.frame_count, source.rate, rate)

        # TorchScript's optimizing executor re-profiles and recompiles during
        # the first calls (seconds each) for no measurable gain here.
        with media_io.open_writer(save_path, rate, source.width, source.height, frame_count=expected) as writer, \
                torch.jit.optimized_execution(False), \
                tqdm(total=expected, desc="Interpolating", unit="frame", dynamic_ncols=True) as progress:
            audio = None
            if kind == "video" and source.audio_streams:
                audio = video_io.AudioTransfer(source.audio_streams, writer.container, offset=source.start_time)

            def pass_audio_on() -> None:
                if audio is not None:
                    audio.send_all(source.audio_packets)

            summary = interpolate_stream(source.frames(), clock, renderer, writer.write,
                                         scene_threshold=args.scene_threshold, device=device, dtype=dtype,
                                         after_pair=pass_audio_on, progress=progress)
            if audio is not None:
                audio.send_all(source.audio_packets)
                audio.finish()
            # The estimate can be off for variable-rate input: end the bar at what was written.
            progress.total = progress.n
            progress.refresh()

    seconds = time.perf_counter() - started
    audio_note = ""
    if audio is not None:
        parts = ([f"copied {', '.join(audio.copied)}"] if audio.copied else []) + \
                ([f"re-encoded to AAC {', '.join(audio.reencoded)}"] if audio.reencoded else [])
        audio_note = f"; audio {' and '.join(parts)}"
    cuts = f"{summary.scene_cuts} scene cut{'s' if summary.scene_cuts != 1 else ''}"
    if summary.repeated_at_cuts:
        cuts += f" ({summary.repeated_at_cuts} frames repeated there)"
    print(f"{summary.source_frames} source frames ({source.width}x{source.height}) -> {summary.output_frames} frames "
          f"at {inference.format_fps(rate)} fps: {summary.made} made ({args.mode} mode, {device.type}, "
          f"{summary.compute_seconds:.1f} s), {summary.passed_through} passed through; {cuts}{audio_note}; "
          f"written as {media_io.describe_kind(kind)} to {writer.path} in {seconds:.1f} s")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_arguments(parser, args)
    return inference.run_reporting_errors(run, args)


if __name__ == "__main__":
    sys.exit(main())
