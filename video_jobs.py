"""Segmented, resumable video jobs: a video cut into segments, each rendered into a chunk file, chunks joined.

A job raises a video's frame rate with ``video_pipeline``, in pieces that
any worker can render and that survive an interruption:

- Segments. The source's frames (their times read from the file without
  decoding, ``FrameSource.frame_times``) are cut about every
  ``segment_frames`` frames, at a scene cut when there is one nearby
  (``segment_starts``; the cuts, and the frames that --dedup keeps, come
  from one decoding pass, ``scan_source``, saved in the work folder as
  ``scan.json`` so that a resumed job does not decode the source again).
  Segment k starts at source frame a_k and ends at a_(k+1), which it shares
  with the next segment; it renders the output frames
  ``first_output <= n < end_output`` (``Segment``), i.e. those that one
  ``OutputClock`` over the whole video places in the pairs a_k ... a_(k+1)
  (the last segment: up to the end). Because a frame's placement does not
  depend on the window, the segments give exactly the frames of a one-piece
  run (with the same thread count: oneDNN's sums depend on it), wherever
  the boundaries fall. ``render_segment`` is a pure function
  of (job, segment) -> one chunk.
- Chunks. Segment k is written in the output's encoding to
  ``<workdir>/chunks/chunk_<k>.mkv`` for a video output, whatever its
  container (``VIDEO_CHUNK_EXTENSION``), or to the folder of PNG frames
  ``<workdir>/chunks/chunk_<k>``, frames numbered as in the whole job
  (video pts n in time base 1 / rate; PNG frame numbers n), each chunk
  starting with a keyframe. A chunk is written under a temporary name and
  renamed; then its summary ``chunk_<k>.json`` is written the same way. A
  segment is done when both exist, so a killed worker leaves nothing
  half-used.
- The work folder (``work_folder``) holds the manifest that identifies the
  job, the scan and the chunks; a run with the same manifest reuses the
  finished chunks.
- Joining (``media.join``). Video chunks are joined by packet copy (no
  re-encoding; exact timestamps), the source's audio is muxed once,
  interleaved by time; PNG chunks are linked (or copied) into the output
  folder. The output appears atomically; then the work folder is removed.

``InProcessRenderer`` renders in this process; ``ray_workers.RayRenderer``
spreads the same ``render_segment`` calls over worker processes or a cluster.
"""
from __future__ import annotations

import bisect
import contextlib
import dataclasses
import logging
import math
import os
import time
from fractions import Fraction
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence

import media.destination
import media.encoding
import media.images
import media.join
import media.sources
import media.writers
import runtime
import video_pipeline
from media.errors import MediaError
from work_folder import CHUNKS_FOLDER, ChunkSummary, JobError, SourceScan, WorkFolder, write_json_atomically

log = logging.getLogger("film")

DEFAULT_SEGMENT_SECONDS = 10
# Video chunks are Matroska whatever the output: it takes every codec, needs
# no index rewrite at the end (MP4's +faststart), and the join restamps the
# frames exactly (see media.join).
VIDEO_CHUNK_EXTENSION = ".mkv"


# --------------------------------------------------------------------------- the job

@dataclasses.dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs to render any segment (paths absolute, so any process can use them)."""

    input_path: str
    folder_fps: Fraction          # frame rate of a folder of frames (videos carry theirs)
    model_path: str
    mode: str                     # video_pipeline.VIDEO_MODES
    rate: Fraction                # output frame rate
    multiplier: Optional[int]     # K of --multiplier K (see OutputClock)
    scene_threshold: float
    start: Fraction               # the first source frame's time: output frame 0
    timestamp_step: Fraction      # the step of the source's timestamps (see OutputClock)
    width: int
    height: int
    total_frames: int             # output frames of the whole job
    workdir: str
    chunk_extension: str          # ".mkv" for video outputs; "" for PNG frames
    runtime_options: runtime.RuntimeOptions = runtime.RuntimeOptions()
    encoding: Optional[media.encoding.VideoEncoding] = None  # codec, depth, colour (None: the default H.264)
    # --dedup: the times of the source frames that are kept, decided once for
    # the whole job (None: every frame is used).
    kept_times: Optional[frozenset] = None

    def clock(self, first_index: int = 0, end_index: Optional[int] = None) -> video_pipeline.OutputClock:
        """The job's output clock, or its window ``first_index <= n < end_index`` for one segment."""
        return video_pipeline.OutputClock(self.start, self.rate, self.timestamp_step, multiplier=self.multiplier,
                                          multiples_only=self.mode == "recursive", first_index=first_index,
                                          end_index=end_index)

    def open_model(self) -> runtime.ModelRuntime:
        return runtime.open_model(self.model_path, self.runtime_options, frame_size=(self.height, self.width))

    def chunk_path(self, index: int) -> str:
        return os.path.join(self.workdir, CHUNKS_FOLDER, f"chunk_{index:06d}{self.chunk_extension}")

    def summary_path(self, index: int) -> str:
        return os.path.join(self.workdir, CHUNKS_FOLDER, f"chunk_{index:06d}.json")


class Segment(NamedTuple):
    index: int
    start_time: Fraction          # time of the segment's first source frame
    first_output: int
    end_output: Optional[int]     # None: up to the end of the source

    def frame_count(self, total_frames: int) -> int:
        return (total_frames if self.end_output is None else self.end_output) - self.first_output


def count_output_frames(times: Sequence[Fraction], clock: video_pipeline.OutputClock) -> int:
    """Output frames of the whole job: those up to the last source frame's time (see ``OutputClock.at_end``)."""
    return math.floor((times[-1] + clock.timestamp_step / 2 - clock.start) * clock.rate) + 1


def segment_starts(frame_count: int, segment_frames: int, cuts: Sequence[int] = ()) -> List[int]:
    """Indices of the source frames where segments start: every ``segment_frames``, moved to a scene cut nearby.

    A segment's nominal end a + ``segment_frames`` is moved to the scene cut
    (the index of the first frame of a new scene) nearest to it within half
    a segment either way, so segments stay between half and one and a half
    ``segment_frames`` long. A chunk starts with a keyframe, and a cut is
    where the encoder wants one anyway. The frames are the same wherever the
    boundaries fall (see ``plan_segments``).
    """
    if segment_frames < 1:
        raise ValueError(f"segment_frames must be at least 1, not {segment_frames}")
    last = frame_count - 1  # a segment starting at the last frame would have no pair
    cuts = sorted(cut for cut in set(cuts) if 0 < cut < last)
    starts = [0]
    while starts[-1] + segment_frames < last:
        aim = starts[-1] + segment_frames
        low, high = starts[-1] + max(1, (segment_frames + 1) // 2), aim + segment_frames // 2
        near = cuts[bisect.bisect_left(cuts, low):bisect.bisect_right(cuts, high)]
        starts.append(min(near, key=lambda cut: (abs(cut - aim), cut)) if near else aim)
    return starts


def plan_segments(times: Sequence[Fraction], clock: video_pipeline.OutputClock,
                  segment_frames: int, cuts: Sequence[int] = ()) -> List[Segment]:
    """Segments of about ``segment_frames`` source frames (``segment_starts``; see the module docstring); none is empty.

    ``cuts``: indices into ``times`` of the frames that start a new scene (``scan_source``).
    """
    if len(times) < 2:
        raise MediaError("at least 2 frames are needed")
    starts = [(0, times[0])]
    for first in segment_starts(len(times), segment_frames, cuts)[1:]:
        first_output = clock.first_index_from(times[first])
        if first_output > starts[-1][0]:  # a segment with no output frame is merged into the next
            starts.append((first_output, times[first]))
    return [Segment(k, start_time, first_output, starts[k + 1][0] if k + 1 < len(starts) else None)
            for k, (first_output, start_time) in enumerate(starts)]


def scan_source(frames: Iterator[media.sources.SourceFrame], *, scene_threshold: float,
                dedup: Optional[float] = None, progress=None) -> SourceScan:
    """Decides, once for the whole job, which frames --dedup drops and where the scene cuts are.

    The cuts are found as ``video_pipeline.interpolate_stream`` finds them
    (``scene_difference`` of consecutive used frames above
    ``scene_threshold``); they only place segment boundaries, which do not
    change any frame. ``progress``: a tqdm-like bar, updated per decoded frame.
    """
    stats = video_pipeline.DedupStats()
    source_frames = frames
    if progress is not None:
        source_frames = _counted(frames, progress)
    used = source_frames if dedup is None else video_pipeline.drop_duplicates(source_frames, dedup, stats)
    times: List[Fraction] = []
    cuts: List[int] = []
    previous = None
    for frame in used:
        thumbnail = video_pipeline.scene_thumbnail(frame.pixels) if scene_threshold < 1 else None
        if previous is not None and thumbnail is not None and \
                video_pipeline.scene_difference(previous, thumbnail) > scene_threshold:
            cuts.append(len(times))
        times.append(frame.time)
        previous = thumbnail
    return SourceScan(times, cuts, stats.frames if dedup is not None else len(times), stats.dropped)


def scan_for_job(source: media.sources.FrameSource, folder: "WorkFolder", *, segment_frames: int,
                 scene_threshold: float, dedup: Optional[float] = None, progress_bar=None) -> SourceScan:
    """The frames a job uses and its scene cuts: from an earlier run's work folder, a decoding pass, or the index.

    The pass (``scan_source``) decides --dedup once for the whole job (every
    segment must keep the same frames) and finds the scene cuts that segment
    boundaries move to; a job of one segment without --dedup needs neither
    and reads only the frames' times. The pass's result is saved in the
    (open) work folder, so that a resumed job does not decode the source
    again. ``progress_bar(total)``: a tqdm-like context manager for the pass.
    """
    scan = folder.load_scan()
    if scan is not None:
        return scan
    times = source.frame_times()
    segmented = len(times) - 1 > segment_frames and scene_threshold < 1
    if dedup is None and not segmented:
        return SourceScan(times, [], len(times), 0)
    with progress_bar(len(times)) if progress_bar else contextlib.nullcontext() as bar:
        # The pass reports no damage: the job reports it once, from its segments.
        scan = scan_source(source.frames_from(times[0]), scene_threshold=scene_threshold if segmented else 1,
                           dedup=dedup, progress=bar)
    if dedup is None:
        # The frames' times stay those of the index, as in a job of one
        # segment (a damaged file can decode fewer); the cuts are placed among them.
        cut_times = {scan.times[cut] for cut in scan.cuts}
        scan = SourceScan(times, [i for i, time in enumerate(times) if time in cut_times], len(times), 0)
    if len(scan.times) >= 2:  # else the job is refused: nothing to keep
        folder.save_scan(scan)
    return scan


def _counted(frames: Iterator[media.sources.SourceFrame], progress) -> Iterator[media.sources.SourceFrame]:
    for frame in frames:
        progress.update(1)
        yield frame


def render_segment(job: JobSpec, segment: Segment, model_runtime: runtime.ModelRuntime,
                   progress=None) -> ChunkSummary:
    """Renders one segment into its chunk and summary files (replacing any there); see the module docstring."""
    clock = job.clock(segment.first_output, segment.end_output)
    renderer = video_pipeline.PairRenderer(model_runtime, job.mode)
    # A frame on the first output's time (within half a timestamp step) is that output.
    aim = clock.time_of(segment.first_output) + job.timestamp_step / 2
    with media.sources.open_source(job.input_path, folder_fps=job.folder_fps) as source:
        if (source.width, source.height) != (job.width, job.height):
            raise JobError(f"{job.input_path} is {source.width}x{source.height} now, the job was planned for "
                           f"{job.width}x{job.height}: the input changed")
        seek_to = aim if segment.index else job.start
        if job.kept_times is not None:
            # The segment's first pair starts at the last kept frame before
            # its first output, which can be long before it (a held drawing).
            kept = sorted(job.kept_times)
            seek_to = kept[max(0, bisect.bisect_right(kept, aim) - 1)]
        frames = source.frames_from(seek_to)
        if job.kept_times is not None:
            frames = (frame for frame in frames if frame.time in job.kept_times)
        frames = _starting_at_or_before(frames, aim, job.input_path)
        with media.writers.open_writer(job.chunk_path(segment.index), job.rate, job.width, job.height,
                                       frame_count=job.total_frames, first_index=segment.first_output,
                                       encoding=job.encoding) as writer:
            summary = video_pipeline.interpolate_stream(frames, clock, renderer, writer.write,
                                                        scene_threshold=job.scene_threshold, progress=progress,
                                                        minimum_frames=1, sample_dtype=writer.sample_dtype)
            if writer.frames_written == 0:
                writer.abort()  # the source ended before this segment (a damaged file): no chunk
        warning = source.describe_damage() if not clock.exhausted else None
    chunk = ChunkSummary(summary.output_frames, summary.made, summary.passed_through, summary.repeated_at_cuts,
                         summary.scene_cuts, summary.compute_seconds, warning)
    write_json_atomically(job.summary_path(segment.index), chunk._asdict())
    return chunk


def _starting_at_or_before(frames: Iterator[media.sources.SourceFrame], aim: Fraction,
                           path: str) -> Iterator[media.sources.SourceFrame]:
    """``frames``, checked to start at or before ``aim`` (a segment's first pair must be there)."""
    first = next(frames, None)
    if first is None:
        return
    if first.time > aim:
        raise MediaError(f"cannot find the frame at {float(aim):.3f} s in {path} (the first frame found after "
                         f"seeking is at {float(first.time):.3f} s)")
    yield first
    yield from frames


# --------------------------------------------------------------------------- rendering

class Progress:
    """Counts output frames into a tqdm-like bar (``update(n)``)."""

    def __init__(self, bar):
        self.bar = bar

    def update(self, frames: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(frames)

    def start_clock(self) -> None:
        """The bar's elapsed time, rate and ETA count from now, the frames done so far (resumed) left out.

        For a renderer that starts up first (Ray workers: seconds to minutes).
        """
        if self.bar is None or not hasattr(self.bar, "reset"):
            return
        done = self.bar.n
        self.bar.reset()  # tqdm's clock and smoothed rate start again
        self.bar.n = self.bar.last_print_n = self.bar.initial = done
        self.bar.refresh()


class InProcessRenderer:
    """``render(pending, on_done, progress)`` for ``run_job``: the model loaded here, segments one by one."""

    def __init__(self, job: JobSpec, model_runtime: Optional[runtime.ModelRuntime] = None):
        self.job = job
        self.model_runtime = model_runtime or job.open_model()

    def __call__(self, pending: Sequence[Segment], on_done: Callable[[Segment, ChunkSummary], None],
                 progress=None) -> None:
        for segment in pending:
            on_done(segment, render_segment(self.job, segment, self.model_runtime, progress))


# --------------------------------------------------------------------------- a whole job

class JobResult(NamedTuple):
    chunks: Dict[int, ChunkSummary]
    resumed_segments: int
    audio_notes: List[str]
    seconds: float


def run_job(job: JobSpec, segments: Sequence[Segment], folder: WorkFolder, save_path: str, *,
            render: Callable, source_audio: Optional[str], progress_bar=None,
            keep_workdir: bool = False) -> JobResult:
    """Renders the segments that are not done with ``render(pending, on_done, progress)``, then joins.

    ``folder`` must be open (``WorkFolder.open``). ``source_audio``: the video
    whose audio goes into a video output (None: no audio). On success the
    work folder is removed (unless ``keep_workdir``). On failure or
    interruption, finished chunks are kept for the next run, and the
    exception carries a ``note`` saying so (a folder this run created and
    that holds nothing finished is removed).
    """
    started = time.perf_counter()
    chunks = folder.done(job, segments)
    resumed = len(chunks)
    try:
        if progress_bar is not None:
            progress_bar.update(sum(summary.frames for summary in chunks.values()))
        pending = [segment for segment in segments if segment.index not in chunks]

        def on_done(segment: Segment, summary: ChunkSummary) -> None:
            chunks[segment.index] = summary

        if pending:
            render(pending, on_done, Progress(progress_bar))
        missing = [segment.index for segment in segments if segment.index not in chunks]
        if missing:
            raise JobError(f"segments {missing} were not rendered")
        rendered = [segment for segment in segments if chunks[segment.index].frames]
        if not rendered:
            raise MediaError(f"no frame could be rendered from {job.input_path}")
        parts = [job.chunk_path(segment.index) for segment in rendered]
        audio_notes: List[str] = []
        if job.chunk_extension:
            audio_notes = media.join.join_video(parts, [segment.first_output for segment in rendered], job.rate,
                                                save_path, source_audio, job.start, job.encoding)
        else:
            media.join.join_png_folders(parts, save_path)
    except BaseException as error:
        note = folder.close_after_failure(len(folder.done(job, segments)), len(segments))
        if note:
            error.note = note
        raise
    if keep_workdir:
        folder.release()
    else:
        folder.remove()
    return JobResult(chunks, resumed, audio_notes, time.perf_counter() - started)
