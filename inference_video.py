"""Raise a video's frame rate with FILM: new frames between every two source frames.

    python inference_video.py MODEL INPUT [--save_path OUT] [--multiplier K | --fps F]
                              [--mode {direct,recursive}] [--scene_threshold X]
                              [--input_fps F] [--gpu] [--precision P]

The pipeline is ``video_pipeline`` (exact output times, pairs, scene cuts);
sources, writers and audio are ``video_io``/``media_io``; the model is run by
``runtime``. This module parses the command line and wires them together.
Problems the user can fix end the program with one line on stderr and exit
status 1 (2 for bad command-line arguments); nothing is left at the output
path (``cli``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from fractions import Fraction
from typing import Optional, Sequence, Tuple

import cli  # first: it sets how OpenMP threads wait before torch loads
import torch
from tqdm import tqdm

import media_io
import runtime
import video_io
import video_jobs
import video_pipeline
from cli import UserError
from video_pipeline import DEFAULT_SCENE_THRESHOLD, MODES, SCENE_MAX_SHIFT, SCENE_THUMBNAIL_WIDTH

log = cli.log

DEFAULT_MULTIPLIER = 2
OUTPUT_KINDS = ("video", "png")
DEFAULT_FOLDER_FPS = Fraction(30)
# --fps may be this much (relative) below the source's rate, so that typing
# 29.97 for a 30000/1001 fps video is not refused.
RATE_SLACK = Fraction(1, 1000)


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

EPILOG = """\
timing:
  --multiplier K  K - 1 new frames between each pair of source frames, at t =
                  1/K ... (K-1)/K; the output rate is K x the source's average
                  rate. N source frames give K(N-1)+1 frames (the last output
                  frame is the last source frame).
  --fps F         an exact output rate (60, 60000/1001; 59.94 means
                  60000/1001, as do the other NTSC decimals). Output frame n
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
  thumbnail pixels, which discounts camera pans. Default {DEFAULT_SCENE_THRESHOLD}: lower it if
  cuts between similar-looking shots get morphed, raise it (1 = off) if
  fast motion is taken for cuts. The number of cuts found is reported.
  Differences measured on typical content: docs/video.md.

held frames (--dedup, for animation on twos or threes):
  Drawn animation often holds each drawing for 2 or 3 frames, and
  interpolating between two copies of one drawing gives stop-go motion.
  With --dedup X, a source frame that differs from the frame before by at
  most X is dropped before interpolation; the frames kept keep their
  timestamps, so the new frames fall evenly between distinct drawings (on
  twos with --multiplier 2: at 1/4, 1/2 and 3/4 of each step from one
  drawing to the next). The difference is the largest mean absolute
  difference over {DEDUP_BLOCK}x{DEDUP_BLOCK}-pixel blocks (largest channel; 0 = same, 1 = black
  vs white), so a small change (a blink) counts while noise spread over
  the frame does not. Whether a frame is dropped depends only on it and
  the frame before. The first and the last frame are always kept, so the
  output lasts as long as the source (its last step then holds still).
  Faint, low-contrast changes can fall below X and are taken for copies:
  the interpolation then carries them. Default (--dedup alone) {DEFAULT_DEDUP_THRESHOLD}. Off
  by default; needs --mode direct. How many frames were dropped is
  reported. Differences measured on cel animation: docs/video.md.

input:
  A video file (anything FFmpeg decodes) or a folder of images (PNG, JPEG,
  TIFF, ..., in natural order: frame2 before frame10; all one size; at
  --input_fps). Rotation metadata (phone videos) is applied to the pixels,
  so the output is upright without it. At least 2 frames are needed.

output:
  Default: <input name>_<rate>fps.mp4 beside the input (.mov for --codec
  prores, .mkv for ffv1).
  .mp4/.m4v/.mov/.mkv  a video in --codec (default H.264 yuv420p; see
                  below), +faststart for MP4/MOV. Audio streams are copied
                  unchanged when the container takes their codec (AAC, MP3,
                  AC-3, E-AC-3, ALAC into MP4; nearly anything into MKV),
                  otherwise re-encoded to AAC; they are
                  shifted with the video so that the first video frame is at
                  0, and stay in sync. Sound before the first video frame is
                  dropped (but for one packet that decoders need to start).
                  Matroska cannot store negative times: when the audio starts
                  before the video (as AAC does by a packet), all streams are
                  shifted together.
  folder          a path without extension, ending in '/' or naming an existing
                  folder: PNG frames frame_00000.png ...; no audio.
  The video is decoded, interpolated and encoded as it goes, so memory does
  not grow with its length. Nothing appears at the output path until the
  whole output is there. PNG frames are 16-bit for sources of more than 8
  bits.

{ENCODING_EPILOG}

long videos (segments, resuming, workers):
  The source is cut into segments of about --segment_frames source frames
  (default 10 s; a segment shares its last frame with the next one): a
  boundary moves to a scene cut up to half a segment away, found by a
  decoding pass before the first segment (saved for resuming). Each segment
  is rendered into a chunk file in the work folder (--workdir, default
  SAVE_PATH.parts) and written atomically. When every segment is done the
  chunks are joined without re-encoding (exact timestamps, one keyframe per
  chunk), the audio is added once, and the work folder is removed
  (--keep_workdir keeps it).
  The frames are those of a run in one piece with as many threads per
  process: the model's sums depend on the thread count (a 2-thread run can
  differ from a 1-thread run by one level here and there), so --workers N
  with one thread each give exactly the frames of --threads 1.
  Resuming: if a run stops (Ctrl-C, a crash, a reboot, SIGKILL), run the same
  command again: finished segments are kept and only the others are
  rendered. The work folder remembers the input, the model and every setting
  that changes the frames; a different job is refused with what differs
  (--restart discards the old work).
  Workers: --workers N renders segments in N processes on a local Ray
  instance (threads divided among them); --ray ADDRESS sends them to a
  running Ray cluster (start one with `ray start --head`). On a cluster the
  input, the model and the work folder must be on storage that every node
  sees at the same path (a shared filesystem); each worker checks that
  first. A worker that dies is restarted and its segment rendered again.

exit status: 0 on success, 1 on a problem with the files or the run, 2 on
bad arguments, 130 when interrupted (143 on SIGTERM, 129 on SIGHUP);
finished segments are kept then, and the message says where.""".format(
    SCENE_THUMBNAIL_WIDTH=SCENE_THUMBNAIL_WIDTH, SCENE_MAX_SHIFT=SCENE_MAX_SHIFT,
    DEFAULT_SCENE_THRESHOLD=DEFAULT_SCENE_THRESHOLD, DEDUP_BLOCK=video_pipeline.DEDUP_BLOCK,
    DEFAULT_DEDUP_THRESHOLD=video_pipeline.DEFAULT_DEDUP_THRESHOLD, ENCODING_EPILOG=cli.ENCODING_EPILOG)


def build_parser() -> argparse.ArgumentParser:
    parser = cli.make_parser("inference_video.py", DESCRIPTION, EPILOG)
    parser.add_argument("model_path", help=cli.MODEL_HELP)
    parser.add_argument("input", help="a video file, or a folder of frames (see below)")
    parser.add_argument("--save_path", "--save-path", dest="save_path", metavar="SAVE_PATH",
                        help="output file or folder; the extension picks the format (see below). "
                             "Default: <input name>_<rate>fps.mp4 beside the input")
    rate = parser.add_mutually_exclusive_group()
    rate.add_argument("--multiplier", type=cli.whole_number(2, " (K - 1 new frames between each pair)"), default=None, metavar="K",
                      help=f"K - 1 new frames between each pair, K >= 2 (default: {DEFAULT_MULTIPLIER})")
    rate.add_argument("--fps", type=cli.frame_rate, default=None, metavar="F",
                      help=f"exact output frame rate instead, at least the source's: {cli.FRAME_RATE_FORMS}")
    parser.add_argument("--mode", choices=MODES, default="direct",
                        help="how new frames are made (see below; default: direct)")
    parser.add_argument("--scene_threshold", "--scene-threshold", dest="scene_threshold", type=_threshold,
                        default=DEFAULT_SCENE_THRESHOLD, metavar="X",
                        help=f"frame difference (0-1) above which a pair is a scene cut and is not morphed "
                             f"(default: {DEFAULT_SCENE_THRESHOLD}; 1 turns it off)")
    parser.add_argument("--input_fps", "--input-fps", dest="input_fps", type=cli.frame_rate,
                        default=None, metavar="F",
                        help=f"frame rate of a folder of frames, in the same forms as --fps (default: "
                             f"{DEFAULT_FOLDER_FPS}; videos carry their own)")
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
        multiplier = args.multiplier or DEFAULT_MULTIPLIER
        if args.fps is not None or multiplier & (multiplier - 1):
            parser.error("--mode recursive makes midpoints only: it needs --multiplier 2, 4, 8, 16, ... "
                         "(use --mode direct for other multipliers and for --fps)")
        if args.dedup is not None:
            parser.error("--dedup needs --mode direct: after dropped frames, new frames fall at thirds "
                         "and quarters of a pair, which midpoints cannot make")
    cli.check_output_arguments(parser, args)


def output_rate_for(args: argparse.Namespace, source: video_io.FrameSource) -> Fraction:
    if args.fps is None:
        return (args.multiplier or DEFAULT_MULTIPLIER) * source.rate
    if args.fps < source.rate * (1 - RATE_SLACK):
        raise UserError(f"--fps {cli.format_fps(args.fps)} is lower than the source's {cli.format_fps(source.rate)} fps: "
                        f"this tool does not drop frames (use at least {cli.format_fps(source.rate)})")
    return args.fps


def default_save_path(input_path: str, name: str, rate: Fraction, extension: str = ".mp4") -> str:
    folder = os.path.dirname(os.path.abspath(input_path))
    return os.path.join(folder, f"{name}_{cli.format_fps(rate)}fps{extension}")


def _check_output(save_path: str, kind: str, input_path: str) -> None:
    if kind == "gif":
        extensions = ", ".join(sorted(media_io.VIDEO_FORMATS))
        raise UserError("GIF output is not offered for videos (it keeps every frame in memory until the end): "
                        f"use {extensions} or a folder")
    if kind != "png" and cli.same_file(save_path, input_path):
        raise UserError(f"the output path is the input: {save_path}")
    if kind == "png" and os.path.isdir(input_path) and cli.same_file(save_path.rstrip("/" + os.sep), input_path):
        raise UserError(f"the output folder is the input folder {input_path}: choose another folder")


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if not os.path.exists(args.model_path):
        raise runtime.ModelLoadError(f"model file not found: {args.model_path}")
    folder_fps = args.input_fps or DEFAULT_FOLDER_FPS
    with video_io.open_source(args.input, folder_fps=folder_fps) as source:
        if args.input_fps is not None and not isinstance(source, video_io.FolderSource):
            log.warning("--input_fps is ignored: it is for folders of frames, a video has its own rate")
        rate = output_rate_for(args, source)
        save_path = args.save_path or default_save_path(args.input, source.name, rate, cli.default_extension(args))
        kind = media_io.output_kind(save_path, offered=OUTPUT_KINDS)
        _check_output(save_path, kind, args.input)
        encoding = cli.output_encoding(args, kind, save_path, source.bit_depth, source.colour)
        with_audio = bool(source.audio_streams) and kind == "video"
        if source.audio_streams and not with_audio:
            log.warning("the audio is not written to PNG frames")
        source.discard_audio()  # a video output gets it from the input when the chunks are joined
        segment_frames = args.segment_frames or max(1, round(video_jobs.DEFAULT_SEGMENT_SECONDS * source.rate))
        input_path, model_path = os.path.abspath(args.input), os.path.abspath(args.model_path)
        chunk_extension = video_jobs.VIDEO_CHUNK_EXTENSION if kind == "video" else ""
        # The model (and a cluster's address) are checked before the work
        # folder is made and the source scanned, which can take minutes.
        local_model = prepare_workers(args, model_path, (source.height, source.width))
        folder = video_jobs.WorkFolder(args.workdir or default_workdir(save_path))
        folder.open(video_jobs.manifest_for(input_path, model_path, chunk_extension, segment_frames,
                                            job_settings(args, encoding)), restart=args.restart)
        try:
            scan = video_jobs.scan_for_job(
                source, folder, segment_frames=segment_frames, scene_threshold=args.scene_threshold,
                dedup=args.dedup, progress_bar=lambda total: tqdm(total=total, desc="Scanning the source",
                                                                 unit="frame", dynamic_ncols=True, leave=False))
            times = scan.times
            if len(times) < 2:
                raise media_io.MediaError(f"{args.input}: at least 2 frames are needed")
            multiplier = None if args.fps is not None else (args.multiplier or DEFAULT_MULTIPLIER)
            clock = video_pipeline.OutputClock(times[0], rate, source.time_resolution, lattice=multiplier,
                                               snap_all=args.mode == "recursive")
            job = video_jobs.JobSpec(
                input_path=input_path, folder_fps=folder_fps, model_path=model_path,
                mode=args.mode, rate=rate, lattice=multiplier, scene_threshold=args.scene_threshold,
                start=times[0], tick=source.time_resolution, width=source.width, height=source.height,
                total_frames=video_jobs.count_output_frames(times, clock), workdir=folder.path,
                chunk_extension=chunk_extension, gpu=args.gpu, precision=args.precision, tile=args.tile,
                max_memory=args.max_memory, threads=args.threads, encoding=encoding,
                kept_times=frozenset(times) if args.dedup is not None else None)
            segments = video_jobs.plan_segments(times, clock, segment_frames, scan.cuts)
            render, device = make_renderer(args, job, local_model)
        except BaseException as error:
            note = folder.close_after_failure()
            if note:
                error.note = note
            raise
    with tqdm(total=job.total_frames, desc="Interpolating", unit="frame", dynamic_ncols=True) as bar:
        result = video_jobs.run_job(job, segments, folder, save_path, render=render,
                                    source_audio=job.input_path if with_audio else None, progress_bar=bar,
                                    keep_workdir=args.keep_workdir)
        bar.total = bar.n  # a damaged file can end before the planned frames
        bar.refresh()
    for chunk in result.chunks.values():
        if chunk.warning:
            log.warning(chunk.warning)
    print_summary(args, job, segments, result, scan, device, save_path, kind, time.perf_counter() - started)
    return 0


def prepare_workers(args: argparse.Namespace, model_path: str,
                    frame_size: Tuple[int, int]) -> Optional[runtime.ModelRuntime]:
    """The model opened in this process for a one-worker run; for Ray workers (None), the model and address checked."""
    workers = args.workers or default_workers(args)
    if args.ray is None and workers == 1:
        return runtime.open_model(model_path, gpu=args.gpu, precision=args.precision, frame_size=frame_size,
                                  tile=args.tile, max_memory_gb=args.max_memory, threads=args.threads)
    if args.gpu and args.ray is None and not torch.cuda.is_available():
        # Local Ray workers would ask for GPUs Ray cannot see and never start.
        mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
        raise UserError("--gpu with --workers needs a CUDA GPU, and there is none here"
                        + (" (Ray cannot use Apple's MPS: use --gpu without --workers)" if mps else ""))
    import ray_workers
    ray_workers.import_ray()  # Ray missing: how to install it, before any work
    runtime.load_model(model_path)  # a bad model file fails here, in one line, before Ray starts
    if args.ray is not None:
        ray_workers.check_reachable(args.ray)
    return None


def make_renderer(args: argparse.Namespace, job: video_jobs.JobSpec, local_model: Optional[runtime.ModelRuntime]):
    """(render function for video_jobs.run_job, where it runs): in this process, or Ray workers."""
    if local_model is not None:
        return video_jobs.InProcessRenderer(job, local_model), local_model.device.type
    import ray_workers
    workers = args.workers or default_workers(args)
    threads = args.threads or max(1, runtime.default_threads() // workers)
    return ray_workers.RayRenderer(job, workers, address=args.ray, threads_per_worker=threads, gpu=args.gpu), \
        ("cuda" if args.gpu else "cpu") + f", {workers} Ray workers"


def default_workers(args: argparse.Namespace) -> int:
    if args.gpu and torch.cuda.is_available():
        return torch.cuda.device_count()  # one worker per visible GPU
    if args.ray is not None:
        raise UserError("--ray needs --workers N (how many workers to start on the cluster), or --gpu for one per GPU")
    return 1


def job_settings(args: argparse.Namespace, encoding) -> dict:
    """The settings that change pixels or timing, for the work folder's manifest."""
    settings = {name: getattr(args, name) for name in ("mode", "scene_threshold", "precision", "gpu", "tile",
                                                       "max_memory", "dedup")}
    settings.update(fps=str(args.fps) if args.fps is not None else None,
                    multiplier=args.multiplier or (DEFAULT_MULTIPLIER if args.fps is None else None),
                    input_fps=str(args.input_fps) if args.input_fps is not None else None,
                    encoding=repr(encoding))
    return settings


def default_workdir(save_path: str) -> str:
    return save_path.rstrip("/" + os.sep) + ".parts"


def print_summary(args, job, segments, result, scan, device, save_path, kind, seconds):
    chunks = list(result.chunks.values())
    total = lambda field: sum(getattr(chunk, field) for chunk in chunks)
    cuts = f"{total('scene_cuts')} scene cut{'s' if total('scene_cuts') != 1 else ''}"
    if total("repeated_at_cuts"):
        repeated = total("repeated_at_cuts")
        cuts += f" ({repeated} frame{'s' if repeated != 1 else ''} repeated there)"
    audio_note = f"; audio {' and '.join(result.audio_notes)}" if result.audio_notes else ""
    dropped = "" if args.dedup is None else \
        f"; {scan.dropped} of {scan.frames} source frames dropped as duplicates (--dedup {args.dedup:g})"
    resumed = f"; resumed: {result.resumed_segments} of {len(segments)} segments were done" \
        if result.resumed_segments else ""
    print(f"{scan.frames} source frames ({job.width}x{job.height}) -> {total('frames')} frames "
          f"at {cli.format_fps(job.rate)} fps: {total('made')} made ({args.mode} mode, {device}, "
          f"{total('compute_seconds'):.1f} s), {total('passed_through')} passed through; {cuts}{dropped}{audio_note}"
          f"{resumed}; written as {media_io.describe_kind(kind, job.encoding)} to {os.path.abspath(save_path.rstrip('/' + os.sep))} "
          f"in {seconds:.1f} s")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_arguments(parser, args)
    return cli.run_reporting_errors(run, args)


if __name__ == "__main__":
    sys.exit(main())
