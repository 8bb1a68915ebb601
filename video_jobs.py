"""Segmented, resumable video jobs: a video cut into segments, each rendered into a chunk file, chunks joined.

A job raises a video's frame rate as ``video_pipeline`` does in one pass, but
in pieces that any worker can render and that survive an interruption:

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
  run, wherever the boundaries fall. ``render_segment`` is a pure function
  of (job, segment) -> one chunk.
- Chunks. Segment k is written to ``<workdir>/chunks/chunk_<k>.<ext>`` in
  the output's format, frames numbered as in the whole job (video pts n in
  time base 1 / rate; PNG frame numbers n), each chunk starting with a
  keyframe. A chunk is written under a temporary name and renamed; then its
  summary ``chunk_<k>.json`` is written the same way. A segment is done when
  both exist, so a killed worker leaves nothing half-used.
- The work folder holds ``manifest.json``, which identifies the job: the
  input (path, size, modification time, hash of its head and tail), the
  model file (hash) and every setting that changes pixels or timing. A run
  with the same manifest reuses the finished chunks; another job's folder is
  refused, naming what differs. A lock file keeps two runs out of one folder.
- Joining. Video chunks are joined by packet copy (no re-encoding; exact
  timestamps), the source's audio is muxed once, interleaved by time; PNG
  chunks are linked (or copied) into the output folder. The output appears
  atomically; then the work folder is removed.

``InProcessRenderer`` renders in this process; ``ray_workers.RayRenderer``
spreads the same ``render_segment`` calls over worker processes or a cluster.
"""
from __future__ import annotations

import bisect
import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import heapq
import json
import logging
import math
import os
import shutil
import time
from fractions import Fraction
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence

import av

import media_io
import runtime
import video_io
import video_pipeline
from media_io import MediaError

log = logging.getLogger("film")

MANIFEST_NAME = "manifest.json"
SCAN_NAME = "scan.json"
CHUNKS_FOLDER = "chunks"
LOCK_NAME = ".lock"
MANIFEST_FORMAT = 1
DEFAULT_SEGMENT_SECONDS = 10
# Video chunks are Matroska whatever the output: it takes every codec, needs
# no index rewrite at the end (MP4's +faststart), and the join restamps the
# frames exactly (see _video_packets).
VIDEO_CHUNK_EXTENSION = ".mkv"
# Bytes hashed at each end of the input to recognise it (with its size and mtime).
HASHED_BYTES = 1 << 20


class JobError(MediaError):
    """A problem with the job's work folder, explained in one line."""


# --------------------------------------------------------------------------- the job

@dataclasses.dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs to render any segment (paths absolute, so any process can use them)."""

    input_path: str
    folder_fps: Fraction          # frame rate of a folder of frames (videos carry theirs)
    model_path: str
    mode: str                     # video_pipeline.MODES
    rate: Fraction                # output frame rate
    lattice: Optional[int]        # K of --multiplier K (see OutputClock)
    scene_threshold: float
    start: Fraction               # the first source frame's time: output frame 0
    tick: Fraction                # resolution of the source's timestamps
    width: int
    height: int
    total_frames: int             # output frames of the whole job
    workdir: str
    chunk_extension: str          # ".mp4", ".mkv", ... for video outputs; "" for PNG frames
    gpu: bool = False
    precision: str = "fp32"
    tile: Optional[int] = None
    max_memory: Optional[float] = None
    threads: Optional[int] = None
    encoding: Optional[media_io.VideoEncoding] = None  # codec, depth, colour (None: the default H.264)
    # --dedup: the times of the source frames that are kept, decided once for
    # the whole job (None: every frame is used).
    kept_times: Optional[frozenset] = None

    def clock(self, first_index: int = 0, end_index: Optional[int] = None) -> video_pipeline.OutputClock:
        return video_pipeline.OutputClock(self.start, self.rate, self.tick, lattice=self.lattice,
                                          snap_all=self.mode == "recursive", first_index=first_index,
                                          end_index=end_index)

    def open_model(self) -> runtime.ModelRuntime:
        return runtime.open_model(self.model_path, gpu=self.gpu, precision=self.precision,
                                  frame_size=(self.height, self.width), tile=self.tile,
                                  max_memory_gb=self.max_memory, threads=self.threads)

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
    return math.floor((times[-1] + clock.tick / 2 - clock.start) * clock.rate) + 1


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


class SourceScan(NamedTuple):
    """What one decoding pass over the source found (``scan_source``)."""

    times: List[Fraction]         # times of the frames the job uses (after --dedup)
    cuts: List[int]               # indices into ``times`` of the frames that start a new scene
    frames: int                   # source frames decoded (before --dedup)
    dropped: int                  # of those, dropped as duplicates

    def to_json(self) -> dict:
        return {"times": [str(time) for time in self.times], "cuts": self.cuts, "frames": self.frames,
                "dropped": self.dropped}

    @classmethod
    def from_json(cls, content: dict) -> "SourceScan":
        return cls([Fraction(time) for time in content["times"]], [int(cut) for cut in content["cuts"]],
                   int(content["frames"]), int(content["dropped"]))


def scan_source(frames: Iterator[video_io.SourceFrame], *, scene_threshold: float,
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


def scan_for_job(source: video_io.FrameSource, folder: "WorkFolder", *, segment_frames: int,
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
        # frames_from, not frames(): the same frames, without a warning about
        # damage at the end of the pass; the job reports that once, from its segments.
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


def _counted(frames: Iterator[video_io.SourceFrame], progress) -> Iterator[video_io.SourceFrame]:
    for frame in frames:
        progress.update(1)
        yield frame


class ChunkSummary(NamedTuple):
    frames: int
    made: int
    passed_through: int
    repeated_at_cuts: int
    scene_cuts: int
    compute_seconds: float
    warning: Optional[str]        # what the source could not give (damage), for the user


def render_segment(job: JobSpec, segment: Segment, model_runtime: runtime.ModelRuntime,
                   progress=None) -> ChunkSummary:
    """Renders one segment into its chunk and summary files (replacing any there); see the module docstring."""
    clock = job.clock(segment.first_output, segment.end_output)
    renderer = video_pipeline.PairRenderer(model_runtime, job.mode)
    # A frame on the first output's time (within half a tick) is that output.
    aim = clock.time_of(segment.first_output) + job.tick / 2
    with video_io.open_source(job.input_path, folder_fps=job.folder_fps, keep_audio=False) as source:
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
        with media_io.open_writer(job.chunk_path(segment.index), job.rate, job.width, job.height,
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
    _write_json_atomically(job.summary_path(segment.index), chunk._asdict())
    return chunk


def _starting_at_or_before(frames: Iterator[video_io.SourceFrame], aim: Fraction,
                           path: str) -> Iterator[video_io.SourceFrame]:
    """``frames``, checked to start at or before ``aim`` (a segment's first pair must be there)."""
    first = next(frames, None)
    if first is None:
        return
    if first.time > aim:
        raise MediaError(f"cannot find the frame at {float(aim):.3f} s in {path} (the first frame found after "
                         f"seeking is at {float(first.time):.3f} s)")
    yield first
    yield from frames


def read_chunk_summary(path: str) -> Optional[ChunkSummary]:
    try:
        with open(path) as file:
            return ChunkSummary(**json.load(file))
    except (OSError, ValueError, TypeError):
        return None


# --------------------------------------------------------------------------- the work folder

def file_identity(path: str, content_hash: str = "ends") -> dict:
    """Path, size, mtime and a hash: of the head and tail (``ends``, for big inputs) or of everything."""
    stat = os.stat(path)
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        if content_hash == "all" or stat.st_size <= 2 * HASHED_BYTES:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
        else:
            digest.update(file.read(HASHED_BYTES))
            file.seek(-HASHED_BYTES, os.SEEK_END)
            digest.update(file.read(HASHED_BYTES))
    return {"path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "sha256": digest.hexdigest()}


def folder_identity(path: str) -> dict:
    """A folder of frames: its path and every frame file's name, size and mtime."""
    entries = []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isfile(full) and name.lower().endswith(video_io.FRAME_EXTENSIONS):
            stat = os.stat(full)
            entries.append([name, stat.st_size, stat.st_mtime_ns])
    digest = hashlib.sha256(json.dumps(entries).encode()).hexdigest()
    return {"path": os.path.abspath(path), "frames": len(entries), "sha256": digest}


def _describe_differences(old: dict, new: dict, prefix: str = "") -> List[str]:
    differences = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            differences += _describe_differences(a, b, f"{prefix}{key} ")
        elif a != b:
            differences.append(f"{prefix}{key} was {a} and is now {b}")
    return differences


def _write_json_atomically(path: str, content: dict) -> None:
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as file:
        json.dump(content, file, indent=1, sort_keys=True)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


class WorkFolder:
    """The job's folder: manifest, lock, chunks; see the module docstring."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.created = False
        self._created_folders: List[str] = []
        self._lock = None

    @property
    def chunks(self) -> str:
        return os.path.join(self.path, CHUNKS_FOLDER)

    def open(self, manifest: dict, restart: bool = False) -> None:
        """Creates or reopens the folder for this job; refuses another job's folder (unless ``restart``)."""
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise JobError(f"the work folder {self.path} is a file")
        if restart and os.path.isdir(self.path):
            self._refuse_if_not_a_work_folder()
            shutil.rmtree(self.path)
        try:
            if not os.path.isdir(self.path):
                self._created_folders = media_io.create_missing_folders(self.path)
                self.created = True
            os.makedirs(self.chunks, exist_ok=True)
            self._lock = open(os.path.join(self.path, LOCK_NAME), "a")
        except OSError as error:
            raise JobError(f"cannot use the work folder {self.path}: {error.strerror or error}") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            self._lock.close()
            self._lock = None
            if error.errno in (errno.EAGAIN, errno.EACCES):
                raise JobError(f"another run is using the work folder {self.path}") from None
            raise
        manifest_path = os.path.join(self.path, MANIFEST_NAME)
        if os.path.exists(manifest_path):
            try:
                with open(manifest_path) as file:
                    existing = json.load(file)
            except (OSError, ValueError):
                existing = None
            if existing != manifest:
                differences = _describe_differences(existing, manifest) if isinstance(existing, dict) else \
                    ["its manifest is unreadable"]
                self.release()
                raise JobError(f"the work folder {self.path} belongs to another job ({'; '.join(differences)}): "
                               f"use --restart to discard it, or another --workdir")
        elif any(not name.startswith(".") for name in os.listdir(self.chunks)):
            self.release()
            raise JobError(f"the work folder {self.path} holds chunks but no manifest: use --restart to discard it")
        else:
            _write_json_atomically(manifest_path, manifest)
        self._remove_partial_files()

    def _refuse_if_not_a_work_folder(self) -> None:
        names = {name for name in os.listdir(self.path) if not name.endswith(".tmp")}  # a write cut short
        if names - {MANIFEST_NAME, SCAN_NAME, CHUNKS_FOLDER, LOCK_NAME}:
            raise JobError(f"--restart would delete {self.path}, which holds other files: remove it yourself")

    def _remove_partial_files(self) -> None:
        """Left by a worker that was killed (its pid is in the name) or an interrupted run."""
        try:
            names = os.listdir(self.chunks)
        except FileNotFoundError:
            return
        for name in names:
            if name.startswith(".") or name.endswith(".tmp"):
                full = os.path.join(self.chunks, name)
                if os.path.isdir(full):
                    shutil.rmtree(full, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.remove(full)

    def load_scan(self) -> Optional[SourceScan]:
        """The scan of the source saved by an earlier run of this job (None if there is none, or it is unreadable)."""
        try:
            with open(os.path.join(self.path, SCAN_NAME)) as file:
                return SourceScan.from_json(json.load(file))
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def save_scan(self, scan: SourceScan) -> None:
        _write_json_atomically(os.path.join(self.path, SCAN_NAME), scan.to_json())

    @property
    def has_scan(self) -> bool:
        return os.path.exists(os.path.join(self.path, SCAN_NAME))

    def close_after_failure(self, finished_segments: int = 0, segments: int = 0) -> Optional[str]:
        """Releases the folder after a failed or interrupted run; removes it if this run made it and it holds nothing.

        Returns what is kept, for the user (None if nothing is).
        Temporary files are removed first: a writer killed with the run
        (a Ray worker interrupted with it) cannot remove its own, and with
        the folder locked no other run writes there.
        """
        self._remove_partial_files()
        kept = [f"{finished_segments} of {segments} segments"] if finished_segments else []
        if self.has_scan:
            kept.insert(0, "the scan of the source")
        if kept:
            self.release()
            verb = "are" if finished_segments else "is"
            return f"{' and '.join(kept)} {verb} kept in {self.path}: the same command resumes from there"
        if self.created:
            self.remove()
        else:
            self.release()
        return None

    def done(self, job: JobSpec, segments: Sequence[Segment]) -> Dict[int, ChunkSummary]:
        """The finished segments' summaries (a chunk and its summary both there)."""
        finished = {}
        for segment in segments:
            summary = read_chunk_summary(job.summary_path(segment.index))
            if summary is not None and (summary.frames == 0 or os.path.exists(job.chunk_path(segment.index))):
                finished[segment.index] = summary
        return finished

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def remove(self) -> None:
        """Deletes the folder, and the parents this run created for it if they are empty."""
        self.release()
        shutil.rmtree(self.path, ignore_errors=True)
        media_io.remove_empty_folders(self._created_folders[:-1])


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


# --------------------------------------------------------------------------- joining

def _chunk_pts(path: str) -> List[Fraction]:
    """The presentation times (seconds) of a video chunk's packets, in decode order."""
    with av.open(path) as chunk:
        stream = chunk.streams.video[0]
        return [Fraction(packet.pts * stream.time_base) for packet in chunk.demux(stream)
                if packet.size and packet.pts is not None]


def _video_packets(chunk_paths: Sequence[str], first_outputs: Sequence[int], rate: Fraction,
                   output_stream) -> Iterator[tuple]:
    """(time in seconds, packet) of every chunk's video, in order, stamped for the output stream.

    A chunk holds the consecutive output frames from ``first_outputs[k]`` on,
    so its i-th smallest pts is frame first + i: timestamps are set from that
    (exact, whatever the chunk container rounded them to). Decode times are
    the sorted frame numbers moved back by the largest reordering delay of
    any chunk, so they increase across the joins and never pass a pts.
    """
    chunks = [_chunk_pts(path) for path in chunk_paths]
    delay = 0
    for stamps in chunks:
        order = {stamp: i for i, stamp in enumerate(sorted(stamps))}
        delay = max([delay] + [order[stamps[j]] - j for j in range(len(stamps))] +
                    [j - order[stamps[j]] for j in range(len(stamps))])
    time_base = 1 / rate
    for path, first, stamps in zip(chunk_paths, first_outputs, chunks):
        order = {stamp: i for i, stamp in enumerate(sorted(stamps))}
        with av.open(path) as chunk:
            stream = chunk.streams.video[0]
            j = 0
            for packet in chunk.demux(stream):
                if packet.size == 0 or packet.pts is None:
                    continue
                index = first + order[stamps[j]]
                packet.pts, packet.dts, packet.duration = index, first + j - delay, 1
                packet.time_base = time_base
                packet.stream = output_stream
                j += 1
                yield Fraction(packet.dts) * time_base, packet


def _audio_packets(container, streams, offset: Fraction) -> Iterator[tuple]:
    if not streams:
        return
    try:
        for packet in container.demux(list(streams)):
            if packet.size == 0:
                continue
            stamp = packet.dts if packet.dts is not None else packet.pts
            moment = Fraction(stamp * packet.time_base) - offset if stamp is not None else Fraction(0)
            yield moment, packet
    except av.FFmpegError:
        pass  # a cut-short source: its sound ends where reading stops, as its picture does


def join_video(chunk_paths: Sequence[str], first_outputs: Sequence[int], rate: Fraction, save_path: str,
               source_path: Optional[str], start: Fraction) -> List[str]:
    """Joins video chunks by packet copy into ``save_path`` with the source's audio; returns audio notes.

    ``first_outputs``: each chunk's first frame number; ``start``: the source
    time that is 0 in the output (the first frame's).
    """
    container_format = media_io.VIDEO_FORMATS[os.path.splitext(save_path)[1].lower()]
    options = {"movflags": "+faststart"} if container_format in ("mp4", "mov") else {}
    destination = media_io.Destination(save_path, is_folder=False)
    notes: List[str] = []
    try:
        with contextlib.ExitStack() as stack:
            output = stack.enter_context(av.open(destination.temporary, mode="w", format=container_format,
                                                 options=options))
            first = stack.enter_context(av.open(chunk_paths[0]))
            # opaque: the codec parameters as they are, with no encoder opened (a decoder-only
            # name such as libdav1d has none).
            video = output.add_stream_from_template(first.streams.video[0], opaque=True)
            video.time_base = 1 / rate
            audio = None
            source = None
            if source_path is not None:
                source = stack.enter_context(av.open(source_path))
                if source.streams.audio:
                    audio = video_io.AudioTransfer(list(source.streams.audio), output, offset=start)
            streams = list(source.streams.audio) if audio is not None else []
            pictures = _video_packets(chunk_paths, first_outputs, rate, video)
            merged = heapq.merge(((moment, 0, packet) for moment, packet in pictures),
                                 ((moment, 1, packet) for moment, packet in _audio_packets(source, streams, start)),
                                 key=lambda item: (item[0], item[1]))
            for _, kind, packet in merged:
                if kind == 0:
                    output.mux(packet)
                else:
                    audio.send(packet)
            if audio is not None:
                audio.finish()
                notes = ([f"copied {', '.join(audio.copied)}"] if audio.copied else []) + \
                        ([f"re-encoded to AAC {', '.join(audio.reencoded)}"] if audio.reencoded else [])
        destination.commit()
    except BaseException as error:
        destination.discard()
        if isinstance(error, (av.FFmpegError, OSError)) and not isinstance(error, MediaError):
            raise MediaError(f"cannot join the chunks into {save_path}: {error}") from None
        raise
    return notes


def join_png_folders(chunk_folders: Sequence[str], save_path: str) -> None:
    """Links (or copies) the chunks' numbered PNG frames into the output folder, atomically."""
    destination = media_io.Destination(save_path, is_folder=True)
    try:
        for folder in chunk_folders:
            for name in sorted(os.listdir(folder)):
                source, target = os.path.join(folder, name), os.path.join(destination.temporary, name)
                try:
                    os.link(source, target)  # the chunks stay intact until the join has succeeded
                except OSError:
                    shutil.copy2(source, target)
        destination.commit()
    except BaseException:
        destination.discard()
        raise


# --------------------------------------------------------------------------- a whole job

class JobResult(NamedTuple):
    chunks: Dict[int, ChunkSummary]
    resumed_segments: int
    audio_notes: List[str]
    seconds: float


def manifest_for(input_path: str, model_path: str, chunk_extension: str, segment_frames: int,
                 settings: dict) -> dict:
    """What identifies the job (see the module docstring). ``settings``: the pixel/timing settings as given."""
    source = folder_identity(input_path) if os.path.isdir(input_path) else file_identity(input_path)
    return {"format": MANIFEST_FORMAT, "input": source, "model": file_identity(model_path, "all"),
            "segment_frames": segment_frames, "output": chunk_extension or "png frames", "settings": settings}


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
            audio_notes = join_video(parts, [segment.first_output for segment in rendered], job.rate, save_path,
                                     source_audio, job.start)
        else:
            join_png_folders(parts, save_path)
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
