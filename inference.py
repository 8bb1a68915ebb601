"""Make the in-between frames of two images with a FILM model and save them.

    python inference.py MODEL IMG1 IMG2 [--save_path PATH] [--frames N] [--fps FPS]
                        [--mode {balanced,recursive,direct}] [--forward_only]
                        [--gpu] [--precision {fp32,bf16,fp16}]

Conventions used throughout this module:

- Images are NCHW float tensors (batch of 1), RGB, values in [0, 1]; frames written
  out are uint8 (H, W, 3) RGB arrays (see media_io).
- Frames are identified by their *slot* in a ``frame_schedule.Schedule``: slot 0 is
  img1, the schedule's last slot is img2.
- The network sees images padded to a multiple of 64 (``PAD_MULTIPLE``) by
  repeating edge pixels, split evenly between the two sides; every frame is
  cropped back to the input size before it is written.
- A model exposing ``encode``/``estimate_flows``/``synthesize`` (our export.py) has
  each frame's pyramids computed once and the flows of a pair computed once,
  which gives the same frames as plain ``forward`` calls; models with only
  ``forward(x0, x1, dt)`` (the original PyTorch port's files) get forward calls.
- Problems the user can fix end the program with one line on stderr and exit
  status 1 (2 for bad command-line arguments); nothing is left at the output path.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from fractions import Fraction
from typing import Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

import frame_schedule
import media_io
import tiling

log = logging.getLogger("film")

PAD_MULTIPLE = 64
DEFAULT_FRAMES = 18
DEFAULT_FPS = Fraction(10)
DEFAULT_OUTPUT_NAME = "output.mp4"


class UserError(Exception):
    """A problem with the command line or its files, explained in one line."""


class ModelLoadError(UserError):
    """The model file is missing or is not a model this program can run."""


# --------------------------------------------------------------------------- model

def choose_device(want_gpu: bool) -> torch.device:
    """CUDA, else Apple MPS, when asked for and present; otherwise the CPU."""
    if not want_gpu:
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    log.warning("--gpu: no CUDA or MPS device is available, running on the CPU")
    return torch.device("cpu")


PRECISIONS = ("fp32", "bf16", "fp16")
PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# Measured against fp32 with the Style network (random weights: the released
# ones cannot be downloaded here) on the photos at 512x384, on the CPU with
# emulated kernels (fp32 accumulation, as native ones); see README.
PRECISION_HELP = (
    "arithmetic of the convolutions. fp32 (default) matches the original TensorFlow model to "
    "~3e-6. bf16: less memory, and faster where the hardware has it (CPUs with "
    "AVX-512 BF16 or AMX, recent GPUs); error vs fp32 {bf16}. fp16: for GPUs; error vs fp32 "
    "{fp16}. (Errors as a fraction of the largest output value, measured with the Style "
    "network.) Flows and warp positions stay float32 in every precision. Asked for on "
    "hardware without native support (where it ran ~9x slower than fp32), it says so and "
    "uses fp32")
PRECISION_ERRORS = {"bf16": "max 1.0e-2, mean 1.7e-3", "fp16": "max 1.5e-3, mean 2.7e-4"}


def add_precision_arguments(parser: argparse.ArgumentParser) -> None:
    """--precision (and its old spelling --fp16), shared with inference_video.py."""
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help=PRECISION_HELP.format(**PRECISION_ERRORS))
    parser.add_argument("--fp16", dest="precision", action="store_const", const="fp16",
                        help="the same as --precision fp16")


def native_precision_support(device: torch.device, precision: str) -> bool:
    """Whether ``device`` has fast kernels for the precision's convolutions."""
    if precision == "fp32":
        return True
    if device.type == "cpu":
        # oneDNN's own test: AVX-512 BF16 / AMX (bf16), AVX-512 FP16 / AMX-FP16 (fp16).
        check = {"bf16": "_is_mkldnn_bf16_supported", "fp16": "_is_mkldnn_fp16_supported"}[precision]
        return bool(torch.backends.mkldnn.is_available() and getattr(torch.ops.mkldnn, check)())
    if device.type == "cuda" and precision == "bf16":
        return torch.cuda.is_bf16_supported()
    return True


def choose_dtype(device: torch.device, precision: str) -> torch.dtype:
    if not native_precision_support(device, precision):
        where = "this CPU" if device.type == "cpu" else f"this {device.type} device"
        log.warning(f"--precision {precision}: {where} has no native {precision} arithmetic (it would run "
                    f"several times slower than fp32): running in fp32")
        return torch.float32
    return PRECISION_DTYPES[precision]


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def load_model(path: str, device: torch.device = torch.device("cpu"),
               dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """Load a TorchScript file, or a state dict written by ``export.py --statedict``."""
    if not os.path.exists(path):
        raise ModelLoadError(f"model file not found: {path}")
    if os.path.isdir(path):
        raise ModelLoadError(f"expected a model file, found a folder: {path}")
    try:
        model = torch.jit.load(path, map_location="cpu")
    except Exception:
        model = _model_from_state_dict(path)
    # The original port exports fp16 weights by default: always convert to the
    # precision we compute in.
    return model.eval().to(device=device, dtype=dtype)


def _model_from_state_dict(path: str) -> torch.nn.Module:
    not_a_model = (f"{path} is neither a TorchScript model nor a state dict "
                   f"written by export.py --statedict")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise ModelLoadError(not_a_model) from None
    if not isinstance(state, Mapping) or not state or \
            not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise ModelLoadError(not_a_model)
    import interpolator  # only needed for state dicts; TorchScript files carry their code

    try:
        return interpolator.Interpolator.from_state_dict(state)
    except Exception as error:
        raise ModelLoadError(f"{path} holds tensors that do not fit a FILM interpolator "
                             f"({_first_line(error)})") from None


def supports_reuse(model: torch.nn.Module) -> bool:
    """Whether the model exposes the stages of ``forward`` separately."""
    return all(hasattr(model, name) for name in ("encode", "estimate_flows", "synthesize"))


def model_filters(model: torch.nn.Module) -> int:
    """The network's base width, for the memory estimate (64, the released models', if unknown)."""
    try:
        return int(model.state_dict()["feature_extractor.sub_extractor.convs.0.weight"].shape[0])
    except (KeyError, AttributeError, RuntimeError):
        return 64


def add_tiling_arguments(parser: argparse.ArgumentParser) -> None:
    """--tile and --max_memory, shared with inference_video.py."""
    parser.add_argument("--tile", type=whole_number(64, multiple_of=64), default=None, metavar="SIZE",
                        help="process frames in overlapping SIZE x SIZE tiles (a multiple of 64), blended "
                             "with a raised-cosine ramp over the overlap (min(128, SIZE/4) px) so there are "
                             "no seams; bounds memory for 4K. Default: tile only when the estimated memory "
                             "exceeds --max_memory. Tiled frames run the whole network per tile "
                             "(no feature reuse)")
    parser.add_argument("--max_memory", "--max-memory", dest="max_memory", type=_gigabytes,
                        default=None, metavar="GB",
                        help="memory budget for one frame, in GB; frames whose estimated need is larger "
                             "are tiled automatically with the largest tile that fits. Default: 60%% of "
                             "the GPU's memory with --gpu, else 60%% of the machine's RAM")


def default_memory_budget_gb(device: torch.device) -> float:
    """60% of the device's memory: room for the rest of the process and the system."""
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
    else:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return 0.6 * total / 2 ** 30


def apply_tiling(model: torch.nn.Module, height: int, width: int, tile: Optional[int],
                 max_memory_gb: Optional[float], dtype: torch.dtype,
                 device: torch.device = torch.device("cpu")) -> torch.nn.Module:
    """The model, or a tiled wrapper of it when asked for or when a frame would not fit the budget.

    ``height`` and ``width`` are the padded frame size the model will see.
    """
    if max_memory_gb is None:
        max_memory_gb = default_memory_budget_gb(device)
    if tile is None:
        dtype_bytes = torch.empty((), dtype=dtype).element_size()
        tile = tiling.choose_tile_size(height, width, int(max_memory_gb * 2 ** 30),
                                       filters=model_filters(model), dtype_bytes=dtype_bytes)
        if tile is None:
            return model
        log.info(f"a {width}x{height} frame needs more than --max_memory {max_memory_gb:.1f} GB: "
                 f"processing it in {tile} px tiles")
    if tile >= height and tile >= width:
        return model
    return tiling.TiledInterpolator(model, tile)


# --------------------------------------------------------------------------- tensors

class CropBox(NamedTuple):
    """Where the original image lies inside its padded copy."""

    top: int
    left: int
    height: int
    width: int


def image_to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """(H, W, 3) float32 array -> (1, 3, H, W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).unsqueeze(0).contiguous()


def pad_to_multiple(image: torch.Tensor, multiple: int = PAD_MULTIPLE) -> Tuple[torch.Tensor, CropBox]:
    """Pad H and W up to a multiple by repeating edge pixels, half on each side.

    Repeated edges rather than the original port's black borders: a black frame
    edge is a strong static feature that the flow estimator can latch onto, while
    repeated pixels move with the content next to them.
    """
    height, width = image.shape[-2:]
    pad_height = -height % multiple
    pad_width = -width % multiple
    top, left = pad_height // 2, pad_width // 2
    crop = CropBox(top, left, height, width)
    if pad_height == 0 and pad_width == 0:
        return image, crop
    padded = F.pad(image, (left, pad_width - left, top, pad_height - top), mode="replicate")
    return padded, crop


def tensor_to_uint8(frame: torch.Tensor, crop: CropBox) -> np.ndarray:
    """Crop a (1, 3, H, W) frame back to the input size; uint8 (H, W, 3), rounded to nearest."""
    top, left, height, width = crop
    region = frame[0, :, top:top + height, left:left + width].float()
    quantized = region.clamp(0, 1).mul(255).round().to(torch.uint8)
    return quantized.permute(1, 2, 0).cpu().numpy()


# --------------------------------------------------------------------------- interpolation

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
        reuse = supports_reuse(model)
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


def make_frames(model: torch.nn.Module, first: np.ndarray, second: np.ndarray,
                schedule: frame_schedule.Schedule, device: torch.device, dtype: torch.dtype,
                reuse: Optional[bool] = None, show_progress: bool = True) -> Dict[int, np.ndarray]:
    """The schedule's output frames {slot: uint8 (H, W, 3)} for two (H, W, 3) float images."""
    padded_first, crop = pad_to_multiple(image_to_tensor(first))
    padded_second, _ = pad_to_multiple(image_to_tensor(second))
    padded_first = padded_first.to(device=device, dtype=dtype)
    padded_second = padded_second.to(device=device, dtype=dtype)
    wanted = set(schedule.outputs)
    frames = {0: media_io.to_uint8(first), schedule.last_slot: media_io.to_uint8(second)}
    # TorchScript's optimizing executor re-profiles and recompiles during the
    # first calls (seconds each, per input size) for no measurable gain here.
    with torch.jit.optimized_execution(False), \
            tqdm(total=len(schedule.steps), desc="Interpolating", unit="frame",
                 disable=not show_progress) as progress:
        for slot, frame in run_schedule(model, padded_first, padded_second, schedule, reuse):
            if slot in wanted:
                frames[slot] = tensor_to_uint8(frame, crop)
            progress.update()
    return frames


# --------------------------------------------------------------------------- command line

class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def whole_number(minimum: int, meaning: str = "", multiple_of: int = 1):
    """An argparse type: an integer of at least ``minimum`` (and a multiple of ``multiple_of``)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum or value % multiple_of:
            condition = f"at least {minimum}" if multiple_of == 1 else f"a multiple of {multiple_of} of at least {minimum}"
            raise argparse.ArgumentTypeError(f"must be {condition}{meaning}, got {value}")
        return value
    return parse


def _gigabytes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of GB, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def frame_rate(text: str) -> Fraction:
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a number such as 60, 29.97 or 30000/1001, "
                                         f"got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


DESCRIPTION = """\
Make the in-between frames of two images with FILM (Frame Interpolation for
Large Motion) and save img1, the in-between frames and img2 as a video, an
animated GIF or a folder of PNG frames."""

EPILOG = """\
frame scheduling (--mode):
  balanced   (default) the original PyTorch port's scheme: the N frames are at
             times k/(N+1); each is made from the two nearest existing frames
             around it, the frame whose dt is nearest 0.5 first (ties: earliest).
             Any N; dt is 0.5 exactly only for some frames unless N = 2^K - 1.
  recursive  FILM's own recipe: every frame is the midpoint (dt = 0.5) of two
             frames, which is what the released models were trained for. For
             N = 2^K - 1 (1, 3, 7, 15, 31, ...) the frames are exactly at k/(N+1).
             For other N the recursion goes K levels deep for the smallest
             2^K - 1 >= N and each frame is the one at the time j/2^K nearest to
             k/(N+1): motion is then slightly uneven (by at most 1/2^(K+1)), and
             the midpoints those frames are made from are computed too.
  direct     the flows between img1 and img2 are computed once and every frame
             is made from img1 and img2 with dt = k/(N+1). Fastest, but the
             released models were trained at dt = 0.5 only, so frames away from
             the middle may look worse.
  With a model from our export.py, each frame's feature pyramid is computed
  once however often it is used (and the flows once in direct mode); files
  from the original port only have forward(), which runs the whole network
  for each frame. The frames are the same either way.

output:
  .mp4/.m4v/.mov  H.264, yuv420p (BT.709), +faststart: plays in browsers and
                  common players. .mkv: the same in Matroska. H.264 needs even
                  sizes: an odd width or height gets its last column/row
                  repeated once (101x67 -> 102x68).
  .gif            animated GIF, looping forever; frame delays are whole 1/100 s
                  chosen so that the total duration is right.
  folder          a path without extension, ending in '/' or naming an existing
                  folder: PNG frames frame_00000.png (img1) ... in forward order.
                  Numbered frames of an earlier run in that folder are replaced.
  Videos and GIFs play img1 -> img2 -> back (ending one frame before img1, so
  that looping is smooth; 2N+2 frames); --forward_only plays img1 -> img2
  (N+2 frames). Results are written to a temporary file and renamed into
  place, so a failed or interrupted run leaves nothing at the output path.

images:
  Sizes need not be multiples of 64: the network sees them padded by
  repeating edge pixels (split evenly between the sides), and frames are
  cropped back. Both images must have the same size. Alpha channels are
  dropped; 16-bit images are read at full precision, frames are written 8-bit.
  Photos are turned upright by their EXIF orientation. Inputs are never changed.

exit status: 0 on success, 1 on a problem with the files or the run, 2 on
bad arguments, 130 when interrupted."""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=os.path.basename(sys.argv[0]) if sys.argv[0] else "inference.py",
                            description=DESCRIPTION, epilog=EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_path",
                        help="TorchScript model written by export.py or by the original PyTorch port of "
                             "FILM, or a state dict written by export.py --statedict")
    parser.add_argument("img1", help="first image (time 0): any image OpenCV reads (PNG, JPEG, WebP, "
                                     "TIFF, ...), 8- or 16-bit, gray, RGB or RGBA")
    parser.add_argument("img2", help="second image (time 1), the same size as img1")
    parser.add_argument("--save_path", "--save-path", dest="save_path", metavar="SAVE_PATH",
                        help="output file or folder; the extension picks the format (see below). "
                             f"Default: {DEFAULT_OUTPUT_NAME} in img1's folder. Missing folders are created")
    parser.add_argument("--frames", type=whole_number(1), default=DEFAULT_FRAMES,
                        help=f"number of in-between frames, at least 1 (default: {DEFAULT_FRAMES})")
    parser.add_argument("--fps", type=frame_rate, default=DEFAULT_FPS,
                        help=f"frames per second of the video or GIF; fractions such as 30000/1001 are "
                             f"exact (default: {DEFAULT_FPS})")
    parser.add_argument("--mode", choices=frame_schedule.MODES, default="balanced",
                        help="how in-between frames are scheduled (see below; default: balanced)")
    parser.add_argument("--forward_only", "--forward-only", dest="forward_only", action="store_true",
                        help="video/GIF: play img1 -> img2 once instead of going there and back")
    parser.add_argument("--gpu", action="store_true",
                        help="use CUDA, or Apple MPS, when available (otherwise say so and use the CPU)")
    add_precision_arguments(parser)
    add_tiling_arguments(parser)
    return parser


class _StderrHandler(logging.Handler):
    """Notices as 'warning: ...' lines on whatever sys.stderr is at the time."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(f"{record.levelname.lower()}: {record.getMessage()}", file=sys.stderr)
        except Exception:
            self.handleError(record)


def set_up_logging() -> None:
    if not any(isinstance(handler, _StderrHandler) for handler in log.handlers):
        log.addHandler(_StderrHandler())
        log.setLevel(logging.INFO)
        log.propagate = False


def _same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _check_output_spares_inputs(save_path: str, kind: str, inputs: Sequence[str]) -> None:
    for path in inputs:
        if kind != "png" and _same_file(save_path, path):
            raise UserError(f"the output path is an input file: {save_path}")
        if kind == "png" and _same_file(os.path.dirname(os.path.abspath(path)), save_path.rstrip("/" + os.sep)) \
                and media_io._is_frame_name(os.path.basename(path)):
            raise UserError(f"the output folder would overwrite the input {path}: choose another folder")


def format_fps(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{float(fps):.3f}".rstrip("0").rstrip(".")


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    schedule = frame_schedule.make_schedule(args.mode, args.frames)
    if not os.path.exists(args.model_path):
        raise ModelLoadError(f"model file not found: {args.model_path}")

    first = media_io.load_image(args.img1)
    second = media_io.load_image(args.img2)
    height, width = first.pixels.shape[:2]
    if second.pixels.shape != first.pixels.shape:
        second_height, second_width = second.pixels.shape[:2]
        raise UserError(f"the images differ in size: {width}x{height} ({args.img1}) and "
                        f"{second_width}x{second_height} ({args.img2})")
    if first.had_alpha or second.had_alpha:
        log.warning("alpha channel dropped: frames are interpolated as opaque RGB")

    save_path = args.save_path or os.path.join(os.path.dirname(args.img1), DEFAULT_OUTPUT_NAME)
    kind = media_io.output_kind(save_path)
    _check_output_spares_inputs(save_path, kind, [args.img1, args.img2, args.model_path])
    pingpong = kind != "png" and not args.forward_only
    order = frame_schedule.sequence_order(schedule.outputs, pingpong)

    if args.mode == "recursive" and (args.frames + 1) & args.frames:
        depth = frame_schedule.recursion_depth(args.frames)
        log.info(f"--mode recursive with {args.frames} frames (not 2^K - 1): using the nearest of the "
                 f"times j/{1 << depth}, so motion is slightly uneven; "
                 f"{(1 << (depth - 1)) - 1} or {(1 << depth) - 1} frames would be even")
    device = choose_device(args.gpu)
    dtype = choose_dtype(device, args.precision)

    model = load_model(args.model_path, device, dtype)
    model = apply_tiling(model, height + (-height % PAD_MULTIPLE), width + (-width % PAD_MULTIPLE),
                         args.tile, args.max_memory, dtype, device)
    reuse = supports_reuse(model)
    if not reuse:
        log.info("the model only has forward(): each frame runs the whole network")

    with media_io.open_writer(save_path, args.fps, width, height, frame_count=len(order)) as writer:
        compute_started = time.perf_counter()
        frames = make_frames(model, first.pixels, second.pixels, schedule, device, dtype, reuse)
        compute_seconds = time.perf_counter() - compute_started
        for slot in order:
            writer.write(frames[slot])

    seconds = time.perf_counter() - started
    playback = "" if kind == "png" else \
        f" at {format_fps(args.fps)} fps ({float(len(order) / args.fps):.2f} s" \
        f"{', img1 -> img2 -> back' if pingpong else ''})"
    print(f"{args.frames} in-between frames ({args.mode} mode, {len(schedule.steps)} model runs, "
          f"{compute_seconds:.1f} s on {device.type}) for {width}x{height} images; "
          f"{len(order)} frames{playback} written as {media_io.describe_kind(kind)} to {writer.path} "
          f"in {seconds:.1f} s")
    return 0


def run_reporting_errors(run_command, args: argparse.Namespace) -> int:
    """run_command(args), with the user-facing outcome of each failure: one line, an exit status."""
    set_up_logging()
    try:
        return run_command(args)
    except (UserError, media_io.MediaError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except torch.OutOfMemoryError:
        print("error: out of memory while interpolating: try --tile, --precision bf16/fp16 on a GPU, or the CPU",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_reporting_errors(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
