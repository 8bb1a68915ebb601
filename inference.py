"""Make the in-between frames of two images with a FILM model and save them (the command line).

    python inference.py MODEL IMG1 IMG2 [--save_path PATH] [--frames N] [--fps FPS]
                        [--mode {balanced,recursive,direct}] [--forward_only]
                        [--gpu] [--precision {fp32,bf16,fp16}]

The pipeline is ``image_pipeline`` (frames by slot of a ``frame_schedule``),
the model is run by ``runtime``, files are read and written by ``media``;
this module parses the command line and wires them together. Problems the
user can fix end the program with one line on stderr and exit status 1 (2 for
bad command-line arguments); nothing is left at the output path (``cli``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from fractions import Fraction
from typing import Optional, Sequence

import cli  # first: it sets how OpenMP threads wait before torch loads
import frame_schedule
import image_pipeline
import media.encoding
import media.images
import media.writers
import runtime
from cli import UserError

log = cli.log

DEFAULT_FRAMES = 18
DEFAULT_FPS = Fraction(10)
DEFAULT_OUTPUT_NAME = "output.mp4"


DESCRIPTION = """\
Make the in-between frames of two images with FILM (Frame Interpolation for
Large Motion) and save img1, the in-between frames and img2 as a video, an
animated GIF or a folder of PNG frames."""

EPILOG = """\
frame scheduling (--mode):
  balanced   (default) the original PyTorch port's scheme: the N frames are at
             times k/(N+1); each is made from the two nearest existing frames
             around it, the frame whose dt is nearest 0.5 first (ties:
             earliest). Any N; dt is 0.5 exactly only for some frames unless
             N = 2^K - 1.
  recursive  FILM's own recipe: every frame is the midpoint (dt = 0.5) of two
             frames, which is what the released models were trained for. For
             N = 2^K - 1 (1, 3, 7, 15, 31, ...) the frames are exactly at
             k/(N+1).
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
  .mp4/.m4v/.mov  a video in --codec (default H.264 yuv420p, BT.709, see
                  below), +faststart: H.264 plays in browsers and common
                  players. .mkv: Matroska. Default: output.mp4 (.mov for
                  --codec prores, .mkv for ffv1). 4:2:0 needs even sizes: an
                  odd width or height gets its last column/row repeated once
                  (101x67 -> 102x68); ProRes 4:2:2 needs an even width.
  .gif            animated GIF, looping forever; frame delays are whole 1/100 s
                  chosen so that the total duration is right.
  folder          a path without extension, ending in '/' or naming an existing
                  folder: PNG frames frame_00000.png (img1) ... in forward
                  order, 16-bit when an input is 16-bit (or float).
                  Numbered frames of an earlier run in that folder are replaced.
  Videos and GIFs play img1 -> img2 -> back (ending one frame before img1, so
  that looping is smooth; 2N+2 frames); --forward_only plays img1 -> img2
  (N+2 frames). Results are written to a temporary file and renamed into
  place, so a failed or interrupted run leaves nothing at the output path.

images:
  Sizes need not be multiples of 64: the network sees them padded by
  repeating edge pixels (split evenly between the sides), and frames are
  cropped back. Both images must have the same size. Alpha channels are
  dropped; 16-bit images are read at full precision and written at it where
  the output can hold it (PNG frames, --codec ffv1; hevc 12, prores 10
  bits), otherwise rounded (H.264: 8 bits, with a warning; GIFs are 8-bit).
  Photos are turned upright by their EXIF orientation. Inputs are never changed.

{ENCODING_EPILOG}

exit status: 0 on success, 1 on a problem with the files or the run, 2 on
bad arguments, 130 when interrupted.""".replace("{ENCODING_EPILOG}", cli.ENCODING_EPILOG)


def build_parser() -> argparse.ArgumentParser:
    parser = cli.make_parser("inference.py", DESCRIPTION, EPILOG)
    parser.add_argument("model_path", help=cli.MODEL_HELP)
    parser.add_argument("img1", help="first image (time 0): any image OpenCV reads (PNG, JPEG, WebP, "
                                     "TIFF, ...), 8- or 16-bit, gray, RGB or RGBA")
    parser.add_argument("img2", help="second image (time 1), the same size as img1")
    parser.add_argument("--save_path", "--save-path", dest="save_path", metavar="SAVE_PATH",
                        help="output file or folder; the extension picks the format (see below). "
                             f"Default: {DEFAULT_OUTPUT_NAME} in img1's folder. Missing folders are created")
    parser.add_argument("--frames", type=cli.whole_number(1), default=DEFAULT_FRAMES,
                        help=f"number of in-between frames, at least 1 (default: {DEFAULT_FRAMES})")
    parser.add_argument("--fps", type=cli.frame_rate, default=DEFAULT_FPS,
                        help=f"frames per second of the video or GIF: {cli.FRAME_RATE_FORMS} "
                             f"(default: {DEFAULT_FPS})")
    parser.add_argument("--mode", choices=frame_schedule.SCHEDULE_MODES, default="balanced",
                        help="how in-between frames are scheduled (see below; default: balanced)")
    parser.add_argument("--forward_only", "--forward-only", dest="forward_only", action="store_true",
                        help="video/GIF: play img1 -> img2 once instead of going there and back")
    cli.add_output_arguments(parser)
    cli.add_runtime_arguments(parser)
    return parser


def _check_output_spares_inputs(save_path: str, kind: str, inputs: Sequence[str]) -> None:
    for path in inputs:
        if kind != "png" and cli.same_file(save_path, path):
            raise UserError(f"the output path is an input file: {save_path}")
        if kind == "png" and cli.same_file(os.path.dirname(os.path.abspath(path)), save_path.rstrip("/" + os.sep)) \
                and media.images.is_frame_name(os.path.basename(path)):
            raise UserError(f"the output folder would overwrite the input {path}: choose another folder")


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    schedule = frame_schedule.make_schedule(args.mode, args.frames)
    if not os.path.exists(args.model_path):
        raise runtime.ModelLoadError(f"model file not found: {args.model_path}")

    first = media.images.load_image(args.img1)
    second = media.images.load_image(args.img2)
    height, width = first.pixels.shape[:2]
    if second.pixels.shape != first.pixels.shape:
        second_height, second_width = second.pixels.shape[:2]
        raise UserError(f"the images differ in size: {width}x{height} ({args.img1}) and "
                        f"{second_width}x{second_height} ({args.img2})")
    if first.had_alpha or second.had_alpha:
        log.warning("alpha channel dropped: frames are interpolated as opaque RGB")

    save_path = args.save_path or os.path.join(os.path.dirname(args.img1),
                                               os.path.splitext(DEFAULT_OUTPUT_NAME)[0] + cli.default_extension(args))
    kind = media.encoding.output_kind(save_path)
    _check_output_spares_inputs(save_path, kind, [args.img1, args.img2, args.model_path])
    encoding = cli.output_encoding(args, kind, save_path, max(first.bit_depth, second.bit_depth))
    pingpong = kind != "png" and not args.forward_only
    order = frame_schedule.sequence_order(schedule.outputs, pingpong)

    if args.mode == "recursive" and (args.frames + 1) & args.frames:
        depth = frame_schedule.recursion_depth(args.frames)
        log.info(f"--mode recursive with {args.frames} frames (not 2^K - 1): using the nearest of the "
                 f"times j/{1 << depth}, so motion is slightly uneven; "
                 f"{(1 << (depth - 1)) - 1} or {(1 << depth) - 1} frames would be even")
    model_runtime = runtime.open_model(args.model_path, cli.runtime_options(args), frame_size=(height, width))

    with media.writers.open_writer(save_path, args.fps, width, height, frame_count=len(order),
                                   encoding=encoding) as writer:
        compute_started = time.perf_counter()
        frames = image_pipeline.make_frames(model_runtime, first.pixels, second.pixels, schedule,
                                            sample_dtype=writer.sample_dtype)
        compute_seconds = time.perf_counter() - compute_started
        for slot in order:
            writer.write(frames[slot])

    seconds = time.perf_counter() - started
    playback = "" if kind == "png" else \
        f" at {cli.format_fps(args.fps)} fps ({float(len(order) / args.fps):.2f} s" \
        f"{', img1 -> img2 -> back' if pingpong else ''})"
    print(f"{cli.count(args.frames, 'in-between frame')} ({args.mode} mode, "
          f"{cli.count(len(schedule.steps), 'model run')}, "
          f"{compute_seconds:.1f} s on {model_runtime.device.type}) for {width}x{height} images; "
          f"{len(order)} frames{playback} written as {media.encoding.describe_kind(kind, encoding)} to {writer.path} "
          f"in {seconds:.1f} s")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    cli.check_output_arguments(parser, args)
    return cli.run_reporting_errors(run, args)


if __name__ == "__main__":
    sys.exit(main())
