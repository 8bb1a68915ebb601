"""Raise a video's frame rate with FILM: new frames between every two source frames (the command line).

    python inference_video.py MODEL INPUT [--save_path OUT] [--multiplier K | --fps F]
                              [--mode {direct,recursive}] [--workers N] ...

The work is ``video_interpolation.interpolate_video`` (planning and running a
segmented, resumable job: ``video_jobs``; the streaming pipeline:
``video_pipeline``; media in and out: ``media``); this module parses the
command line into its ``VideoOptions``, calls it and prints the summary.
Problems the user can fix end the program with one line on stderr and exit
status 1 (2 for bad command-line arguments); nothing is left at the output
path (``cli``). The full manual: docs/video.md.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

import cli  # first: it sets how OpenMP threads wait before torch loads
from tqdm import tqdm

import media.encoding
import video_interpolation
import video_jobs
import video_pipeline
from cli import count
from video_pipeline import DEFAULT_SCENE_THRESHOLD, SCENE_MAX_SHIFT, SCENE_THUMBNAIL_WIDTH, VIDEO_MODES

log = cli.log


DESCRIPTION = """\
Raise the frame rate of a video (or of a folder of frames) with FILM (Frame
Interpolation for Large Motion): new frames are made between every two
source frames; source frames are kept unchanged."""

EPILOG = """\
timing:
  --multiplier K  K - 1 new frames between each pair, at t = 1/K ... (K-1)/K;
                  the output rate is K x the source's average rate.
  --fps F         an exact output rate (59.94 means 60000/1001); each output
                  frame is made at its exact time between the two source
                  frames around it. F may not be below the source's rate:
                  this tool does not drop frames.
  Times come from the file's timestamps, so variable-frame-rate input works.

frame making (--mode):
  direct     (default) each frame straight from its pair with dt = t, the
             pair's flows computed once. Works with --multiplier and --fps.
  recursive  FILM's own recipe, which the released models were trained for
             (dt = 0.5 only): midpoints of midpoints. Needs --multiplier 2,
             4, 8, ...

scene cuts: two source frames that differ by more than --scene_threshold
  ({WIDTH} px gray thumbnails, best shift of up to {SHIFT} px; default {THRESHOLD})
  are not morphed: the in-between frames repeat the nearer one.

held frames (--dedup, for animation on twos or threes): a source frame that
  differs from the one before by at most X ({DEDUP_BLOCK}x{DEDUP_BLOCK} px blocks; --dedup
  alone: {DEFAULT_DEDUP_THRESHOLD}) is dropped, so that new frames fall evenly between distinct
  drawings. The first and the last frame are always kept. Needs --mode
  direct.

input: a video file (anything FFmpeg decodes) or a folder of images in
  natural order (frame2 before frame10), all one size, at --input_fps.
  Rotation metadata is applied to the pixels.

output: default <input name>_<rate>fps.mp4 beside the input (.mov for
  --codec prores, .mkv for ffv1). .mp4/.m4v/.mov/.mkv: a video.
  Audio streams are copied unchanged when the container takes their codec,
  otherwise re-encoded to AAC, and stay in sync. A folder: PNG frames (no
  audio; 16-bit for deeper sources). Nothing appears at the output path until
  it is whole.

{ENCODING_EPILOG}

long videos: the source is rendered in segments (--segment_frames, default
  10 s, boundaries moved to scene cuts) into a work folder (--workdir,
  default SAVE_PATH.parts), then joined without re-encoding. The frames are
  those of a run in one piece with as many threads per process (the sums
  depend on the thread count: --workers N with one thread each give the
  frames of --threads 1). After Ctrl-C, a crash or SIGKILL, the same command
  resumes; a folder of another job is refused (--restart discards it).
  --workers N renders segments in N Ray processes, --ray ADDRESS on a
  running Ray cluster (shared storage).

exit status: 0 on success, 1 on a problem with the files or the run, 2 on
bad arguments, 130 when interrupted (143 on SIGTERM, 129 on SIGHUP);
finished segments are kept then, and the message says where.
Full manual: docs/video.md.""".format(
    WIDTH=SCENE_THUMBNAIL_WIDTH, SHIFT=SCENE_MAX_SHIFT, THRESHOLD=DEFAULT_SCENE_THRESHOLD,
    DEDUP_BLOCK=video_pipeline.DEDUP_BLOCK,
    DEFAULT_DEDUP_THRESHOLD=video_pipeline.DEFAULT_DEDUP_THRESHOLD, ENCODING_EPILOG=cli.ENCODING_EPILOG)


def build_parser() -> argparse.ArgumentParser:
    parser = cli.make_parser("inference_video.py", DESCRIPTION, EPILOG)
    parser.add_argument("model_path", help=cli.MODEL_HELP)
    parser.add_argument("input", help="a video file, or a folder of frames (see below)")
    parser.add_argument("--save_path", "--save-path", dest="save_path", metavar="SAVE_PATH",
                        help="output file or folder; the extension picks the format (see below). "
                             "Default: <input name>_<rate>fps.mp4 beside the input")
    rate = parser.add_mutually_exclusive_group()
    rate.add_argument("--multiplier", type=cli.whole_number(2, " (K - 1 new frames between each pair)"), default=None,
                      metavar="K", help=f"K - 1 new frames between each pair, K >= 2 "
                                        f"(default: {video_interpolation.DEFAULT_MULTIPLIER})")
    rate.add_argument("--fps", type=cli.frame_rate, default=None, metavar="F",
                      help=f"exact output frame rate instead, at least the source's: {cli.FRAME_RATE_FORMS}")
    parser.add_argument("--mode", choices=VIDEO_MODES, default="direct",
                        help="how new frames are made (see below; default: direct)")
    parser.add_argument("--scene_threshold", "--scene-threshold", dest="scene_threshold", type=cli.scene_threshold,
                        default=DEFAULT_SCENE_THRESHOLD, metavar="X",
                        help=f"frame difference (0-1) above which a pair is a scene cut and is not morphed "
                             f"(default: {DEFAULT_SCENE_THRESHOLD}; 1 turns it off)")
    parser.add_argument("--input_fps", "--input-fps", dest="input_fps", type=cli.frame_rate,
                        default=None, metavar="F",
                        help=f"frame rate of a folder of frames, in the same forms as --fps (default: "
                             f"{video_interpolation.DEFAULT_FOLDER_FPS}; videos carry their own)")
    cli.add_dedup_argument(parser)
    cli.add_output_arguments(parser)
    cli.add_runtime_arguments(parser)
    jobs = parser.add_argument_group("long videos: segments, resuming, workers (see below)")
    jobs.add_argument("--segment_frames", "--segment-frames", dest="segment_frames", type=cli.whole_number(1),
                      default=None, metavar="N",
                      help=f"source frames per segment (default: {video_jobs.DEFAULT_SEGMENT_SECONDS} s of source); "
                           "a boundary moves to a scene cut within half a segment")
    jobs.add_argument("--workdir", default=None, metavar="FOLDER",
                      help="where finished segments are kept until the output is complete "
                           "(default: SAVE_PATH.parts beside the output)")
    jobs.add_argument("--restart", action="store_true",
                      help="discard the work folder of an earlier run instead of resuming it")
    jobs.add_argument("--keep_workdir", "--keep-workdir", dest="keep_workdir", action="store_true",
                      help="keep the work folder after success")
    jobs.add_argument("--workers", type=cli.whole_number(1), default=None, metavar="N",
                      help="render segments in N worker processes (Ray; --threads is then per worker, default: "
                           "the idle cores divided among them). Default: 1, in this process; with --gpu, one per "
                           "visible GPU")
    jobs.add_argument("--ray", default=None, metavar="ADDRESS",
                      help="send the workers to a running Ray cluster (HOST:PORT, ray://HOST:PORT, or auto); "
                           "input, model and work folder must be on storage every node sees")
    return parser


def _check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.mode == "recursive":
        multiplier = args.multiplier or video_interpolation.DEFAULT_MULTIPLIER
        if args.fps is not None or multiplier & (multiplier - 1):
            parser.error("--mode recursive makes midpoints only: it needs --multiplier 2, 4, 8, 16, ... "
                         "(use --mode direct for other multipliers and for --fps)")
        if args.dedup is not None:
            parser.error("--dedup needs --mode direct: after dropped frames, new frames fall at quarters "
                         "or sixths of a pair (drawings held for 2 or 3 frames), which midpoints cannot all make")
    cli.check_output_arguments(parser, args)


def video_options(args: argparse.Namespace) -> video_interpolation.VideoOptions:
    """The library's options for the parsed command line."""
    return video_interpolation.VideoOptions(
        multiplier=args.multiplier, fps=args.fps, mode=args.mode, scene_threshold=args.scene_threshold,
        dedup=args.dedup, input_fps=args.input_fps, codec=args.codec, crf=args.crf, preset=args.preset,
        runtime=cli.runtime_options(args), segment_frames=args.segment_frames, workdir=args.workdir,
        restart=args.restart, keep_workdir=args.keep_workdir, workers=args.workers, ray_address=args.ray)


def progress_bar(total: int, description: str, transient: bool):
    return tqdm(total=total, desc=description, unit="frame", dynamic_ncols=True, leave=not transient)


def summary(result: video_interpolation.VideoResult, options: video_interpolation.VideoOptions) -> str:
    job, scan, total = result.plan.job, result.plan.scan, result.total
    cuts = count(total("scene_cuts"), "scene cut")
    if total("repeated_at_cuts"):
        cuts += f" ({count(total('repeated_at_cuts'), 'frame')} repeated there)"
    notes = [cuts]
    if options.dedup is not None:
        notes.append(f"{scan.dropped} of {count(scan.frames, 'source frame')} dropped as duplicates "
                     f"(--dedup {options.dedup:g})")
    if result.run.audio_notes:
        notes.append(f"audio {' and '.join(result.run.audio_notes)}")
    if result.audio_dropped:
        notes.append("audio not written (PNG frames hold none)")
    if result.run.resumed_segments:
        notes.append(f"resumed: {result.run.resumed_segments} of {count(len(result.plan.segments), 'segment')} "
                     f"were done")
    destination = os.path.abspath(result.save_path.rstrip("/" + os.sep))
    return (f"{count(scan.frames, 'source frame')} ({job.width}x{job.height}) -> {count(total('frames'), 'frame')} "
            f"at {cli.format_fps(job.rate)} fps: {total('made')} made ({options.mode} mode, {result.where}, "
            f"{total('compute_seconds'):.1f} s), {total('passed_through')} passed through; {'; '.join(notes)}; "
            f"written as {media.encoding.describe_kind(result.kind, job.encoding)} to {destination} "
            f"in {result.seconds:.1f} s")


def run(args: argparse.Namespace) -> int:
    options = video_options(args)
    result = video_interpolation.interpolate_video(args.input, args.model_path, args.save_path, options,
                                                   progress_bars=progress_bar)
    print(summary(result, options))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_arguments(parser, args)
    return cli.run_reporting_errors(run, args)


if __name__ == "__main__":
    sys.exit(main())
