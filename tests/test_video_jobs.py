"""Segmented, resumable video jobs (video_jobs.py, ray_workers.py) through inference_video.py.

The point of the design is equality: a video rendered in segments, resumed
after a kill, or spread over workers gives the frames of a one-piece run.
Frames are compared byte for byte in PNG outputs (lossless); H.264 outputs
must have the same timestamps and frame count, and frames within encoder
noise of the lossless result. The tiny random network (filters 4) makes real
model frames on 96x64 clips.
"""
import hashlib
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
from fractions import Fraction as F

import av
import numpy as np
import pytest
import torch

import inference_video
import ray_workers
import video_jobs
import work_folder
import video_pipeline
from conftest import error_lines, random_interpolator, run_main
from media import errors, sources
from test_inference_video import (ONE_THREAD_ENV, ROOT, TINY, decode_video, make_video, read_png_folder)

SEGMENT_FRAMES = {1: "1000", 2: "13", 3: "9"}  # segments of the 24-frame clip


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jobs")
    model = folder / "tiny.pt"
    torch.jit.script(random_interpolator(**TINY)).save(str(model))
    return {"model": str(model),
            "clip": make_video(folder / "clip.mp4", count=24, rate=F(24)),
            "long": make_video(folder / "long.mp4", count=240, rate=F(24), audio=None)}


def run_cli(capsys, *argv):
    return run_main(inference_video.main, capsys, *argv)


def digests(folder):
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(pathlib.Path(folder).iterdir())}


@pytest.fixture(scope="module")
def one_piece(media, tmp_path_factory):
    """The reference: the 24-frame clip doubled in one segment, as PNG frames and as H.264."""
    folder = tmp_path_factory.mktemp("one_piece")
    for save_path in (folder / "frames", folder / "video.mp4"):
        status = inference_video.main([media["model"], media["clip"], "--save_path", str(save_path),
                                       "--segment_frames", SEGMENT_FRAMES[1]])
        assert status == 0
    return folder


# --------------------------------------------------------------------------- planning

def test_segments_cover_every_output_frame_once():
    times = [F(i, 24) for i in range(25)]
    clock = video_pipeline.OutputClock(times[0], F(60), F(1, 12288))
    total = video_jobs.count_output_frames(times, clock)
    assert total == 61  # 0 .. 1 s at 60 fps
    for frames in (1, 2, 5, 7, 24, 100):
        segments = video_jobs.plan_segments(times, clock, frames)
        bounds = [segment.first_output for segment in segments] + [total]
        assert bounds[0] == 0 and all(a < b for a, b in zip(bounds, bounds[1:]))
        assert segments[-1].end_output is None
        for segment, end in zip(segments, bounds[1:]):
            assert segment.frame_count(total) == end - segment.first_output
            # Segment k starts at a source frame, and its first output is the first at or after it.
            assert clock.time_of(segment.first_output) >= segment.start_time > clock.time_of(segment.first_output - 1) \
                if segment.first_output else segment.start_time == times[0]


def test_a_windowed_clock_places_frames_as_the_whole_clock_does():
    times = [F(0), F(1, 24), F(3, 24), F(4, 24), F(7, 24)]  # irregular: VFR
    whole = video_pipeline.OutputClock(times[0], F(30), F(1, 1000))
    expected = [placement for a, b in zip(times, times[1:]) for placement in whole.in_pair(a, b)] + \
        whole.at_end(times[-1])
    for first, end in ((0, 3), (3, 6), (6, None), (2, 4)):
        window = video_pipeline.OutputClock(times[0], F(30), F(1, 1000), first_index=first, end_index=end)
        placed = [placement for a, b in zip(times, times[1:]) for placement in window.in_pair(a, b)] + \
            window.at_end(times[-1])
        assert placed == [p for p in expected if p.index >= first and (end is None or p.index < end)]


# --------------------------------------------------------------------------- equality

@pytest.mark.parametrize("segments", [2, 3])
def test_segmented_png_frames_are_byte_identical(capsys, tmp_path, media, one_piece, segments):
    status, out, err = run_cli(capsys, media["model"], media["clip"], "--save_path", tmp_path / "frames",
                               "--segment_frames", SEGMENT_FRAMES[segments])
    assert status == 0, err
    assert digests(tmp_path / "frames") == digests(one_piece / "frames")
    assert os.listdir(tmp_path) == ["frames"]  # the work folder is gone


@pytest.mark.parametrize("segments", [2, 3])
def test_segmented_h264_has_the_same_timestamps_and_frames_within_encoder_noise(capsys, tmp_path, media,
                                                                                 one_piece, segments):
    save_path = tmp_path / "video.mp4"
    status, _, err = run_cli(capsys, media["model"], media["clip"], "--save_path", save_path,
                             "--segment_frames", SEGMENT_FRAMES[segments])
    assert status == 0, err
    times, frames = decode_video(save_path)
    reference_times, reference_frames = decode_video(one_piece / "video.mp4")
    assert times == reference_times and len(frames) == 47
    lossless = read_png_folder(one_piece / "frames")
    # Each chunk starts with a keyframe, so the two encodings differ; both
    # must be as close to the lossless frames as H.264 at CRF 18 gets.
    error = lambda decoded: np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(decoded, lossless)])
    assert error(frames) < 1.5 and error(reference_frames) < 1.5, (error(frames), error(reference_frames))
    with av.open(str(save_path)) as container:
        keyframes = sum(packet.is_keyframe for packet in container.demux(video=0) if packet.size)
        assert keyframes == segments
        assert container.streams.video[0].average_rate == 48

    def sound(path):
        with av.open(str(path)) as container:
            return [(packet.pts, bytes(packet)) for packet in container.demux(audio=0) if packet.size]
    # The sound is muxed once, unchanged.
    assert sound(save_path) == sound(one_piece / "video.mp4") and len(sound(save_path)) > 40


# --------------------------------------------------------------------------- resuming

def start_program(*argv, **kwargs):
    return subprocess.Popen([sys.executable, str(ROOT / "inference_video.py"), *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, env=ONE_THREAD_ENV, **kwargs)


def finished_segments(workdir):
    chunks = pathlib.Path(workdir) / "chunks"
    return sorted(path.stem for path in chunks.glob("chunk_*.json")) if chunks.is_dir() else []


def test_a_job_killed_with_sigkill_resumes_where_it_stood(capsys, tmp_path, media):
    save_path, workdir = tmp_path / "frames", tmp_path / "frames.parts"
    argv = [media["model"], media["long"], "--save_path", save_path, "--segment_frames", 30]  # 8 segments
    process = start_program(*argv)
    try:
        deadline = time.monotonic() + 300
        # A random point after the first finished segment.
        wanted = 1 + int.from_bytes(os.urandom(1), "little") % 4
        while len(finished_segments(workdir)) < wanted:
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        process.kill()
    done_before = finished_segments(workdir)
    assert 0 < len(done_before) < 8 and not save_path.exists()
    status, out, err = run_cli(capsys, *argv)
    assert status == 0, err
    assert f"resumed: {len(done_before)} of 8 segments were done" in out
    assert not workdir.exists()
    status, _, err = run_cli(capsys, *argv[:2], "--save_path", tmp_path / "one_piece", "--segment_frames", 1000)
    assert status == 0, err
    assert digests(save_path) == digests(tmp_path / "one_piece")


def test_a_work_folder_of_another_job_is_refused(capsys, tmp_path, media):
    save_path = tmp_path / "frames"
    argv = [media["model"], media["clip"], "--save_path", save_path, "--segment_frames", 9]
    status, _, err = run_cli(capsys, *argv, "--keep_workdir")
    assert status == 0, err
    manifest = json.loads((tmp_path / "frames.parts" / "manifest.json").read_text())
    assert manifest["settings"]["--multiplier"] == 2 and manifest["segment_frames"] == 9
    status, _, err = run_cli(capsys, *argv, "--multiplier", 3)
    assert status == 1
    lines = [line for line in error_lines(err) if not line.startswith("warning:")]
    # Said in the user's flags, not in the manifest's field names.
    assert len(lines) == 1 and "belongs to another job" in lines[0]
    assert "it was made with --multiplier 2, this run asks for --multiplier 3" in lines[0]
    assert "--restart" in lines[0]
    status, _, err = run_cli(capsys, *argv, "--fps", 60)
    assert "made with --multiplier 2, this run asks for --fps 60" in err
    status, _, err = run_cli(capsys, *argv, "--multiplier", 3, "--restart")
    assert status == 0, err
    assert len(os.listdir(save_path)) == 3 * 23 + 1


def test_the_same_job_reuses_a_kept_work_folder(capsys, tmp_path, media):
    argv = [media["model"], media["clip"], "--save_path", tmp_path / "frames", "--segment_frames", 9]
    assert run_cli(capsys, *argv, "--keep_workdir")[0] == 0
    first = digests(tmp_path / "frames")
    status, out, err = run_cli(capsys, *argv)
    assert status == 0, err
    assert "resumed: 3 of 3 segments were done" in out and "0 made" not in out
    assert digests(tmp_path / "frames") == first


def test_two_runs_cannot_share_a_work_folder(tmp_path):
    first, second = work_folder.WorkFolder(tmp_path / "w"), work_folder.WorkFolder(tmp_path / "w")
    first.open({"job": 1})
    with pytest.raises(video_jobs.JobError, match="another run is using"):
        second.open({"job": 1})
    first.release()
    second.open({"job": 1})
    second.remove()
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- workers

@pytest.fixture(scope="module")
def two_worker_run(media, tmp_path_factory):
    """--workers 2 (a local Ray instance) on the 240-frame clip, with one worker killed mid-segment."""
    folder = tmp_path_factory.mktemp("workers")
    save_path, workdir = folder / "frames", folder / "frames.parts"
    started = time.monotonic()
    process = start_program(media["model"], media["long"], "--save_path", save_path, "--segment_frames", 60,
                            "--workers", 2, "--threads", 1)
    killed = None
    try:
        deadline = time.monotonic() + 300
        while killed is None and process.poll() is None and time.monotonic() < deadline:
            for path in workdir.rglob(".chunk_*.partial") if workdir.exists() else []:
                # The writing process's id is in the partial file's name.
                pid = int(path.name.split(".")[-2].split("-")[0])
                if pid != process.pid:
                    os.kill(pid, signal.SIGKILL)
                    killed = pid
                    break
            time.sleep(0.05)
        out, err = process.communicate(timeout=600)
        seconds = time.monotonic() - started
    finally:
        process.kill()
    return process.returncode, out, err, killed, save_path, seconds


@pytest.fixture(scope="module")
def long_one_piece(media, tmp_path_factory):
    """The 240-frame clip doubled in one segment, in one process with one thread, as PNG frames.

    One thread, as each worker of the worker runs: frames are byte-identical
    only between runs with as many threads per process (the model's sums
    depend on it).
    """
    save_path = tmp_path_factory.mktemp("long_one_piece") / "frames"
    status = inference_video.main([media["model"], media["long"], "--save_path", str(save_path),
                                   "--segment_frames", "1000", "--threads", "1"])
    assert status == 0
    return save_path


def ray_error_lines(stderr):
    """Ray's own error-level log lines ("[time E pid tid] file.cc:line: ...")."""
    return [line for line in stderr.replace("\r", "\n").splitlines() if re.search(r"\[[^]]* E \d+ \d+\]", line)]


def test_two_workers_give_the_frames_of_one(media, two_worker_run, long_one_piece):
    """--workers 2 with one thread each: byte for byte the frames of one process with --threads 1."""
    status, out, err, killed, save_path, _ = two_worker_run
    assert status == 0, err
    assert killed is not None, "no worker was seen writing"
    assert "2 Ray workers" in out
    # The killed worker's segment was rendered again (Ray restarted it); no
    # half-written chunk was used.
    assert digests(save_path) == digests(long_one_piece)


def test_a_worker_run_prints_no_error_from_ray(two_worker_run):
    """Ray logs an error when an actor that may be restarted has constructor arguments it could lose."""
    status, _, err, _, _, _ = two_worker_run
    assert status == 0, err
    assert "constructor arguments in the object store" not in err
    assert ray_error_lines(err) == []


def bar_seconds(stderr):
    """The elapsed time shown by each drawing of the Interpolating bar, in seconds."""
    seconds = []
    for drawing in re.split(r"[\r\n]", stderr):
        match = re.search(r"Interpolating:.*\[(?:(\d+):)?(\d+):(\d+)<", drawing)
        if match:
            hours, minutes, secs = (int(group or 0) for group in match.groups())
            seconds.append(3600 * hours + 60 * minutes + secs)
    return seconds


def test_the_progress_bar_starts_when_the_workers_are_ready(two_worker_run):
    """Its rate and ETA leave out Ray's start-up: the bar's clock starts when the workers are ready."""
    status, _, err, _, _, seconds = two_worker_run
    assert status == 0, err
    start_up = float(re.search(r"Ray workers ready: .* in ([\d.]+) s", err).group(1))
    shown = bar_seconds(err)
    assert shown and start_up > 2  # (a start-up this short would not show)
    # The bar is drawn after the source's scan and the model's check, and the
    # workers start after that: the whole run took longer than the start-up and
    # what the bar shows together (tqdm shows whole seconds).
    assert shown[-1] + start_up <= seconds + 1, (shown[-1], start_up, seconds)


def test_ctrl_c_on_two_workers_leaves_no_partial_file_and_resumes(capsys, tmp_path, media, long_one_piece):
    """Ctrl-C reaches the workers too (one process group): the driver removes what they leave."""
    save_path, workdir = tmp_path / "frames", tmp_path / "frames.parts"
    argv = [media["model"], media["long"], "--save_path", save_path, "--segment_frames", 30]  # 8 segments
    process = start_program(*argv, "--workers", 2, "--threads", 1, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (finished_segments(workdir) and list(workdir.rglob(".chunk_*.partial"))):
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "kept in" in error_lines(err)[-1]
    done_before = finished_segments(workdir)
    assert 0 < len(done_before) < 8
    assert [path.name for path in workdir.rglob("*") if ".partial" in path.name or path.name.endswith(".tmp")] == []
    status, out, err = run_cli(capsys, *argv, "--threads", 1)  # one process, one thread: the workers' frames
    assert status == 0, err
    assert f"resumed: {len(done_before)} of 8 segments were done" in out
    assert digests(save_path) == digests(long_one_piece)


def test_an_unreachable_cluster_fails_in_seconds(capsys, tmp_path, media):
    started = time.monotonic()
    status, _, err = run_cli(capsys, media["model"], media["clip"], "--save_path", tmp_path / "o.mp4",
                             "--ray", "127.0.0.1:9", "--workers", 2)
    assert status == 1 and time.monotonic() - started < 20
    lines = error_lines(err)
    assert len(lines) == 1 and "cannot reach a Ray cluster at 127.0.0.1:9" in lines[0], err
    assert os.listdir(tmp_path) == []


def test_ray_needs_a_worker_count(capsys, tmp_path, media):
    status, _, err = run_cli(capsys, media["model"], media["clip"], "--save_path", tmp_path / "o.mp4",
                             "--ray", "auto")
    assert status == 1 and "--ray needs --workers" in err


def test_missing_ray_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(video_jobs.JobError, match="pip install"):
        ray_workers.import_ray()


def test_a_worker_that_cannot_see_the_files_says_so(tmp_path):
    job = video_jobs.JobSpec(input_path=str(tmp_path / "not_here.mp4"), folder_fps=F(30),
                             model_path=str(tmp_path / "nor_this.pt"), mode="direct", rate=F(48), multiplier=2,
                             scene_threshold=0.2, start=F(0), timestamp_step=F(0), width=64, height=64, total_frames=3,
                             workdir=str(tmp_path / "nowhere"), chunk_extension=".mkv")
    with pytest.raises(video_jobs.JobError) as error:
        ray_workers.check_storage(job)
    message = str(error.value)
    assert "cannot read the input" in message and "cannot read the model" in message
    assert "cannot write in the work folder" in message and "shared filesystem" in message


# --------------------------------------------------------------------------- codecs and dedup in segments

from test_codecs import codec_param, make_on_twos  # noqa: E402


def decoded_with_pts(path, pixel_format="rgb24"):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [(frame.pts, frame.to_ndarray(format=pixel_format)) for frame in container.decode(stream)]
        return stream.codec_context.name, stream.time_base, frames


@pytest.mark.parametrize("codec, extension", [codec_param("hevc", ".mkv"), codec_param("av1", ".mp4"),
                                              codec_param("prores", ".mov"), codec_param("ffv1", ".mkv"),
                                              codec_param("h264", ".mkv")])
def test_every_codec_joins_from_segments(capsys, tmp_path, media, codec, extension):
    """Chunks of any codec join by packet copy: same codec, timestamps and count as one piece."""
    runs = {}
    for segments, frames in ((1, 1000), (3, 9)):
        save_path = tmp_path / f"{segments}{extension}"
        status, _, err = run_cli(capsys, media["model"], media["clip"], "--codec", codec, "--save_path", save_path,
                                 "--segment_frames", frames)
        assert status == 0, err
        runs[segments] = decoded_with_pts(save_path, "rgb48le" if codec == "prores" else "rgb24")
    (name, time_base, one), (name3, time_base3, three) = runs[1], runs[3]
    assert name == name3 and time_base == time_base3 and len(one) == len(three) == 47
    assert [pts for pts, _ in one] == [pts for pts, _ in three]
    if codec == "ffv1":  # lossless: the very same frames
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(one, three))


def test_dedup_in_segments_keeps_the_same_frames(capsys, tmp_path, media):
    source = make_on_twos(tmp_path / "twos.mp4", count=24)
    outputs = {}
    for frames in (1000, 5):
        save_path = tmp_path / f"frames{frames}"
        status, out, err = run_cli(capsys, media["model"], source, "--dedup", 0.05, "--save_path", save_path,
                                   "--segment_frames", frames)
        assert status == 0, err
        assert "11 of 24 source frames dropped as duplicates" in out, out
        outputs[frames] = digests(save_path)
    assert outputs[1000] == outputs[5]


def test_dedup_across_a_long_hold_at_a_segment_start(capsys, tmp_path, media):
    """A drawing held for 2 s (longer than a seek's reach): the segments that start inside the hold
    must still begin their first pair at the drawing's first frame, as the one-piece run does."""
    from test_inference_video import pattern_frame
    drawing = [i if i < 10 else 10 if i < 61 else i - 50 for i in range(72)]
    source = tmp_path / "hold.mp4"
    with av.open(str(source), "w") as container:
        # A keyframe every 12 frames, so that seeking lands inside the hold.
        stream = container.add_stream("libx264", rate=24, options={"crf": "12", "preset": "ultrafast", "g": "12"})
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for index, number in enumerate(drawing):
            frame = av.VideoFrame.from_ndarray(pattern_frame(number), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    outputs = {}
    for frames in (1000, 20):
        status, out, err = run_cli(capsys, media["model"], source, "--dedup", "--save_path", tmp_path / f"f{frames}",
                                   "--segment_frames", frames)
        assert status == 0, err
        outputs[frames] = digests(tmp_path / f"f{frames}")
    assert outputs[1000] == outputs[20] and len(outputs[20]) == 2 * 72 - 1


# --------------------------------------------------------------------------- scene cuts as segment boundaries

@pytest.mark.parametrize("count, segment_frames, cuts, expected", [
    (25, 10, [], [0, 10, 20]),                    # no cut: every segment_frames
    (25, 10, [7], [0, 7, 17]),                    # a cut within half a segment moves the boundary
    (25, 10, [4, 13, 15], [0, 13, 23]),           # 4 is too early (a segment of 4 < 10 / 2); 13 is nearest to 10
    (100, 10, [16, 14, 33, 60], [0, 14, 24, 33, 43, 53, 60, 70, 80, 90]),
    (11, 10, [5], [0]),                           # one segment: nothing to move
    (25, 10, [24, 0], [0, 10, 20]),               # cuts at the first or last frame cannot start a segment
    (3, 1, [1, 2], [0, 1]),
])
def test_segment_boundaries_move_to_nearby_scene_cuts(count, segment_frames, cuts, expected):
    starts = video_jobs.segment_starts(count, segment_frames, cuts)
    assert starts == expected
    lengths = [b - a for a, b in zip(starts, starts[1:])]
    assert all(segment_frames / 2 <= length <= segment_frames * 1.5 for length in lengths)


@pytest.fixture(scope="module")
def scene_cut_clip(tmp_path_factory):
    # Scene 2 starts at frame 16: a boundary planned at 12 (--segment_frames 12) moves there.
    return make_video(tmp_path_factory.mktemp("cut") / "cut.mp4", count=30, rate=F(24), cut_at=16, audio=None)


def test_the_scan_finds_the_scene_cut_and_the_duplicates(scene_cut_clip):
    with sources.open_source(scene_cut_clip, folder_fps=F(24)) as source:
        scan = video_jobs.scan_source(source.frames_from(source.start_time), scene_threshold=0.2)
        assert scan.times == source.frame_times() and scan.cuts == [16] and (scan.frames, scan.dropped) == (30, 0)
    with sources.open_source(scene_cut_clip, folder_fps=F(24)) as source:
        off = video_jobs.scan_source(source.frames_from(source.start_time), scene_threshold=1)
        assert len(off.times) == 30 and off.cuts == []
    drawings = [20, 50, 80, 200, 230]  # steps of 30 / 255: new drawings; 120 / 255: a new scene
    frames = [sources.SourceFrame(F(i, 24), np.full((64, 96, 3), drawings[i // 2], np.uint8))
              for i in range(10)]  # on twos, a cut at frame 6
    scan = video_jobs.scan_source(iter(frames), scene_threshold=0.2, dedup=0.05)
    assert scan.times == [F(i, 24) for i in (0, 2, 4, 6, 8, 9)] and scan.cuts == [3] and \
        (scan.frames, scan.dropped) == (10, 4)
    assert work_folder.SourceScan.from_json(json.loads(json.dumps(scan.to_json()))) == scan


def test_a_segment_starts_at_the_scene_cut_and_the_frames_are_those_of_one_piece(capsys, tmp_path, media,
                                                                                  scene_cut_clip):
    status, out, err = run_cli(capsys, media["model"], scene_cut_clip, "--save_path", tmp_path / "one",
                               "--segment_frames", 1000)
    assert status == 0 and "1 scene cut (1 frame repeated there)" in out, err
    save_path, workdir = tmp_path / "frames", tmp_path / "frames.parts"
    status, out, err = run_cli(capsys, media["model"], scene_cut_clip, "--save_path", save_path,
                               "--segment_frames", 12, "--keep_workdir")
    assert status == 0 and "1 scene cut" in out, err
    assert digests(save_path) == digests(tmp_path / "one")
    # Segments start at source frames 0, 16 (the cut, not 12) and 28; output frame n is at n / 48 s.
    first_frames = [sorted(os.listdir(chunk))[0] for chunk in sorted((workdir / "chunks").iterdir()) if chunk.is_dir()]
    assert first_frames == ["frame_00000.png", "frame_00032.png", "frame_00056.png"]
    assert json.loads((workdir / "scan.json").read_text())["cuts"] == [16]


def test_a_resumed_job_uses_the_saved_scan(capsys, tmp_path, media, scene_cut_clip, monkeypatch):
    argv = [media["model"], scene_cut_clip, "--save_path", tmp_path / "frames", "--segment_frames", 12]
    assert run_cli(capsys, *argv, "--keep_workdir")[0] == 0
    first = digests(tmp_path / "frames")

    def no_second_pass(*args, **kwargs):
        raise AssertionError("the source was scanned again")

    monkeypatch.setattr(video_jobs, "scan_source", no_second_pass)
    status, out, err = run_cli(capsys, *argv)
    assert status == 0, err
    assert "resumed: 3 of 3 segments were done" in out and digests(tmp_path / "frames") == first


def test_an_interruption_after_the_scan_keeps_it(capsys, tmp_path, media, scene_cut_clip, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(video_jobs.InProcessRenderer, "__call__", interrupted)
    save_path, workdir = tmp_path / "frames", tmp_path / "frames.parts"
    status, _, err = run_cli(capsys, media["model"], scene_cut_clip, "--save_path", save_path, "--segment_frames", 12)
    assert status == 130
    assert error_lines(err)[-1] == f"interrupted: the scan of the source is kept in {workdir}: " \
                                   f"the same command resumes from there"
    assert sorted(os.listdir(workdir)) == [".lock", "chunks", "manifest.json", "scan.json"] and not save_path.exists()
    # Without a scan (one segment), an interrupted job that created the folder leaves nothing.
    status, _, err = run_cli(capsys, media["model"], scene_cut_clip, "--save_path", tmp_path / "other",
                             "--segment_frames", 1000)
    assert status == 130 and error_lines(err)[-1] == "interrupted: nothing was written"
    assert sorted(os.listdir(tmp_path)) == ["frames.parts"]


def test_a_refused_job_leaves_no_work_folder(capsys, tmp_path, media):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a model")
    # A bad model is refused before the source is scanned (which can take minutes).
    status, _, err = run_cli(capsys, broken, media["clip"], "--save_path", tmp_path / "frames",
                             "--segment_frames", 9, "--dedup")
    lines = [line for line in error_lines(err) if not line.startswith("warning:")]
    assert status == 1 and len(lines) == 1 and "neither a TorchScript model" in lines[0], err
    single = make_video(tmp_path / "single.mp4", count=1, rate=F(24), audio=None)
    status, _, err = run_cli(capsys, media["model"], single, "--save_path", tmp_path / "frames", "--dedup")
    assert status == 1 and "at least 2 are needed" in error_lines(err)[-1], err
    assert sorted(os.listdir(tmp_path)) == ["broken.pt", "single.mp4"]


def test_a_scan_that_fails_removes_the_work_folder_it_made(capsys, tmp_path, media, monkeypatch):
    def damaged(*args, **kwargs):
        raise errors.MediaError("the source is damaged")

    monkeypatch.setattr(video_jobs, "scan_source", damaged)
    status, _, err = run_cli(capsys, media["model"], media["clip"], "--save_path", tmp_path / "frames",
                             "--segment_frames", 9)
    assert status == 1 and error_lines(err)[-1] == "error: the source is damaged", err
    assert os.listdir(tmp_path) == []
