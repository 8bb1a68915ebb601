"""ray_workers.py without starting Ray: the clean-up after a local instance stops.

The runs with real Ray workers are in test_video_jobs.py.
"""
import io
import os
import subprocess
import sys
import time
from fractions import Fraction

from tqdm import tqdm

import media.destination
import ray_workers
import video_jobs
import work_folder


def test_the_writer_of_a_temporary_file_is_read_from_its_name(tmp_path):
    destination = media.destination.Destination(str(tmp_path / "chunk_000003.mkv"), is_folder=False)
    folder = media.destination.Destination(str(tmp_path / "chunk_000004"), is_folder=True)
    try:
        assert ray_workers.writer_pid(os.path.basename(destination.temporary)) == os.getpid()
        assert ray_workers.writer_pid(os.path.basename(folder.temporary)) == os.getpid()
    finally:
        destination.discard()
        folder.discard()
    assert ray_workers.writer_pid("chunk_000003.json.4242.tmp") == 4242
    for name in ("chunk_000003.mkv", "chunk_000003.json", ".lock", "x.partial", "chunk.json.tmp"):
        assert ray_workers.writer_pid(name) is None


def test_a_process_runs_until_it_has_ended(tmp_path):
    assert ray_workers.process_running(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    # Ended but not yet reaped: a zombie, which writes nothing any more.
    while ray_workers.process_running(child.pid):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    child.wait()
    assert not ray_workers.process_running(child.pid)


def test_the_driver_waits_for_dying_writers_but_not_forever(tmp_path):
    chunks = tmp_path / "chunks"
    chunks.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (chunks / f".chunk_000001.mkv.{dead.pid}-0a1b2c3d.partial").touch()
    started = time.monotonic()
    ray_workers.wait_for_writers(str(chunks), timeout=10)
    assert time.monotonic() - started < 1  # nobody writes: no wait

    dying = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    (chunks / f".chunk_000002.mkv.{dying.pid}-0a1b2c3d.partial").touch()
    started = time.monotonic()
    ray_workers.wait_for_writers(str(chunks), timeout=20)
    waited = time.monotonic() - started
    dying.wait()
    assert 0.2 < waited < 10

    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (chunks / f"chunk_000003.json.{alive.pid}.tmp").touch()
        started = time.monotonic()
        ray_workers.wait_for_writers(str(chunks), timeout=0.5)
        assert 0.4 < time.monotonic() - started < 5
    finally:
        alive.kill()
        alive.wait()
    ray_workers.wait_for_writers(str(tmp_path / "gone"), timeout=10)  # no folder: nothing to wait for


def test_an_interrupted_run_leaves_no_temporary_file_in_the_work_folder(tmp_path):
    """A killed worker's files (its pid in their names) go when the driver gives up the folder."""
    folder = work_folder.WorkFolder(str(tmp_path / "job.parts"))
    folder.open({"job": 1})
    job = video_jobs.JobSpec(input_path="in.mp4", folder_fps=Fraction(24), model_path="m.pt", mode="direct",
                             rate=Fraction(48), multiplier=2, scene_threshold=1, start=Fraction(0),
                             timestamp_step=Fraction(1, 1000), width=64, height=64, total_frames=10,
                             workdir=folder.path, chunk_extension=".mkv")
    chunks = tmp_path / "job.parts" / "chunks"
    finished = chunks / "chunk_000000.mkv"
    finished.write_bytes(b"chunk")
    (chunks / "chunk_000000.json").write_text(
        '{"frames": 4, "made": 2, "passed_through": 2, "repeated_at_cuts": 0, "scene_cuts": 0, '
        '"compute_seconds": 1.0, "warning": null}')
    (chunks / ".chunk_000001.mkv.4242-0a1b2c3d.partial").touch()
    (chunks / ".chunk_000002.4243-0a1b2c3d.partial").mkdir()
    (chunks / ".chunk_000002.4243-0a1b2c3d.partial" / "00000005.png").touch()
    (chunks / "chunk_000001.json.4242.tmp").touch()
    note = folder.close_after_failure(1, 3)
    assert "1 of 3 segments" in note
    assert sorted(os.listdir(chunks)) == ["chunk_000000.json", "chunk_000000.mkv"]
    assert finished.read_bytes() == b"chunk" and job.chunk_path(0) == str(finished)


def test_the_bar_counts_rate_and_eta_from_when_rendering_starts():
    """Ray's start-up (minutes on a cluster) is no part of the rendering rate."""
    now = [1000.0]
    bar = tqdm(total=1000, file=io.StringIO(), mininterval=0, miniters=1)
    bar._time = lambda: now[0]
    bar.start_t = bar.last_print_t = now[0]
    progress = video_jobs.Progress(bar)
    progress.update(100)  # the frames of resumed segments, at once
    now[0] += 600         # the workers start
    progress.start_clock()
    now[0] += 10
    progress.update(50)
    state = bar.format_dict
    assert state["n"] == 150 and state["elapsed"] == 10
    assert state["rate"] == 5  # 50 frames in 10 s: an ETA of (1000 - 150) / 5 s
    assert "02:50" in str(bar)
    video_jobs.Progress(None).start_clock()  # no bar: nothing to do
    bar.close()
