"""Workload E: segmented video jobs through the library, with the tiny network (in every run).

Each row calls ``video_interpolation.interpolate_video`` on a generated clip
(``common.test_clip``: 48 frames of 64x64, full run 480 of 256x144, 24 fps)
into a folder of PNG frames, at twice the rate, and reads what it needs from
the ``VideoResult``:

- ``one-segment``: the whole clip as one segment, in this process, 2 threads;
- ``one-process``: 2-second segments (``SEGMENT_FRAMES``), in this process;
  its note gives the cost of each extra segment against ``one-segment``;
- ``ray-2-workers``: the same segments on 2 local Ray workers of 1 thread
  (its note: the Ray start-up the library logs, and the throughput against
  ``one-process``);
- ``resume``: the ``one-process`` job started in a process of its own
  (``python -c`` calling ``render``), killed with SIGKILL at a random moment
  after its first segment is done, then run again here: the result says how
  many segments it found done (``result.run.resumed_segments``).

Seconds per output frame are the job's whole time (``VideoResult.seconds``:
opening, scanning, rendering, joining) over its output frames.
"""
from __future__ import annotations

import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from typing import Dict, List, Tuple

from benchmarks import common

SEGMENT_FRAMES = {True: 12, False: 48}  # 2 s of the 24 fps clip (--quick: True)
CLIP = {True: (48, 64, 64), False: (480, 256, 144)}  # frames, width, height
JOBS = {"one-segment": dict(threads=2, segment_frames=100000), "one-process": dict(threads=2),
        "ray-2-workers": dict(workers=2, threads=1), "resume": dict(threads=2)}
KILLED_JOB = ("import sys, cli; from benchmarks import jobs; "
              "jobs.render(sys.argv[1], sys.argv[2] == 'quick', 'resume')")


def job_inputs(scratch: str, quick: bool) -> Tuple[str, str]:
    """(model file, clip) of the jobs, made once in ``scratch``."""
    return (common.exported_file(scratch, common.QUICK, "quick"),
            common.test_clip(scratch, *CLIP[quick]))


def output_folder(scratch: str) -> str:
    return os.path.join(scratch, "E-out")


def clear_output(scratch: str) -> None:
    shutil.rmtree(output_folder(scratch), ignore_errors=True)
    shutil.rmtree(output_folder(scratch) + ".parts", ignore_errors=True)


def video_options(variant: str, quick: bool):
    import runtime
    import video_interpolation
    job = JOBS[variant]
    return video_interpolation.VideoOptions(segment_frames=job.get("segment_frames", SEGMENT_FRAMES[quick]),
                                            workers=job.get("workers"),
                                            runtime=runtime.RuntimeOptions(threads=job["threads"]))


def describe(variant: str, quick: bool) -> str:
    job = dict(JOBS[variant])
    job.setdefault("segment_frames", SEGMENT_FRAMES[quick])
    return ", ".join(f"{name} {value}" for name, value in job.items())


class Messages(logging.Handler):
    """The messages of the library's ``film`` logger, from INFO up, during a job."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def render(scratch: str, quick: bool, variant: str):
    """(the ``VideoResult`` of ``variant``'s job, the library's log messages)."""
    import video_interpolation
    model, clip = job_inputs(scratch, quick)
    logger, handler = logging.getLogger("film"), Messages()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        result = video_interpolation.interpolate_video(clip, model, output_folder(scratch) + "/",
                                                       video_options(variant, quick))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return result, handler.messages


def segmented_job(args) -> Dict:
    clear_output(args.scratch)
    result, messages = render(args.scratch, args.quick, args.variant)
    frames = result.total("frames")
    ready = [message for message in messages if message.startswith("Ray workers ready")]
    note = f"{result.seconds:.1f} s for {frames} frames ({describe(args.variant, args.quick)}; {result.where})"
    return dict(seconds=result.seconds / frames, frames=frames, gflop=None, total_seconds=result.seconds,
                segments=len(result.plan.segments), note=note + (f"; {ready[0]}" if ready else ""))


def chunk_names(scratch: str) -> List[str]:
    chunks = os.path.join(output_folder(scratch) + ".parts", "chunks")
    return os.listdir(chunks) if os.path.isdir(chunks) else []


def start_and_kill(args) -> str:
    """Start the job in a process of its own, SIGKILL it at a random moment after a segment is done; what was done."""
    errors = os.path.join(args.scratch, "E-killed.stderr")
    with open(errors, "w") as stderr:
        process = subprocess.Popen([sys.executable, "-c", KILLED_JOB, args.scratch, "quick" if args.quick else "full"],
                                   cwd=common.ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
    done: List[str] = []
    while not done and process.poll() is None:
        time.sleep(0.05)
        done = [name for name in chunk_names(args.scratch) if name.endswith(".json")]
    if process.poll() is None:
        with open(os.path.join(output_folder(args.scratch) + ".parts", "chunks", done[0])) as file:
            segment_seconds = json.load(file).get("compute_seconds", 1.0)
        time.sleep(random.uniform(0, segment_seconds))  # somewhere in the next segment
    finished = process.poll() is not None
    process.send_signal(signal.SIGKILL)
    process.wait()
    if finished:
        if process.returncode != 0:
            with open(errors) as file:
                raise RuntimeError(f"the job to be killed failed:\n{file.read()[-3000:]}")
        return "the job ended before the kill"
    names = chunk_names(args.scratch)
    done_count = sum(name.endswith(".json") for name in names)
    return (f"killed with {done_count} segment{'s' if done_count != 1 else ''} done, "
            f"{sum(name.endswith('.partial') for name in names)} in flight")


def resumed_job(args) -> Dict:
    clear_output(args.scratch)
    job_inputs(args.scratch, args.quick)  # made before the job to be killed starts
    killed = start_and_kill(args)
    result, _ = render(args.scratch, args.quick, "resume")
    frames, resumed, segments = result.total("frames"), result.run.resumed_segments, len(result.plan.segments)
    return dict(seconds=result.seconds / frames, frames=frames, gflop=None,
                note=f"{killed}; the rerun found {resumed} of {segments} done and rendered {segments - resumed}")


VARIANTS = {"one-segment": segmented_job, "one-process": segmented_job, "ray-2-workers": segmented_job,
            "resume": resumed_job}


def add_notes(results: Dict[str, Dict], args) -> None:
    one, many = results["one-segment"], results["one-process"]
    overhead = (many["total_seconds"] - one["total_seconds"]) / max(1, many["segments"] - one["segments"])
    many["note"] += f"; {many['segments']} segments: {1000 * overhead:.0f} ms per extra segment"
    ratio = many["seconds"] / results["ray-2-workers"]["seconds"]
    results["ray-2-workers"]["note"] += f"; throughput {ratio:.2f}x one process"
