"""A job's segments rendered by worker processes with Ray: a local instance (``--workers N``) or a cluster (``--ray``).

One actor per worker loads the model once and renders the segments it is
handed (``video_jobs.render_segment``), one at a time, as it frees up. Ray
restarts an actor whose process dies (killed, out of memory) and retries its
segment; chunk files are written atomically, so a half-rendered segment is
never used. Workers report frames as they go to a small progress actor, from
which the driver feeds one progress bar.

On a cluster every node must see the input, the model and the work folder at
the same paths (a shared filesystem): each worker checks that first and the
job fails with that message otherwise. The code is shipped to the workers by
Ray (``working_dir``); the Python packages must be installed on every node.
"""
from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence

import video_jobs
import work_folder
from video_jobs import JobSpec, Segment
from work_folder import ChunkSummary, JobError
from media.errors import first_line

log = logging.getLogger("film")

ROOT = os.path.dirname(os.path.abspath(__file__))
INSTALL_HINT = "pip install 'ray==2.60.*'"
# How often a worker sends its frame count, in seconds: often enough for a
# live progress bar, rarely enough to cost nothing.
REPORT_INTERVAL = 0.25
# A killed worker is restarted (and its segment retried) this many times.
RESTARTS = 3
CONNECT_TIMEOUT = 5.0
# After the driver stops a local instance, how long it waits for its workers to end.
WRITERS_TIMEOUT = 5.0


def import_ray():
    try:
        import ray
    except ImportError:
        raise JobError(f"--workers and --ray need Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def check_reachable(address: str) -> None:
    """Fails in seconds, with a clear message, when nothing answers at a cluster's HOST:PORT."""
    if address in ("auto", "local") or address.startswith("ray://"):
        target = address[len("ray://"):] if address.startswith("ray://") else None
    else:
        target = address
    if not target:
        return
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise JobError(f"--ray {address}: expected HOST:PORT (e.g. 10.0.0.5:6379), ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as error:
        raise JobError(f"cannot reach a Ray cluster at {address} ({error.strerror or error}): is `ray start "
                       f"--head` running there, and is the port open?") from None


def check_storage(job: JobSpec) -> str:
    """This process can read the input and model and write the work folder; returns the host name."""
    host = socket.gethostname()
    problems = []
    for what, path in (("the input", job.input_path), ("the model", job.model_path)):
        if not os.access(path, os.R_OK):
            problems.append(f"cannot read {what} {path}")
    try:
        with tempfile.NamedTemporaryFile(dir=os.path.join(job.workdir, work_folder.CHUNKS_FOLDER), prefix=".probe"):
            pass
    except OSError as error:
        problems.append(f"cannot write in the work folder {job.workdir} ({error.strerror or error})")
    if problems:
        raise JobError(f"a worker on {host} {'; '.join(problems)}: on a cluster, the input, the model and the "
                       f"work folder must be on storage that every node sees at the same path (a shared "
                       f"filesystem)")
    return host


class SegmentProgress:
    """A worker's side of the progress bar: frames of one segment, sent every REPORT_INTERVAL."""

    def __init__(self, counter, segment: int):
        self.counter, self.segment = counter, segment
        self.frames, self.sent_at = 0, 0.0

    def update(self, frames: int = 1) -> None:
        self.frames += frames
        now = time.monotonic()
        if now - self.sent_at >= REPORT_INTERVAL:
            self.sent_at = now
            self.counter.report.remote(self.segment, self.frames)

    def finish(self) -> None:
        self.counter.report.remote(self.segment, self.frames)


class ProgressCounter:
    """Frames rendered so far per segment: a retried segment counts from 0 again."""

    def __init__(self):
        self.frames: Dict[int, int] = {}

    def report(self, segment: int, frames: int) -> None:
        self.frames[segment] = frames

    def total(self) -> int:
        return sum(self.frames.values())


class SegmentWorker:
    """One worker: the model loaded once (when checked; after a restart, for its first segment), segments one at a time.

    The constructor takes no arguments. Ray runs it again when it restarts
    the actor, and an argument that holds an object reference (the progress
    actor's handle; the job, when it is large enough to go to the object
    store) may be gone by then: Ray logs an error line for every such actor
    that may be restarted (ray-project/ray#53727). The job (put in the object
    store once by the driver, which holds it to the end) and the progress
    actor come with each call instead, so a retried call brings them along.
    """

    def __init__(self):
        self.model_runtime = None

    def check(self, job: JobSpec) -> str:
        """The files can be used and the model is loaded: the worker is ready. Returns the host name."""
        host = check_storage(job)
        if self.model_runtime is None:
            self.model_runtime = job.open_model()
        return host

    def render(self, job: JobSpec, segment: Segment, counter) -> tuple:
        if self.model_runtime is None:
            self.model_runtime = job.open_model()
        progress = SegmentProgress(counter, segment.index)
        summary = video_jobs.render_segment(job, segment, self.model_runtime, progress)
        progress.finish()
        return tuple(summary)


class RayRenderer:
    """``render(pending, on_done, progress)`` for ``video_jobs.run_job``, with ``workers`` Ray actors."""

    def __init__(self, job: JobSpec, workers: int, *, address: Optional[str] = None,
                 threads_per_worker: int = 1, gpu: bool = False, local_cpus: Optional[int] = None):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.job, self.workers, self.address = job, workers, address
        self.threads_per_worker, self.gpu = threads_per_worker, gpu
        self.local_cpus = local_cpus
        self.started_seconds = 0.0  # Ray start-up and actor checks, for the benchmark

    def _init(self, ray) -> None:
        runtime_env = {"working_dir": ROOT,
                       "excludes": ["tests/", ".git/", "photos/", "out/", "*.pt", "*.pth", "__pycache__/"],
                       # Workers share the CPU: their OpenMP threads must not spin long (see cli.py).
                       "env_vars": {name: os.environ[name] for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
                                    if name in os.environ}}
        options = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                       runtime_env=runtime_env)
        if self.address is None:
            options["num_cpus"] = self.local_cpus or self.workers * self.threads_per_worker
        else:
            check_reachable(self.address)
            options["address"] = self.address
        try:
            ray.init(**options)
        except ConnectionError as error:
            raise JobError(f"cannot connect to a Ray cluster at {self.address}: {error}") from None

    def __call__(self, pending: Sequence[Segment], on_done: Callable[[Segment, ChunkSummary], None],
                 progress) -> None:
        ray = import_ray()
        started = time.perf_counter()
        self._init(ray)
        try:
            actor_count = min(self.workers, len(pending))
            counter = ray.remote(num_cpus=0)(ProgressCounter).remote()
            worker_class = ray.remote(num_cpus=self.threads_per_worker,
                                      num_gpus=gpus_per_worker(ray, actor_count) if self.gpu else 0,
                                      max_restarts=RESTARTS, max_task_retries=RESTARTS)(SegmentWorker)
            job = self.job if self.threads_per_worker is None else _with_threads(self.job, self.threads_per_worker)
            job_reference = ray.put(job)  # once, not once per call (--dedup's kept times can be large)
            actors = [worker_class.remote() for _ in range(actor_count)]
            hosts = self._wait(ray, [actor.check.remote(job_reference) for actor in actors])
            self.started_seconds = time.perf_counter() - started
            log.info(f"Ray workers ready: {len(actors)} on {len(set(hosts))} "
                     f"node{'s' if len(set(hosts)) != 1 else ''} in {self.started_seconds:.1f} s")
            if hasattr(progress, "start_clock"):
                progress.start_clock()  # the rate and ETA are those of rendering, without the start-up
            self._schedule(ray, actors, job_reference, counter, list(pending), on_done, progress)
        finally:
            ray.shutdown()
            if self.address is None:
                wait_for_writers(os.path.join(self.job.workdir, video_jobs.CHUNKS_FOLDER))

    def _schedule(self, ray, actors, job_reference, counter, queue: List[Segment], on_done, progress) -> None:
        idle, running = list(actors), {}
        reported = 0
        while queue or running:
            while idle and queue:
                actor, segment = idle.pop(), queue.pop(0)
                running[actor.render.remote(job_reference, segment, counter)] = (actor, segment)
            done, _ = ray.wait(list(running), num_returns=1, timeout=REPORT_INTERVAL)
            frames = ray.get(counter.total.remote())
            progress.update(frames - reported)
            reported = frames
            for reference in done:
                actor, segment = running.pop(reference)
                summary = ChunkSummary(*self._wait(ray, reference))
                on_done(segment, summary)
                idle.append(actor)

    @staticmethod
    def _wait(ray, references):
        """ray.get, with a worker's own error (e.g. a damaged input) raised as itself."""
        try:
            return ray.get(references)
        except ray.exceptions.RayTaskError as error:
            cause = getattr(error, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise JobError(f"a worker failed: {str(error).strip().splitlines()[-1]}") from None
        except ray.exceptions.RayActorError as error:
            raise JobError(f"a worker died {RESTARTS + 1} times ({first_line(error)}); "
                           f"see Ray's logs") from None


def writer_pid(name: str) -> Optional[int]:
    """The id of the process writing a chunk's temporary file, from its name (None if it is not one).

    ``.chunk_000003.mkv.<pid>-<random>.partial`` (``media_io.Destination``),
    ``chunk_000003.json.<pid>.tmp`` (``video_jobs._write_json_atomically``).
    """
    if name.endswith(".partial"):
        field = name[:-len(".partial")].rpartition(".")[2].partition("-")[0]
    elif name.endswith(".tmp"):
        field = name[:-len(".tmp")].rpartition(".")[2]
    else:
        return None
    return int(field) if field.isdigit() else None


def process_running(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine and has not ended (a zombie has)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return False
    except (OSError, IndexError):
        pass
    try:  # no /proc (macOS)
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def wait_for_writers(chunks_folder: str, timeout: float = WRITERS_TIMEOUT) -> None:
    """Waits (``timeout`` seconds at most) until no process of this machine writes a chunk there.

    After ``ray.shutdown()`` a local instance's workers may still be dying;
    the work folder removes their temporary files next (they cannot, e.g.
    after a Ctrl-C that reached them too), which must not race with a write.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pids = {writer_pid(name) for name in os.listdir(chunks_folder)} - {None, os.getpid()}
        except OSError:
            return
        if not any(process_running(pid) for pid in pids):
            return
        time.sleep(0.05)


def gpus_per_worker(ray, workers: int) -> float:
    """The share of a GPU each of ``workers`` actors asks Ray for; refuses at once where Ray sees none.

    Ray counts CUDA GPUs only: actors asking for one on a machine without
    (a CPU machine, a Mac with MPS) would never be scheduled and the job would
    wait forever. Several workers share the GPUs there are.
    """
    gpus = ray.cluster_resources().get("GPU", 0)
    if gpus <= 0:
        raise JobError("--gpu with Ray workers needs a CUDA GPU that Ray can see, and this cluster has none "
                       "(Ray does not schedule work on Apple's MPS: on a Mac, use --gpu without --workers/--ray)")
    return min(1.0, gpus / workers)


def _with_threads(job: JobSpec, threads: int) -> JobSpec:
    import dataclasses
    return dataclasses.replace(job, runtime_options=job.runtime_options.with_threads(threads))
