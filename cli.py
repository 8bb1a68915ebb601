"""What the command-line tools share: the parser, argument types and groups, logging, and the error path.

``inference.py``, ``inference_video.py`` and ``export.py`` build their parsers
from these pieces and run through ``run_reporting_errors``, so that they all
fail the same way: a problem the user can fix is one line on stderr
("error: ..."), exit status 1; bad arguments are one usage line, exit
status 2; Ctrl-C ends with "interrupted: nothing was written", exit status 130.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from fractions import Fraction

import torch
from tqdm import tqdm

import media_io
import runtime

log = logging.getLogger("film")


class UserError(Exception):
    """A problem with the command line or its files, explained in one line."""


# Errors whose message is for the user: printed as one line, without a traceback.
USER_ERRORS = (UserError, media_io.MediaError, runtime.ModelLoadError)


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
            condition = f"at least {minimum}" if multiple_of == 1 else f"a multiple of {multiple_of} of at least {minimum}"
            raise argparse.ArgumentTypeError(f"must be {condition}{meaning}, got {value}")
        return value
    return parse


def gigabytes(text: str) -> float:
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


def format_fps(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{float(fps):.3f}".rstrip("0").rstrip(".")


# --------------------------------------------------------------------------- argument groups

MODEL_HELP = ("TorchScript model written by export.py or by the original PyTorch port of FILM, "
              "or a state dict written by export.py --statedict")

PRECISION_HELP = (
    "arithmetic of the convolutions. fp32 (default) matches the original TensorFlow model to "
    "~3e-6. bf16: less memory, and faster where the hardware has it (CPUs with "
    "AVX-512 BF16 or AMX, recent GPUs); error vs fp32 {bf16}. fp16: for GPUs; error vs fp32 "
    "{fp16}. (Errors as a fraction of the largest output value, measured with the Style "
    "network.) Flows and warp positions stay float32 in every precision. Asked for on "
    "hardware without native support (where it ran ~9x slower than fp32), it says so and "
    "uses fp32")


def add_gpu_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gpu", action="store_true",
                        help="use CUDA, or Apple MPS, when available (otherwise say so and use the CPU)")


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


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """Where and how the model runs: --gpu, --precision, --tile, --max_memory."""
    add_gpu_argument(parser)
    add_precision_arguments(parser)
    add_tiling_arguments(parser)


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


def same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def run_reporting_errors(run_command, args: argparse.Namespace) -> int:
    """run_command(args), with the user-facing outcome of each failure: one line, an exit status."""
    set_up_logging()
    try:
        return run_command(args)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except torch.OutOfMemoryError:
        print("error: out of memory while interpolating: try --tile, --precision bf16/fp16 on a GPU, or the CPU",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
