"""A video's frame rate raised in one library call: ``interpolate_video(input, model, options)``.

``VideoOptions`` holds what a user chooses (the flags of ``inference_video.py``,
which parses its command line into them, calls ``interpolate_video`` and
prints the ``VideoResult``; the benchmark calls it the same way). The call:

1. opens the source and decides the output: its rate (``output_rate``), path,
   kind (a video or a folder of PNG frames), encoding and whether the
   source's audio goes with it;
2. checks the model (and for Ray workers, the cluster) before anything slow;
3. opens or resumes the work folder (``work_folder``), whose manifest holds
   the settings as flags (``VideoOptions.settings``);
4. plans the job once (``plan_job``: the frames a job uses and its scene cuts
   from ``video_jobs.scan_for_job``, the ``video_jobs.JobSpec`` with its output
   clock, and the segments);
5. renders the segments in this process or on Ray workers and joins the
   chunks (``video_jobs.run_job``).

Problems a user can fix raise ``video_jobs.JobError`` or another
``media.errors.MediaError`` / ``runtime.SetupError`` with a one-line message.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from fractions import Fraction
from typing import Callable, List, NamedTuple, Optional, Tuple

import torch

import media.destination
import media.encoding
import media.errors
import media.sources
import cpu_threads
import runtime
import video_jobs
import work_folder
import video_pipeline
from media.destination import same_file
from media.sources import format_fps
from video_jobs import JobSpec, Segment
from work_folder import JobError, SourceScan

log = logging.getLogger("film")

DEFAULT_MULTIPLIER = 2
DEFAULT_FOLDER_FPS = Fraction(30)
OUTPUT_KINDS = ("video", "png")
# --fps may be this much (relative) below the source's rate, so that typing
# 29.97 for a 30000/1001 fps video is not refused.
RATE_SLACK = Fraction(1, 1000)


@dataclasses.dataclass(frozen=True)
class VideoOptions:
    """What a user chooses for a video job (``inference_video.py``'s flags; None: not given)."""

    multiplier: Optional[int] = None      # K - 1 new frames per pair (default 2 when fps is None)
    fps: Optional[Fraction] = None        # an exact output rate instead
    mode: str = "direct"                  # video_pipeline.VIDEO_MODES
    scene_threshold: float = video_pipeline.DEFAULT_SCENE_THRESHOLD
    dedup: Optional[float] = None
    input_fps: Optional[Fraction] = None  # the rate of a folder of frames
    codec: Optional[str] = None
    crf: Optional[int] = None
    preset: Optional[str] = None
    runtime: runtime.RuntimeOptions = runtime.RuntimeOptions()
    segment_frames: Optional[int] = None  # default: DEFAULT_SEGMENT_SECONDS of source
    workdir: Optional[str] = None         # default: SAVE_PATH.parts
    restart: bool = False
    keep_workdir: bool = False
    workers: Optional[int] = None         # Ray workers (None: this process; with gpu, one per GPU)
    ray_address: Optional[str] = None

    @property
    def rate_multiplier(self) -> Optional[int]:
        """K, when the output rate is K times the source's (None with --fps)."""
        return None if self.fps is not None else (self.multiplier or DEFAULT_MULTIPLIER)

    def settings(self, encoding: media.encoding.VideoEncoding) -> dict:
        """The settings that change pixels or timing, as the flags that give them: the work folder's manifest."""
        flags = {"--mode": self.mode, "--scene_threshold": self.scene_threshold, "--precision": self.runtime.precision,
                 "--gpu": self.runtime.gpu, "--tile": self.runtime.tile, "--max_memory": self.runtime.max_memory_gb,
                 "--dedup": self.dedup, "--fps": str(self.fps) if self.fps is not None else None,
                 "--multiplier": self.rate_multiplier,
                 "--input_fps": str(self.input_fps) if self.input_fps is not None else None,
                 "encoding": repr(encoding)}
        return {flag: value for flag, value in flags.items() if value is not None and value is not False}


class JobPlan(NamedTuple):
    job: JobSpec
    segments: List[Segment]
    scan: SourceScan


class VideoResult(NamedTuple):
    """What a job made (totals over its chunks) and where, for the summary line."""

    save_path: str
    kind: str                     # "video" or "png"
    plan: JobPlan
    run: video_jobs.JobResult
    where: str                    # "cpu", "cuda", "cpu, 2 Ray workers", ...
    audio_dropped: bool           # the source had audio that the output (PNG frames) cannot hold
    seconds: float

    def total(self, field: str):
        return sum(getattr(chunk, field) for chunk in self.run.chunks.values())


def output_rate(options: VideoOptions, source: media.sources.FrameSource) -> Fraction:
    if options.fps is None:
        return options.rate_multiplier * source.rate
    if options.fps < source.rate * (1 - RATE_SLACK):
        raise JobError(f"--fps {format_fps(options.fps)} is lower than the source's {format_fps(source.rate)} fps: "
                       f"this tool does not drop frames (use at least {format_fps(source.rate)})")
    return options.fps


def default_save_path(input_path: str, name: str, rate: Fraction, extension: str = ".mp4") -> str:
    folder = os.path.dirname(os.path.abspath(input_path))
    return os.path.join(folder, f"{name}_{format_fps(rate)}fps{extension}")


def default_workdir(save_path: str) -> str:
    return save_path.rstrip("/" + os.sep) + ".parts"


def check_output(save_path: str, kind: str, input_path: str) -> None:
    if kind == "gif":
        extensions = ", ".join(sorted(media.encoding.VIDEO_FORMATS))
        raise JobError("GIF output is not offered for videos (it keeps every frame in memory until the end): "
                       f"use {extensions} or a folder")
    if kind != "png" and same_file(save_path, input_path):
        raise JobError(f"the output path is the input: {save_path}")
    if kind == "png" and os.path.isdir(input_path) and same_file(save_path.rstrip("/" + os.sep), input_path):
        raise JobError(f"the output folder is the input folder {input_path}: choose another folder")


def worker_count(options: VideoOptions) -> int:
    if options.workers:
        return options.workers
    if options.runtime.gpu and torch.cuda.is_available():
        return torch.cuda.device_count()  # one worker per visible GPU
    if options.ray_address is not None:
        raise JobError("--ray needs --workers N (how many workers to start on the cluster), or --gpu for one per GPU")
    return 1


def prepare_workers(options: VideoOptions, model_path: str,
                    frame_size: Tuple[int, int]) -> Optional[runtime.ModelRuntime]:
    """The model opened in this process for a one-worker run; for Ray workers (None), the model and address checked."""
    if options.ray_address is None and worker_count(options) == 1:
        return runtime.open_model(model_path, options.runtime, frame_size=frame_size)
    if options.runtime.gpu and options.ray_address is None and not torch.cuda.is_available():
        # Local Ray workers would ask for GPUs Ray cannot see and never start.
        mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
        raise JobError("--gpu with --workers needs a CUDA GPU, and there is none here"
                       + (" (Ray cannot use Apple's MPS: use --gpu without --workers)" if mps else ""))
    import ray_workers
    ray_workers.import_ray()  # Ray missing: how to install it, before any work
    runtime.load_model(model_path)  # a bad model file fails here, in one line, before Ray starts
    if options.ray_address is not None:
        ray_workers.check_reachable(options.ray_address)
    return None


def make_renderer(options: VideoOptions, job: JobSpec, local_model: Optional[runtime.ModelRuntime]):
    """(render function for video_jobs.run_job, where it runs): in this process, or Ray workers."""
    if local_model is not None:
        return video_jobs.InProcessRenderer(job, local_model), local_model.device.type
    import ray_workers
    workers = worker_count(options)
    threads = options.runtime.threads or max(1, cpu_threads.default_threads() // workers)
    renderer = ray_workers.RayRenderer(job, workers, address=options.ray_address, threads_per_worker=threads,
                                       gpu=options.runtime.gpu)
    return renderer, ("cuda" if options.runtime.gpu else "cpu") + f", {workers} Ray workers"


def plan_job(source: media.sources.FrameSource, scan: SourceScan, options: VideoOptions, *, input_path: str,
             model_path: str, rate: Fraction, folder_fps: Fraction, workdir: str, chunk_extension: str,
             encoding: media.encoding.VideoEncoding, segment_frames: int) -> JobPlan:
    """The job (its output clock built once, in ``JobSpec.clock``) and its segments, from the scan."""
    if len(scan.times) < 2:
        raise media.errors.MediaError(f"{input_path}: at least 2 frames are needed")
    job = JobSpec(input_path=input_path, folder_fps=folder_fps, model_path=model_path, mode=options.mode, rate=rate,
                  multiplier=options.rate_multiplier, scene_threshold=options.scene_threshold,
                  start=scan.times[0], timestamp_step=source.timestamp_step, width=source.width,
                  height=source.height, total_frames=0, workdir=workdir, chunk_extension=chunk_extension,
                  runtime_options=options.runtime, encoding=encoding,
                  kept_times=frozenset(scan.times) if options.dedup is not None else None)
    clock = job.clock()
    job = dataclasses.replace(job, total_frames=video_jobs.count_output_frames(scan.times, clock))
    return JobPlan(job, video_jobs.plan_segments(scan.times, clock, segment_frames, scan.cuts), scan)


ProgressBars = Callable[[int, str, bool], object]  # (total, description, transient) -> a tqdm-like context manager


def interpolate_video(input_path: str, model_path: str, save_path: Optional[str] = None,
                      options: VideoOptions = VideoOptions(), *,
                      progress_bars: Optional[ProgressBars] = None) -> VideoResult:
    """Raise ``input_path``'s frame rate with ``model_path`` into ``save_path`` (None: beside the input).

    ``progress_bars(total, description, transient)``: tqdm-like bars for the
    scan and the rendering (None: none). Interrupted or failed jobs keep their
    finished segments; the exception's ``note`` says where.
    """
    started = time.perf_counter()
    if not os.path.exists(model_path):
        raise runtime.ModelLoadError(f"model file not found: {model_path}")
    folder_fps = options.input_fps or DEFAULT_FOLDER_FPS
    with media.sources.open_source(input_path, folder_fps=folder_fps) as source:
        if options.input_fps is not None and not isinstance(source, media.sources.FolderSource):
            log.warning("--input_fps is ignored: it is for folders of frames, a video has its own rate")
        rate = output_rate(options, source)
        save_path = save_path or default_save_path(input_path, source.name, rate,
                                                   media.encoding.default_extension(options.codec))
        kind = media.encoding.output_kind(save_path, offered=OUTPUT_KINDS)
        check_output(save_path, kind, input_path)
        encoding = media.encoding.for_output(kind, options.codec, options.crf, options.preset,
                                             source_depth=source.bit_depth, colour=source.colour, path=save_path)
        with_audio = bool(source.audio_streams) and kind == "video"
        if source.audio_streams and not with_audio:
            log.warning("the audio is not written to PNG frames")
        segment_frames = options.segment_frames or max(1, round(video_jobs.DEFAULT_SEGMENT_SECONDS * source.rate))
        input_path, model_path = os.path.abspath(input_path), os.path.abspath(model_path)
        chunk_extension = video_jobs.VIDEO_CHUNK_EXTENSION if kind == "video" else ""
        # Whether the output can be written, said of the path the user gave
        # (the work folder beside it would fail first, under its own name).
        media.destination.Destination(save_path, is_folder=kind == "png").discard()
        # The model (and a cluster's address) are checked before the work
        # folder is made and the source scanned, which can take minutes.
        local_model = prepare_workers(options, model_path, (source.height, source.width))
        folder = work_folder.WorkFolder(options.workdir or default_workdir(save_path))
        folder.open(work_folder.manifest_for(input_path, model_path, chunk_extension, segment_frames,
                                            options.settings(encoding)), restart=options.restart)
        try:
            scan_bar = None if progress_bars is None else \
                (lambda total: progress_bars(total, "Scanning the source", True))
            scan = video_jobs.scan_for_job(source, folder, segment_frames=segment_frames,
                                           scene_threshold=options.scene_threshold, dedup=options.dedup,
                                           progress_bar=scan_bar)
            plan = plan_job(source, scan, options, input_path=input_path, model_path=model_path, rate=rate,
                            folder_fps=folder_fps, workdir=folder.path, chunk_extension=chunk_extension,
                            encoding=encoding, segment_frames=segment_frames)
            render, where = make_renderer(options, plan.job, local_model)
        except BaseException as error:
            note = folder.close_after_failure()
            if note:
                error.note = note
            raise
    bar = progress_bars(plan.job.total_frames, "Interpolating", False) if progress_bars else None
    with bar if bar is not None else contextlib.nullcontext() as progress:
        result = video_jobs.run_job(plan.job, plan.segments, folder, save_path, render=render,
                                    source_audio=plan.job.input_path if with_audio else None, progress_bar=progress,
                                    keep_workdir=options.keep_workdir)
        if progress is not None:
            progress.total = progress.n  # a damaged file can end before the planned frames
            progress.refresh()
    for chunk in result.chunks.values():
        if chunk.warning:
            log.warning(chunk.warning)
    return VideoResult(save_path, kind, plan, result, where, bool(source.audio_streams) and not with_audio,
                       time.perf_counter() - started)
