"""What the command-line tools share: the parser, argument types and groups, logging, and the error path.

``inference.py``, ``inference_video.py`` and ``export.py`` build their parsers
from these pieces and run through ``run_reporting_errors``, so that they all
fail the same way: a problem the user can fix is one line on stderr
("error: ..."), exit status 1; bad arguments are one usage line, exit
status 2; Ctrl-C ends with "interrupted: nothing was written", exit status
130, and SIGTERM / SIGHUP (``kill``, ``timeout``, a closed terminal) the same
way with 143 / 129. The signals are turned into an exception that unwinds
like Ctrl-C, so every writer removes its temporary files on the way out.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from fractions import Fraction

# OpenMP threads that wait for each other spin only briefly before they
# sleep: beside another multi-threaded job, libgomp's default (300,000 spins)
# made a run 5x slower than idle, where a fair share is 2x; 10,000 spins (tens
# of microseconds) brought it to 2.2x and kept the idle speed, which sleeping
# at once (OMP_WAIT_POLICY=PASSIVE) did not (measured; README "Sharing the CPU"). libgomp reads
# this once, when torch loads it, so the command-line tools import this
# module before anything imports torch. A setting of the user's is kept.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")

import torch  # noqa: E402 (after the OpenMP setting above)
from tqdm import tqdm  # noqa: E402

import media.encoding  # noqa: E402
import media.errors  # noqa: E402
import cpu_threads  # noqa: E402
import runtime  # noqa: E402
import video_pipeline  # noqa: E402
from media.destination import same_file  # noqa: E402,F401 (for the CLIs)
from media.sources import format_fps  # noqa: E402,F401 (for the CLIs)

log = logging.getLogger("film")


def count(number: int, noun: str) -> str:
    """``1 frame``, ``2 frames``: a count with its noun in the right number."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


class UserError(Exception):
    """A problem with the command line or its files, explained in one line."""


# Errors whose message is for the user: printed as one line, without a
# traceback. ValueError and OSError are there too because a user's argument or
# file can cause them deep inside a library; FILM_DEBUG=1 shows their traceback.
USER_ERRORS = (UserError, media.errors.MediaError, runtime.SetupError, ValueError, OSError)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def make_parser(default_prog: str, description: str, epilog: str) -> OneLineParser:
    return OneLineParser(prog=os.path.basename(sys.argv[0]) if sys.argv[0] else default_prog,
                         description=description, epilog=epilog,
                         formatter_class=argparse.RawDescriptionHelpFormatter)


# --------------------------------------------------------------------------- argument types

def whole_number(minimum: int, meaning: str = "", multiple_of: int = 1):
    """An argparse type: an integer of at least ``minimum`` (and a multiple of ``multiple_of``)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum or value % multiple_of:
            condition = f"at least {minimum}" if multiple_of == 1 else \
                f"a multiple of {multiple_of} of at least {minimum}"
            raise argparse.ArgumentTypeError(f"must be {condition}{meaning}, got {value}")
        return value
    return parse


def positive_number(what: str = "a number"):
    """An argparse type: a float greater than 0."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
        return value
    return parse


gigabytes = positive_number("a number of GB")


def frame_rate(text: str) -> Fraction:
    """An argparse type: an exact frame rate from "60", "30000/1001" or a decimal.

    Decimals of two or more digits that are an NTSC rate N/1.001 rounded
    (23.976, 29.97, 47.952, 59.94, 119.88, ...: within half a unit of their
    last digit) mean that exact rate, N000/1001, as in video tools; other
    decimals are taken as written (25.5 is 51/2, 59.9 is 599/10).
    """
    try:
        value = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a number such as 60, 29.97 or 30000/1001, "
                                         f"got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return ntsc_rate(text.strip(), value) or value


def ntsc_rate(text: str, value: Fraction):
    """N000/1001 when the decimal ``text`` is that rate rounded to its digits, else None."""
    if "." not in text or "/" in text or value.denominator == 1:
        return None
    digits = len(text.partition(".")[2])
    if digits < 2:
        return None
    whole = round(value * Fraction(1001, 1000))
    exact = Fraction(1000 * whole, 1001)
    if whole >= 1 and abs(exact - value) <= Fraction(1, 2 * 10 ** digits):
        return exact
    return None


FRAME_RATE_FORMS = ("a whole number (60), a fraction (30000/1001) or a decimal; NTSC decimals "
                    "(23.976, 29.97, 47.952, 59.94, 119.88, ...) mean N000/1001 exactly")


# --------------------------------------------------------------------------- argument groups

MODEL_HELP = ("TorchScript model written by export.py or by the original PyTorch port of FILM, "
              "or a state dict (.safetensors, .pt, .pth) in our, ComfyUI's or that port's names, "
              "e.g. ComfyUI's film_net_fp16.safetensors")

PRECISION_HELP = (
    "arithmetic of the convolutions. fp32 (default): what the original TensorFlow model "
    "computes. bf16: less memory, and faster where the hardware has it (CPUs with "
    "AVX-512 BF16 or AMX, recent GPUs), at a small loss of accuracy. fp16: for GPUs, "
    "likewise. Flows and warp positions stay float32 in every precision. Asked for on "
    "hardware without native support, it says so and uses fp32. Errors and speeds: "
    "docs/exactness.md, docs/performance.md")


GPU_HELP = "use CUDA, or Apple MPS, when available (otherwise say so and use the CPU)"


def add_gpu_argument(parser: argparse.ArgumentParser, help: str = GPU_HELP) -> None:
    parser.add_argument("--gpu", action="store_true", help=help)


def add_precision_arguments(parser: argparse.ArgumentParser) -> None:
    """--precision (and its old spelling --fp16)."""
    parser.add_argument("--precision", choices=runtime.PRECISIONS, default="fp32",
                        help=PRECISION_HELP.format(**runtime.PRECISION_ERRORS))
    parser.add_argument("--fp16", dest="precision", action="store_const", const="fp16",
                        help="the same as --precision fp16")


def add_tiling_arguments(parser: argparse.ArgumentParser) -> None:
    """--tile and --max_memory."""
    parser.add_argument("--tile", type=whole_number(64, multiple_of=64), default=None, metavar="SIZE",
                        help="process frames in overlapping SIZE x SIZE tiles (a multiple of 64), blended "
                             "with a raised-cosine ramp over the overlap (min(128, SIZE/4) px) so there are "
                             "no seams; bounds memory for 4K. Default: tile only when the estimated memory "
                             "exceeds --max_memory. Tiled frames run the whole network per tile "
                             "(no feature reuse)")
    parser.add_argument("--max_memory", "--max-memory", dest="max_memory", type=gigabytes,
                        default=None, metavar="GB",
                        help="memory budget for one frame, in GB; frames whose estimated need is larger "
                             "are tiled automatically with the largest tile that fits. Default: 60%% of "
                             "the GPU's memory with --gpu, else 60%% of the machine's RAM")


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=whole_number(1), default=None, metavar="N",
                        help="CPU threads for the model (default: $OMP_NUM_THREADS if set, else the cores "
                             "that are idle when the run starts, of the "
                             f"{cpu_threads.available_cores()} this process may use here). Give fewer when other "
                             "jobs will share the CPU: threads that wait for a busy core slow every step down "
                             "(see docs/performance.md)")


def runtime_options(args: argparse.Namespace) -> runtime.RuntimeOptions:
    """What ``add_runtime_arguments``'s flags ask for, built once for the whole run."""
    return runtime.RuntimeOptions(gpu=args.gpu, precision=args.precision, tile=args.tile,
                                  max_memory_gb=args.max_memory, threads=args.threads)


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """Where and how the model runs: --gpu, --precision, --tile, --max_memory, --threads."""
    add_gpu_argument(parser)
    add_precision_arguments(parser)
    add_tiling_arguments(parser)
    add_threads_argument(parser)


# The part of both tools' --help that describes video encoding, depth and colour.
ENCODING_EPILOG = """\
video encoding (--codec, --crf, --preset; what this PyAV build has is listed
under --codec above):
  h264    (default) libx264, CRF 18, preset medium, 8-bit yuv420p: plays in
          browsers and everywhere. .mp4 .m4v .mov .mkv
  hevc    libx265, CRF 20, preset medium, yuv420p at 8, 10 or 12 bits; in
          MP4/MOV tagged hvc1 (Apple players need it). .mp4 .m4v .mov .mkv
  av1     libsvtav1, CRF 30, preset 8, yuv420p at 8 or 10 bits. .mp4 .mkv
  prores  prores_ks, --preset is the profile: proxy, lt, standard, hq
          (default), 4444, 4444xq; yuv422p10le (4444: yuv444p10le); every
          frame intra, for editors. .mov .mkv
  ffv1    lossless: stores the RGB frames themselves (bgr0, or gbrp9le to
          gbrp16le), so it decodes to exactly the frames written; version 3,
          every frame a keyframe, 16 slices with CRCs. .mkv
  A container that does not take the codec is refused, naming those that do.
  bit depth: the output keeps the source's bits per sample when the codec
          can hold them (hevc 10/12, av1 10, prores 10, ffv1 up to 16, PNG
          frames 16-bit); when it cannot, the frames are rounded to the
          codec's deepest and a warning names the codecs that would keep
          them (h264 is always 8-bit). The network works in float either way;
          8-bit sources stay 8-bit (in ProRes: 8-bit values in 10 bits).
  colour: the output is tagged with the source's primaries, transfer,
          matrix and range, and RGB is converted to YUV with that matrix and
          range, as the source was decoded with its own. Exceptions: ProRes is
          limited range (a full-range source is converted, same colours); FFV1
          stores RGB (matrix RGB, full range); matrices FFmpeg cannot convert
          to (BT.2020 CL, YCgCo, ICtCp) are replaced by BT.709 (BT.2020 NCL for
          BT.2020 primaries), with a warning. Images, and videos that do not
          say, are written as BT.709 limited range. HDR (PQ, HLG) is
          interpolated in its encoded signal, not in linear light, and stays
          tagged as HDR; mastering-display metadata is not copied."""


def _codec_settings_help() -> str:
    crf = ", ".join(f"{name} {spec.crf[0]}-{spec.crf[1]} (default {spec.crf[2]})"
                    for name, spec in media.encoding.CODECS.items() if spec.crf)
    return crf


CODEC_HELP = (
    "video codec (default: h264). h264: {h264}. hevc: {hevc}. av1: {av1}. prores: {prores}. "
    "ffv1: {ffv1}. Containers: h264/hevc .mp4 .m4v .mov .mkv; av1 .mp4 .mkv; prores .mov .mkv; "
    "ffv1 .mkv. This PyAV build can encode: {available}")
CRF_HELP = ("quality for the codecs that have a CRF: {crf}; lower is better and larger "
            "(prores and ffv1 have none)")
PRESET_HELP = ("speed against size: h264 and hevc ultrafast ... medium (default) ... veryslow, placebo; "
               "av1 0-13 (default 8; lower is slower and smaller); for prores the profile: proxy, lt, "
               "standard, hq (default), 4444, 4444xq; ffv1 has none")


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """--codec, --crf, --preset: how a video output is encoded (``media.encoding.VideoEncoding``)."""
    group = parser.add_argument_group("video encoding (see 'output' below)")
    codecs = media.encoding.CODECS
    group.add_argument("--codec", choices=list(codecs), default=None,
                       help=CODEC_HELP.format(available=media.encoding.encodings_help(),
                                              **{name: spec.purpose for name, spec in codecs.items()}))
    group.add_argument("--crf", type=whole_number(0), default=None, metavar="N",
                       help=CRF_HELP.format(crf=_codec_settings_help()))
    group.add_argument("--preset", default=None, metavar="P", help=PRESET_HELP)


def fraction_of_full_scale(upper: float, upper_included: bool, meaning: str = ""):
    """An argparse type for a frame difference in [0, ``upper``] (or [0, ``upper``)): scene, dedup thresholds."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number between 0 and {upper:g}, got {text!r}") from None
        if not (0 <= value <= upper if upper_included else 0 <= value < upper):
            bound = f"between 0 and {upper:g}" if upper_included else f"at least 0 and below {upper:g}"
            raise argparse.ArgumentTypeError(f"must be {bound}{meaning}, got {text}")
        return value
    return parse


_dedup_threshold = fraction_of_full_scale(1, upper_included=False)
# 1 keeps every pair (no difference exceeds it).
scene_threshold = fraction_of_full_scale(1, upper_included=True, meaning=" (1 turns cut detection off)")


def add_dedup_argument(parser: argparse.ArgumentParser) -> None:
    """--dedup [X]: drop source frames that repeat the one before (animation on twos); off by default."""
    default = video_pipeline.DEFAULT_DEDUP_THRESHOLD
    parser.add_argument("--dedup", type=_dedup_threshold, nargs="?", const=default, default=None, metavar="X",
                        help=f"drop source frames that repeat the frame before (difference at most X, 0-1; "
                             f"--dedup alone: {default}), for animation drawn on twos or threes, so that new "
                             f"frames fall evenly between distinct drawings; off by default (see 'held frames' "
                             f"below)")


def check_output_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse --codec/--crf/--preset values the codec does not have, or a codec this PyAV cannot encode (exit 2)."""
    codec = args.codec or media.encoding.DEFAULT_CODEC
    try:
        media.encoding.VideoEncoding(codec, args.crf, args.preset)
    except media.errors.MediaError as error:
        parser.error(f"--{'crf' if 'CRF' in str(error) else 'preset'}: {error}")
    if not media.encoding.encoder_available(codec):
        spec = media.encoding.CODECS[codec]
        parser.error(f"--codec {codec}: this PyAV build has no {spec.label} encoder ({spec.encoder}); it can "
                     f"encode {', '.join(media.encoding.available_codecs())}")


def default_extension(args: argparse.Namespace) -> str:
    """The container a default output path gets for ``--codec`` (.mp4 for H.264)."""
    return media.encoding.default_extension(args.codec)


def output_encoding(args: argparse.Namespace, kind: str, save_path: str, source_depth: int = 8,
                    colour=None) -> media.encoding.VideoEncoding:
    """The encoding for --codec/--crf/--preset and the source's depth and colour (``media.encoding.for_output``)."""
    return media.encoding.for_output(kind, args.codec, args.crf, args.preset, source_depth=source_depth,
                                     colour=colour, path=save_path)


# --------------------------------------------------------------------------- logging and errors

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


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    if isinstance(error, OSError) and error.strerror:
        text = f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return text or type(error).__name__


def _print_note(error: BaseException) -> None:
    note = getattr(error, "note", None)
    if note:
        print(f"note: {note}", file=sys.stderr)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C, so that the same clean-up runs."""

    def __init__(self, signal_number: int):
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number


_TERMINATING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _raise_terminated(signal_number: int, frame) -> None:
    # A second signal during the clean-up must not interrupt the clean-up.
    for other in _TERMINATING_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise Terminated(signal_number)


def run_reporting_errors(run_command, args: argparse.Namespace) -> int:
    """run_command(args), with the user-facing outcome of each failure: one line, an exit status."""
    set_up_logging()
    threads = torch.get_num_threads()  # the command may change it; a caller in the same process keeps its own
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        handlers = {number: signal.signal(number, _raise_terminated) for number in _TERMINATING_SIGNALS}
    try:
        return run_command(args)
    except USER_ERRORS as error:
        ours = (UserError, media.errors.MediaError, runtime.SetupError)
        if os.environ.get("FILM_DEBUG") and not isinstance(error, ours):
            raise
        print(f"error: {_one_line(error)}", file=sys.stderr)
        _print_note(error)
        return 1
    except torch.OutOfMemoryError:
        print("error: out of memory while interpolating: try --tile, --precision bf16/fp16 on a GPU, or the CPU",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt as interruption:
        # A resumable job keeps its finished work and says where (``note``).
        print(f"interrupted: {getattr(interruption, 'note', None) or 'nothing was written'}", file=sys.stderr)
        return 128 + interruption.signal_number if isinstance(interruption, Terminated) else 130
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
        torch.set_num_threads(threads)
