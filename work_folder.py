"""The work folder of a segmented job: what it keeps on disk between runs, and how it is recognised.

- ``manifest.json`` identifies the job (``manifest_for``): the input (path,
  size, modification time, hash of its head and tail, or a frame folder's
  listing), the model file (hash) and every setting that changes pixels or
  timing, stored as the flags that give them. A run with the same manifest
  reuses the finished chunks; another job's folder is refused, naming what
  differs in the user's flags. A lock file keeps two runs out of one folder.
- ``scan.json``: the one decoding pass over the source (``SourceScan``), so
  that a resumed job does not decode the source again.
- ``chunks/``: segment k's chunk and its summary ``chunk_<k>.json``
  (``ChunkSummary``), each written under a temporary name and renamed; a
  segment is done when both exist. Temporary files of a run or worker that
  was stopped are removed when a run opens or leaves the folder.

Records are JSON, written atomically (``write_json_atomically``).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
from fractions import Fraction
from typing import Dict, List, NamedTuple, Optional, Sequence

import media.destination
import media.images
from media.errors import MediaError

MANIFEST_NAME = "manifest.json"
SCAN_NAME = "scan.json"
CHUNKS_FOLDER = "chunks"
LOCK_NAME = ".lock"
MANIFEST_FORMAT = 1
# Bytes hashed at each end of the input to recognise it (with its size and mtime).
HASHED_BYTES = 1 << 20


class JobError(MediaError):
    """A problem with the job's work folder, explained in one line."""



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


class ChunkSummary(NamedTuple):
    frames: int
    made: int
    passed_through: int
    repeated_at_cuts: int
    scene_cuts: int
    compute_seconds: float
    warning: Optional[str]        # what the source could not give (damage), for the user


def read_chunk_summary(path: str) -> Optional[ChunkSummary]:
    try:
        with open(path) as file:
            return ChunkSummary(**json.load(file))
    except (OSError, ValueError, TypeError):
        return None


def manifest_for(input_path: str, model_path: str, chunk_extension: str, segment_frames: int,
                 settings: dict) -> dict:
    """What identifies the job (see the module docstring). ``settings``: the pixel/timing settings as given."""
    source = folder_identity(input_path) if os.path.isdir(input_path) else file_identity(input_path)
    return {"format": MANIFEST_FORMAT, "input": source, "model": file_identity(model_path, "all"),
            "segment_frames": segment_frames, "output": chunk_extension or "png frames", "settings": settings}


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
        if os.path.isfile(full) and name.lower().endswith(media.images.FRAME_EXTENSIONS):
            stat = os.stat(full)
            entries.append([name, stat.st_size, stat.st_mtime_ns])
    digest = hashlib.sha256(json.dumps(entries).encode()).hexdigest()
    return {"path": os.path.abspath(path), "frames": len(entries), "sha256": digest}


def _flag(name: str, value) -> str:
    if name == "encoding":
        return f"the encoding {value}"
    return name if value is True else f"{name} {value}"


def _describe_settings(old: dict, new: dict) -> List[str]:
    """Settings are stored as the flags that give them: say the difference in flags."""
    changed = [name for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]
    if not changed:
        return []
    made = " ".join(_flag(name, old[name]) for name in changed if name in old) or "the defaults"
    now = " ".join(_flag(name, new[name]) for name in changed if name in new) or "the defaults"
    return [f"it was made with {made}, this run asks for {now}"]


def _describe_differences(old: dict, new: dict, prefix: str = "") -> List[str]:
    differences = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if key == "settings" and not prefix and isinstance(a, dict) and isinstance(b, dict):
            differences += _describe_settings(a, b)
        elif isinstance(a, dict) and isinstance(b, dict):
            differences += _describe_differences(a, b, f"{prefix}{key} ")
        elif a != b:
            differences.append(f"{prefix}{key} was {a} and is now {b}")
    return differences


def write_json_atomically(path: str, content: dict) -> None:
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
                self._created_folders = media.destination.create_missing_folders(self.path)
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
            write_json_atomically(manifest_path, manifest)
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
        write_json_atomically(os.path.join(self.path, SCAN_NAME), scan.to_json())

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

    def done(self, job, segments: Sequence) -> Dict[int, ChunkSummary]:
        """The finished segments' summaries (a chunk and its summary both there); ``job``: a ``video_jobs.JobSpec``."""
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
        media.destination.remove_empty_folders(self._created_folders[:-1])
