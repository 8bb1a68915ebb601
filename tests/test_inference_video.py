"""Tests of inference_video.py and of the media sources and audio it uses, on small videos made here with PyAV.

Test videos show a gradient background, a square moving 3 pixels per frame
and the frame's index as a row of black/white blocks that survive H.264, plus
a 440 Hz AAC (or PCM) sine track. Timing is checked end to end with
``BlendModel``, a stand-in "interpolator" whose frame at dt is the linear
blend (1 - dt) a + dt b, so every output frame tells which source frames and
which t it was made from. Reuse, memory and interruption use the tiny random
FILM model. The command line runs in-process through ``inference_video.main``,
and in subprocesses where peak memory, signals or the exit status matter.
"""
import io
import os
import pathlib
import signal
import subprocess
import sys
import time
from fractions import Fraction
from typing import List, Tuple

import av
import cv2
import numpy as np
import pytest
import torch
from torch import Tensor

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import inference_video  # noqa: E402
import media.images  # noqa: E402
import media.samples  # noqa: E402
import media.sources  # noqa: E402
import runtime  # noqa: E402
import video_pipeline  # noqa: E402
from conftest import (ForwardOnly, StageRecorder, assert_refused_cleanly, cpu_runtime, error_lines,  # noqa: E402,F401
                      random_interpolator, run_main, tree)
from video_pipeline import OutputClock  # noqa: E402

TINY = dict(filters=4, flow_filters=(4, 4, 8, 8))
WIDTH, HEIGHT = 96, 64
CODE_BITS, CODE_BLOCK = 10, 8     # frame index: 10 blocks of 8x8 pixels along the top
SAMPLE_RATE = 48000
# Subprocesses get one thread: on a busy 2-core machine, torch's default
# thread pool spends most of its time waiting for itself.
ONE_THREAD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# --------------------------------------------------------------------------- test media

def pattern_frame(index: int, width: int = WIDTH, height: int = HEIGHT, scene: int = 0) -> np.ndarray:
    """uint8 RGB: gradient background, a moving square, the index as blocks; ``scene`` changes the look."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    if scene == 0:
        background = np.stack([40 + 120 * x / width, 60 + 100 * y / height, np.full_like(x, 90)], axis=2)
    else:  # another place: bright, with the gradient the other way
        background = np.stack([np.full_like(x, 230), 225 - 50 * x / width, 210 - 40 * y / height], axis=2)
    frame = background.astype(np.uint8)
    left = (3 * index) % (width - 16)
    frame[24:40, left:left + 16] = (250, 250, 60) if scene == 0 else (30, 30, 160)
    for bit in range(CODE_BITS):
        value = 235 if index >> bit & 1 else 16
        frame[0:CODE_BLOCK, bit * CODE_BLOCK:(bit + 1) * CODE_BLOCK] = value
    return frame


def read_code(frame: np.ndarray) -> int:
    blocks = [frame[1:CODE_BLOCK - 1, bit * CODE_BLOCK + 1:(bit + 1) * CODE_BLOCK - 1].mean()
              for bit in range(CODE_BITS)]
    return sum(1 << bit for bit, level in enumerate(blocks) if level > 128)


def sine(samples: int, start: int = 0) -> np.ndarray:
    t = (np.arange(samples) + start) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def make_video(path, times=None, count=12, rate=Fraction(30000, 1001), audio="aac", audio_start=0.0,
               audio_seconds=None, rotation=None, cut_at=None, width=WIDTH, height=HEIGHT, time_base=None):
    """Write a test video; frame i is shown at ``times[i]`` seconds (default i / rate).

    ``audio``: "aac", "pcm_s16le" (Matroska only) or None; the sine starts at
    ``audio_start`` seconds. ``cut_at``: first frame of a second scene.
    """
    times = [Fraction(i) / rate for i in range(count)] if times is None else [Fraction(t) for t in times]
    time_base = time_base or 1 / rate
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=rate, options={"crf": "12", "preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.time_base = time_base
        if rotation is not None:
            video.set_display_rotation(rotation)
        sound = container.add_stream(audio, rate=SAMPLE_RATE, layout="stereo") if audio else None
        for index, moment in enumerate(times):
            scene = int(cut_at is not None and index >= cut_at)
            frame = av.VideoFrame.from_ndarray(pattern_frame(index, width, height, scene), format="rgb24")
            frame.pts = round(moment / time_base)
            frame.time_base = time_base
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if sound is not None:
            seconds = audio_seconds if audio_seconds is not None else float(times[-1] + 1 / rate) - audio_start
            total = int(seconds * SAMPLE_RATE)
            first = round(audio_start * SAMPLE_RATE)
            for offset in range(0, total, 1024):
                chunk = sine(min(1024, total - offset), offset)
                samples = np.stack([chunk, chunk])
                if audio.startswith("pcm"):
                    samples = np.round(samples * 32767).astype(np.int16).T.reshape(1, -1)
                    block = av.AudioFrame.from_ndarray(samples, format="s16", layout="stereo")
                else:
                    block = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
                block.sample_rate = SAMPLE_RATE
                block.pts = first + offset
                block.time_base = Fraction(1, SAMPLE_RATE)
                for packet in sound.encode(block):
                    container.mux(packet)
            for packet in sound.encode(None):
                container.mux(packet)
    return str(path)


def decode_video(path) -> Tuple[List[Fraction], List[np.ndarray]]:
    """(times, RGB frames) of the first video stream, decoded the way media.sources does."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = [(frame.pts * stream.time_base, frame.to_ndarray(format="rgb24"))
                   for frame in container.decode(stream)]
    return [Fraction(t) for t, _ in decoded], [pixels for _, pixels in decoded]


def audio_packets(path, index=0):
    with av.open(str(path)) as container:
        stream = container.streams.audio[index]
        time_base = Fraction(stream.time_base)
        return [(packet.pts * time_base, packet.duration * time_base, bytes(packet))
                for packet in container.demux(stream) if packet.size]


def read_png_folder(folder) -> List[np.ndarray]:
    names = sorted(os.listdir(folder))
    return [cv2.imread(os.path.join(folder, name))[:, :, ::-1] for name in names]


# --------------------------------------------------------------------------- models

class BlendModel(torch.nn.Module):
    """A stand-in interpolator with FILM's reuse interface: the frame at dt is (1 - dt) x0 + dt x1."""

    @torch.jit.export
    def encode(self, image: Tensor) -> Tuple[List[Tensor], List[Tensor]]:
        return [image], [image]

    @torch.jit.export
    def estimate_flows(self, features0: List[Tensor], features1: List[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        return [features0[0]], [features1[0]]

    @torch.jit.export
    def synthesize(self, images0: List[Tensor], features0: List[Tensor], images1: List[Tensor],
                   features1: List[Tensor], forward_flows: List[Tensor], backward_flows: List[Tensor],
                   dt: Tensor) -> Tensor:
        time = dt.reshape(-1, 1, 1, 1)
        return images0[0] * (1 - time) + images1[0] * time

    def forward(self, x0: Tensor, x1: Tensor, dt: Tensor) -> Tensor:
        time = dt.reshape(-1, 1, 1, 1)
        return x0 * (1 - time) + x1 * time


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    tiny = random_interpolator(**TINY)
    files = {"tiny": str(folder / "tiny.pt"), "blend": str(folder / "blend.pt"),
             "forward_only": str(folder / "forward_only.pt")}
    torch.jit.script(tiny).save(files["tiny"])
    torch.jit.script(BlendModel()).save(files["blend"])
    torch.jit.script(ForwardOnly(tiny)).save(files["forward_only"])
    return files


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return {
        "ntsc": make_video(folder / "ntsc.mp4", count=12, rate=Fraction(30000, 1001)),
        "film": make_video(folder / "film.mp4", count=11, rate=Fraction(24)),
        "vfr": make_video(folder / "vfr.mp4", times=[Fraction(k, 60) for k in (0, 2, 4, 5, 9, 10, 14, 16)],
                          rate=Fraction(30), time_base=Fraction(1, 600)),
        "cut": make_video(folder / "cut.mp4", count=10, rate=Fraction(24), cut_at=5),
        "pcm_mkv": make_video(folder / "pcm.mkv", count=12, rate=Fraction(24), audio="pcm_s16le"),
        "mkv": make_video(folder / "ntsc.mkv", count=12, rate=Fraction(30000, 1001)),
        "late_audio": make_video(folder / "late_audio.mp4", count=24, rate=Fraction(24), audio_start=0.5,
                                 audio_seconds=0.5),
        "late_video": make_video(folder / "late_video.mp4", times=[Fraction(12 + i, 24) for i in range(12)],
                                 rate=Fraction(24), audio_seconds=1.0),
        "late_video_pcm": make_video(folder / "late_video_pcm.mkv", times=[Fraction(12 + i, 24) for i in range(12)],
                                     rate=Fraction(24), audio="pcm_s16le", audio_seconds=1.0),
        "rotated": make_video(folder / "rotated.mp4", count=6, rate=Fraction(24), rotation=90),
        "silent": make_video(folder / "silent.mp4", count=6, rate=Fraction(24), audio=None),
    }


def run_cli(capsys, *argv):
    return run_main(inference_video.main, capsys, *argv)


def run_program(*argv, **kwargs):
    return subprocess.run([sys.executable, str(ROOT / "inference_video.py"), *map(str, argv)],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env=ONE_THREAD_ENV, **kwargs)


def expected_placements(source_times, rate):
    """[(a, t)] per output frame: an independent re-statement of the timing rule for exact timestamps."""
    placements, n = [], 0
    while source_times[0] + Fraction(n) / rate <= source_times[-1]:
        moment = source_times[0] + Fraction(n) / rate
        a = max(i for i, s in enumerate(source_times) if s <= moment)
        t = Fraction(0) if a == len(source_times) - 1 else \
            (moment - source_times[a]) / (source_times[a + 1] - source_times[a])
        placements.append((a, t))
        n += 1
    return placements


def assert_blends(frames, source_frames, placements):
    """Output frames of BlendModel: pass-through frames identical, the others the blend at t (±1 rounding)."""
    assert len(frames) == len(placements)
    for index, (frame, (a, t)) in enumerate(zip(frames, placements)):
        if t == 0:
            np.testing.assert_array_equal(frame, source_frames[a], err_msg=f"output {index}")
        else:
            blend = (1 - float(t)) * source_frames[a].astype(np.float64) + float(t) * source_frames[a + 1]
            difference = np.abs(frame.astype(np.float64) - blend)
            assert difference.max() <= 1, f"output {index}: not frame {a} + {t} (off by {difference.max()})"


# --------------------------------------------------------------------------- timing

def clock_run(clock, times):
    """Every pair's placements, then the end's."""
    pairs = [clock.in_pair(a, b) for a, b in zip(times, times[1:])]
    return pairs + [clock.at_end(times[-1])]


def ts(pairs):
    return [[p.t for p in pair] for pair in pairs]


F = Fraction


def test_clock_24_to_60_fps():
    pairs = clock_run(OutputClock(F(0), F(60)), [F(i, 24) for i in range(5)])
    assert ts(pairs) == [[0, F(2, 5), F(4, 5)], [F(1, 5), F(3, 5)], [0, F(2, 5), F(4, 5)], [F(1, 5), F(3, 5)], [0]]
    assert [p.index for pair in pairs for p in pair] == list(range(11))


def test_clock_multiplier_on_constant_rate_input():
    rate = F(30000, 1001)
    pairs = clock_run(OutputClock(F(0), 3 * rate, F(1, 30000), multiplier=3), [i / rate for i in range(4)])
    assert ts(pairs) == [[0, F(1, 3), F(2, 3)]] * 3 + [[0]]


def test_clock_absorbs_millisecond_timestamps():
    # 29.97 fps in Matroska: times rounded to whole milliseconds.
    times = [F(round(F(i * 1001, 30)), 1000) for i in range(8)]
    assert times[:4] == [0, F(33, 1000), F(67, 1000), F(100, 1000)]
    doubled = clock_run(OutputClock(F(0), F(60000, 1001), F(1, 1000), multiplier=2), times)
    assert ts(doubled) == [[0, F(1, 2)]] * 7 + [[0]]
    # --fps has no multiplier: source frames are still recognised, t are the real ones.
    exact = ts(clock_run(OutputClock(F(0), F(60000, 1001), F(1, 1000)), times))
    assert [pair[0] for pair in exact] == [0] * 8
    assert exact[0][1] == (F(1001, 60000)) / F(33, 1000)


def test_clock_variable_frame_rate():
    times = [F(k, 60) for k in (0, 2, 4, 5, 9, 10, 14, 16)]
    pairs = clock_run(OutputClock(F(0), F(30)), times)
    assert ts(pairs) == [[0], [0], [0], [F(1, 4), F(3, 4)], [], [0, F(1, 2)], [0], [0]]
    # Recursive mode rounds every t to a multiple of 1/K (halves up).
    rounded = clock_run(OutputClock(F(0), F(30), multiplier=2, multiples_only=True), times)
    assert ts(rounded)[3] == [F(1, 2), 1]


def test_clock_starts_at_the_first_frame_and_checks_arguments():
    pairs = clock_run(OutputClock(F(1, 2), F(48)), [F(1, 2), F(13, 24)])
    assert ts(pairs) == [[0, F(1, 2)], [0]]
    with pytest.raises(ValueError, match="increase"):
        OutputClock(F(0), F(30)).in_pair(F(1), F(1))
    with pytest.raises(ValueError, match="rate"):
        OutputClock(F(0), F(0))
    with pytest.raises(ValueError, match="multiplier"):
        OutputClock(F(0), F(30), multiples_only=True)


# --------------------------------------------------------------------------- helpers

def test_scene_metric_separates_motion_from_cuts():
    """The measurements behind the default threshold (0.2), see docs/video.md."""
    threshold = video_pipeline.DEFAULT_SCENE_THRESHOLD
    difference = lambda a, b: video_pipeline.scene_difference(video_pipeline.scene_thumbnail(a),
                                                               video_pipeline.scene_thumbnail(b))
    one, two = (media.samples.to_uint8(media.images.read_image(str(ROOT / "photos" / name)))
                for name in ("one.png", "two.png"))
    assert difference(one, two) < 0.03                                   # measured 0.023
    assert difference(one, np.ascontiguousarray(np.roll(one, 48, axis=1))) < 0.01  # a fast pan is compensated
    assert difference(one, one[::-1, ::-1].copy()) > 0.1                 # same colours, other layout: 0.13
    motion = [difference(pattern_frame(i), pattern_frame(i + 1)) for i in range(6)]
    assert max(motion) < threshold / 4                                   # about 0.01-0.03
    assert difference(pattern_frame(4), pattern_frame(5, scene=1)) > 1.5 * threshold  # 0.35
    assert difference(one, np.full_like(one, 255)) > threshold
    assert difference(one, one) == 0


# --------------------------------------------------------------------------- timing end to end

def test_24_to_60_fps(capsys, tmp_path, model_files, videos):
    status, out, err = run_cli(capsys, model_files["blend"], videos["film"], "--fps", 60, "--save_path", tmp_path / "o")
    assert status == 0, err
    source_times, source_frames = decode_video(videos["film"])
    placements = expected_placements(source_times, F(60))
    assert len(placements) == 26
    assert_blends(read_png_folder(tmp_path / "o"), source_frames, placements)
    assert "11 source frames (96x64) -> 26 frames at 60 fps: 20 made" in out


def test_ntsc_doubled_to_mp4_with_exact_timing_and_copied_audio(capsys, tmp_path, model_files, videos):
    save_path = tmp_path / "double.mp4"
    status, out, err = run_cli(capsys, model_files["blend"], videos["ntsc"], "--save_path", save_path)
    assert status == 0, err
    with av.open(str(save_path)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == F(60000, 1001)
        times = [frame.pts * stream.time_base for frame in container.decode(stream)]
    assert times == [F(1001 * n, 60000) for n in range(23)]
    _, frames = decode_video(save_path)
    assert [read_code(frame) for frame in frames[::2]] == list(range(12))  # source frames at even positions
    assert audio_packets(save_path) == audio_packets(videos["ntsc"])
    assert "audio copied #1 aac" in out


def test_matroska_input_and_output(capsys, tmp_path, model_files, videos):
    # Millisecond timestamps: in-betweens still exactly halfway, source frames still passed through.
    status, _, err = run_cli(capsys, model_files["blend"], videos["mkv"], "--save_path", tmp_path / "o")
    assert status == 0, err
    _, source_frames = decode_video(videos["mkv"])
    assert_blends(read_png_folder(tmp_path / "o"), source_frames,
                  [(n // 2, F(n % 2, 2)) for n in range(23)])
    # AAC into Matroska is copied too (Matroska cannot start below 0, so its
    # muxer moves every stream by the priming packet: compare durations and bytes).
    status, out, err = run_cli(capsys, model_files["blend"], videos["ntsc"], "--save_path", tmp_path / "o.mkv")
    assert status == 0, err
    copied, original = audio_packets(tmp_path / "o.mkv"), audio_packets(videos["ntsc"])
    assert [data for _, _, data in copied] == [data for _, _, data in original]
    with av.open(str(tmp_path / "o.mkv")) as container:
        video = container.streams.video[0]
        assert container.streams.audio  # the sound went with the picture
        first_video = next(container.decode(video)).pts * video.time_base
    assert abs(first_video - copied[0][0] - (0 - original[0][0])) <= F(1, 1000)  # in sync to the millisecond


def test_variable_frame_rate(capsys, tmp_path, model_files, videos):
    source_times, source_frames = decode_video(videos["vfr"])
    assert source_times == [F(k, 60) for k in (0, 2, 4, 5, 9, 10, 14, 16)]
    status, _, err = run_cli(capsys, model_files["blend"], videos["vfr"], "--fps", 30, "--save_path", tmp_path / "o")
    assert status == 0, err
    placements = expected_placements(source_times, F(30))
    assert [t for _, t in placements] == [0, 0, 0, F(1, 4), F(3, 4), 0, F(1, 2), 0, 0]
    assert_blends(read_png_folder(tmp_path / "o"), source_frames, placements)

    # --multiplier: K times the average rate, the same uniform grid.
    with av.open(videos["vfr"]) as container:
        average = media.sources.tidy_rate(container.streams.video[0].average_rate)
    status, out, err = run_cli(capsys, model_files["blend"], videos["vfr"], "--multiplier", 2,
                               "--save_path", tmp_path / "m.mp4")
    assert status == 0, err
    with av.open(str(tmp_path / "m.mp4")) as container:
        assert container.streams.video[0].average_rate == 2 * average
    status, _, err = run_cli(capsys, model_files["blend"], videos["vfr"], "--multiplier", 2,
                             "--save_path", tmp_path / "m")
    assert_blends(read_png_folder(tmp_path / "m"), source_frames, expected_placements(source_times, 2 * average))


def test_scene_cut_repeats_the_nearer_frame(capsys, tmp_path, model_files, videos):
    status, out, err = run_cli(capsys, model_files["blend"], videos["cut"], "--multiplier", 4,
                               "--save_path", tmp_path / "o")
    assert status == 0, err
    assert "1 scene cut (3 frames repeated there)" in out
    _, source_frames = decode_video(videos["cut"])
    placements = [(n // 4, F(n % 4, 4)) for n in range(37)]
    # Between frames 4 and 5 (the cut): frame 4 at t = 1/4, frame 5 at 1/2 and 3/4.
    for n, a in ((17, 4), (18, 5), (19, 5)):
        placements[n] = (a, F(0))
    assert_blends(read_png_folder(tmp_path / "o"), source_frames, placements)

    status, out, err = run_cli(capsys, model_files["blend"], videos["cut"], "--multiplier", 4,
                               "--scene_threshold", 1, "--save_path", tmp_path / "off")
    assert status == 0 and "0 scene cuts" in out
    assert_blends(read_png_folder(tmp_path / "off"), source_frames, [(n // 4, F(n % 4, 4)) for n in range(37)])


def test_folder_of_frames_in_natural_order(capsys, tmp_path, model_files):
    folder = tmp_path / "shots"
    folder.mkdir()
    for index in range(12):
        cv2.imwrite(str(folder / f"frame{index + 1}.png"), pattern_frame(index)[:, :, ::-1])
    (folder / "notes.txt").write_text("not a frame")
    cv2.imwrite(str(folder / ".hidden.png"), pattern_frame(99)[:, :, ::-1])
    status, out, err = run_cli(capsys, model_files["blend"], folder, "--input_fps", 12)
    assert status == 0, err
    save_path = tmp_path / "shots_24fps.mp4"   # default name, beside the folder
    assert "-> 23 frames at 24 fps" in out and str(save_path) in out
    _, frames = decode_video(save_path)
    assert [read_code(frame) for frame in frames[::2]] == list(range(12))

    status, _, err = run_cli(capsys, model_files["blend"], folder, "--save_path", tmp_path / "o")
    assert status == 0, err
    assert_blends(read_png_folder(tmp_path / "o"), [pattern_frame(i) for i in range(12)],
                  [(n // 2, F(n % 2, 2)) for n in range(23)])


def test_default_output_name(capsys, tmp_path, model_files, videos):
    source = tmp_path / "clip.mp4"
    source.write_bytes(pathlib.Path(videos["silent"]).read_bytes())
    status, out, err = run_cli(capsys, model_files["blend"], source, "--fps", "60000/1001")
    assert status == 0, err
    assert (tmp_path / "clip_59.94fps.mp4").is_file()


def test_rotation_metadata_is_applied(capsys, tmp_path, model_files, videos):
    with av.open(videos["rotated"]) as container:
        assert next(container.decode(video=0)).rotation == 90
    status, _, err = run_cli(capsys, model_files["blend"], videos["rotated"], "--save_path", tmp_path / "o")
    assert status == 0, err
    _, stored = decode_video(videos["rotated"])       # as stored: 96x64
    frames = read_png_folder(tmp_path / "o")
    assert frames[0].shape == (WIDTH, HEIGHT, 3)
    upright = [np.rot90(frame) for frame in stored]   # 90 degrees counter-clockwise
    assert_blends(frames, upright, [(n // 2, F(n % 2, 2)) for n in range(11)])


# --------------------------------------------------------------------------- audio

def decoded_audio(path):
    """(first sample's time, number of samples per channel) of the first audio stream."""
    with av.open(str(path)) as container:
        frames = list(container.decode(audio=0))
    return frames[0].time, sum(frame.samples for frame in frames)


def test_audio_the_container_cannot_take_is_reencoded(capsys, tmp_path, model_files, videos):
    status, out, err = run_cli(capsys, model_files["blend"], videos["pcm_mkv"], "--save_path", tmp_path / "o.mp4")
    assert status == 0, err
    assert "re-encoded to AAC #1 pcm_s16le" in out
    with av.open(str(tmp_path / "o.mp4")) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
    start, samples = decoded_audio(tmp_path / "o.mp4")
    original_start, original_samples = decoded_audio(videos["pcm_mkv"])
    assert abs(start - original_start) < 0.002
    assert abs(samples - original_samples) <= 1024  # AAC rounds up to whole 1024-sample frames


def test_audio_starting_after_the_video_stays_in_sync(capsys, tmp_path, model_files, videos):
    status, _, err = run_cli(capsys, model_files["blend"], videos["late_audio"], "--save_path", tmp_path / "o.mp4")
    assert status == 0, err
    original = audio_packets(videos["late_audio"])
    assert original[0][0] > F(9, 20)          # starts near 0.5 s, the video at 0
    assert audio_packets(tmp_path / "o.mp4") == original


def test_video_starting_after_the_audio_stays_in_sync(capsys, tmp_path, model_files, videos):
    source_times, _ = decode_video(videos["late_video"])
    assert source_times[0] == F(1, 2)
    status, _, err = run_cli(capsys, model_files["blend"], videos["late_video"], "--save_path", tmp_path / "o.mp4")
    assert status == 0, err
    _, frames = decode_video(tmp_path / "o.mp4")
    assert read_code(frames[0]) == 0 and len(frames) == 23
    original, copied = audio_packets(videos["late_video"]), audio_packets(tmp_path / "o.mp4")
    # Sound before the first frame is dropped but for one packet of pre-roll;
    # the rest is unchanged, 0.5 s earlier, like the video.
    first_kept = next(i for i, (start, duration, _) in enumerate(original) if start + duration > F(1, 2)) - 1
    assert copied == [(start - F(1, 2), duration, data) for start, duration, data in original[first_kept:]]


def test_reencoded_audio_is_cut_to_start_with_the_video(capsys, tmp_path, model_files, videos):
    status, out, err = run_cli(capsys, model_files["blend"], videos["late_video_pcm"],
                               "--save_path", tmp_path / "o.mp4")
    assert status == 0 and "re-encoded to AAC" in out, err
    start, samples = decoded_audio(tmp_path / "o.mp4")
    assert abs(start) < 0.002
    assert abs(samples - SAMPLE_RATE // 2) <= 1024  # the second half of the 1 s sine
    with av.open(str(tmp_path / "o.mp4")) as container:
        decoded = np.concatenate([frame.to_ndarray()[0] for frame in container.decode(audio=0)])
    # The sound at output time 0 is the sine at input time 0.5 s: same phase.
    expected = sine(2000, SAMPLE_RATE // 2)
    lag = np.argmax([np.dot(decoded[k:k + 1500], expected[:1500]) for k in range(0, 200)])
    assert lag <= 2


# --------------------------------------------------------------------------- model work

def source_frames_of(path):
    with media.sources.open_source(str(path), folder_fps=F(30)) as source:
        return list(source.frames_from(source.start_time)), source


@pytest.mark.parametrize("mode", video_pipeline.VIDEO_MODES)
def test_features_once_per_frame_and_flows_once_per_pair(model_files, videos, mode):
    frames, source = source_frames_of(videos["ntsc"])
    with torch.jit.optimized_execution(False):
        model = runtime.load_model(model_files["tiny"])
        forward_only = runtime.load_model(model_files["forward_only"])
        recorder = StageRecorder(model)
        outputs, plain = [], []
        for target, runner in ((outputs, video_pipeline.PairRenderer(cpu_runtime(recorder), mode)),
                               (plain, video_pipeline.PairRenderer(cpu_runtime(forward_only), mode))):
            clock = OutputClock(frames[0].time, 4 * source.rate, source.timestamp_step, multiplier=4,
                                multiples_only=mode == "recursive")
            summary = video_pipeline.interpolate_stream(iter(frames), clock, runner, target.append,
                                                         scene_threshold=1.0)
    assert not runtime.supports_reuse(forward_only)
    pairs = len(frames) - 1
    assert summary.output_frames == len(outputs) == len(plain) == 4 * pairs + 1 and summary.made == 3 * pairs
    for frame, reference in zip(outputs, plain):
        assert np.abs(frame.astype(int) - reference).max() <= 1
    if mode == "direct":
        assert recorder.calls == dict(encode=len(frames), estimate_flows=pairs, synthesize=3 * pairs, forward=0)
        assert recorder.peak_live == 2
    else:  # the midpoint is encoded too; three pairs of frames per source pair
        assert recorder.calls == dict(encode=len(frames) + pairs, estimate_flows=3 * pairs,
                                      synthesize=3 * pairs, forward=0)
        assert recorder.peak_live == 3
    assert recorder.live <= 1  # only the last source frame's pyramids, until it is dropped


def test_recursive_mode_makes_midpoints_of_midpoints(model_files, videos):
    frames, source = source_frames_of(videos["ntsc"])
    frames = frames[:2]
    with torch.jit.optimized_execution(False), torch.no_grad():
        model = runtime.load_model(model_files["tiny"])
        outputs = []
        video_pipeline.interpolate_stream(iter(frames), OutputClock(frames[0].time, 4 * source.rate,
                                                                     source.timestamp_step, 4, True),
                                           video_pipeline.PairRenderer(cpu_runtime(model), "recursive"), outputs.append,
                                           scene_threshold=1.0)
        (a, crop), (b, _) = (runtime.pad_to_multiple(runtime.image_to_tensor(media.samples.to_float(f.pixels)))
                             for f in frames)
        half = torch.full((1, 1), 0.5)
        middle = model(a, b, half).clamp(0, 1)
        expected = [model(a, middle, half).clamp(0, 1), middle, model(middle, b, half).clamp(0, 1)]
    assert len(outputs) == 5
    for made, reference in zip(outputs[1:4], expected):
        assert np.abs(made.astype(int) - runtime.tensor_to_samples(reference, crop)).max() <= 1


def test_tiny_model_end_to_end(capsys, tmp_path, model_files, videos):
    status, out, err = run_cli(capsys, model_files["tiny"], videos["ntsc"], "--multiplier", 3,
                               "--save_path", tmp_path / "o.mp4")
    assert status == 0, err
    assert "-> 34 frames at 89.91 fps: 22 made (direct mode, cpu" in out
    assert "Interpolating" in err and "34/34" in err   # the progress bar: frame counts
    status, out, err = run_cli(capsys, model_files["forward_only"], videos["ntsc"], "--mode", "recursive",
                               "--save_path", tmp_path / "r")
    assert status == 0, err
    assert len(os.listdir(tmp_path / "r")) == 23
    assert any("only has forward()" in line for line in error_lines(err))


# --------------------------------------------------------------------------- bad input

@pytest.fixture()
def bad_inputs(tmp_path, model_files, videos):
    files = {"model": model_files["blend"], "film": videos["film"]}
    files["one_frame"] = make_video(tmp_path / "one_frame.mp4", count=1, rate=F(24))
    with av.open(str(tmp_path / "sound.m4a"), "w", format="mp4") as container:
        sound = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        block = av.AudioFrame.from_ndarray(sine(4800)[None], format="fltp", layout="mono")
        block.sample_rate, block.pts = SAMPLE_RATE, 0
        for packet in [*sound.encode(block), *sound.encode(None)]:
            container.mux(packet)
    files["audio_only"] = str(tmp_path / "sound.m4a")
    files["junk"] = str(tmp_path / "junk.mp4")
    pathlib.Path(files["junk"]).write_bytes(os.urandom(3000))
    for name, sizes in (("empty", []), ("single", [(64, 96)]), ("mixed", [(64, 96), (64, 96), (48, 96)])):
        folder = tmp_path / name
        folder.mkdir()
        for index, (height, width) in enumerate(sizes):
            cv2.imwrite(str(folder / f"f{index}.png"), pattern_frame(index, width, height))
        files[name] = str(folder)
    (tmp_path / "empty" / "readme.txt").write_text("no frames here")
    return files


BAD_FILE_CASES = {
    "missing input": (["{model}", "{tmp}/nope.mp4"], "input not found"),
    "unreadable file": (["{model}", "{junk}"], "cannot read"),
    "no video stream": (["{model}", "{audio_only}"], "no video stream in"),
    "one frame": (["{model}", "{one_frame}"], "only 1 video frame: at least 2 are needed"),
    "folder without images": (["{model}", "{empty}"], "no images in the folder"),
    "folder with one image": (["{model}", "{single}"], "only 1 image"),
    "folder with mixed sizes": (["{model}", "{mixed}", "--save_path", "{tmp}/out.mp4"], "must have one size"),
    "fps below the source": (["{model}", "{film}", "--fps", "23.9"], "this tool does not drop frames"),
    "missing model": (["{tmp}/nope.pt", "{film}"], "model file not found"),
    "gif": (["{model}", "{film}", "--save_path", "{tmp}/out.gif"], "GIF output is not offered"),
    "output is the input": (["{model}", "{film}", "--save_path", "{film}"], "the output path is the input"),
    "output is the input folder": (["{model}", "{mixed}", "--save_path", "{mixed}"], "the output folder is the input"),
    # Said of the path the user typed, not of the work folder beside it.
    "unwritable output": (["{model}", "{film}", "--save_path", "/proc/out.mp4"],
                          "cannot write the output /proc/out.mp4: /proc takes no new file"),
    "read-only output folder": (["{model}", "{film}", "--save_path", "/sys/y.mkv"],
                                "cannot write the output /sys/y.mkv"),
    **({} if torch.cuda.is_available() else {
        # Local Ray workers asking for a GPU that Ray cannot see would never start.
        "gpu workers without a GPU": (["{model}", "{film}", "--gpu", "--workers", "2"], "needs a CUDA GPU")}),
}


@pytest.mark.parametrize("case", BAD_FILE_CASES)
def test_bad_input_gives_one_line_and_leaves_nothing(capsys, tmp_path, bad_inputs, case):
    argv, words = BAD_FILE_CASES[case]
    assert_refused_cleanly(inference_video.main, capsys, tmp_path,
                           [a.format(tmp=tmp_path, **bad_inputs) for a in argv], words)


def test_fps_equal_to_the_source_rate_is_accepted(capsys, tmp_path, bad_inputs):
    # 29.97 typed for a 30000/1001 video is not "lower than the source".
    status, out, err = run_cli(capsys, bad_inputs["model"], bad_inputs["film"], "--fps", 24,
                               "--save_path", tmp_path / "o")
    assert status == 0 and "0 made" in out, err


@pytest.mark.parametrize("argv, words", [
    (["--multiplier", "1"], "--multiplier: must be at least 2"),
    (["--multiplier", "two"], "--multiplier: expected a whole number"),
    (["--fps", "0"], "--fps: must be greater than 0"),
    (["--fps", "-24"], "--fps: must be greater than 0"),
    (["--fps", "fast"], "--fps: expected a number"),
    (["--multiplier", "2", "--fps", "60"], "not allowed with"),
    (["--scene_threshold", "1.5"], "--scene-threshold: must be between 0 and 1"),
    (["--mode", "balanced"], "invalid choice"),
    (["--mode", "recursive", "--multiplier", "3"], "needs --multiplier 2, 4, 8"),
    (["--mode", "recursive", "--fps", "60"], "needs --multiplier 2, 4, 8"),
])
def test_bad_arguments_give_one_line(capsys, bad_inputs, argv, words):
    with pytest.raises(SystemExit) as exit_info:
        inference_video.main([bad_inputs["model"], bad_inputs["film"], *argv])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and words in lines[0]


def test_ntsc_rate_typed_as_29_97_is_accepted(capsys, tmp_path, model_files, videos):
    status, _, err = run_cli(capsys, model_files["blend"], videos["ntsc"], "--fps", "29.97",
                             "--save_path", tmp_path / "o")
    assert status == 0, err


# --------------------------------------------------------------------------- interruption

def test_interrupt_leaves_nothing(capsys, tmp_path, monkeypatch, model_files, videos):
    real_interpolate = video_pipeline.interpolate_stream

    def interrupted(frames, clock, renderer, write, **kwargs):
        def write_then_stop(frame):
            write(frame)
            if clock.next_index >= 5:
                raise KeyboardInterrupt
        return real_interpolate(frames, clock, renderer, write_then_stop, **kwargs)

    monkeypatch.setattr(video_pipeline, "interpolate_stream", interrupted)
    (tmp_path / "keep.mp4").write_bytes(b"previous")
    for name in ["new/out.mp4", "keep.mp4", "frames/"]:
        status, _, err = run_cli(capsys, model_files["blend"], videos["ntsc"], "--save_path", tmp_path / name)
        assert status == 130 and "interrupted" in err
    assert tree(tmp_path) == ["keep.mp4"] and (tmp_path / "keep.mp4").read_bytes() == b"previous"


@pytest.fixture(scope="module")
def long_videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("long")
    return {count: make_video(folder / f"long{count}.mp4", count=count, rate=F(24), width=64, height=64)
            for count in (50, 500)}


def interrupt_program(tmp_path, model, video, signal_number, *extra):
    """Starts inference_video.py, sends the signal once it is writing, returns (status, stdout, stderr)."""
    save_path = tmp_path / "out.mp4"
    process = subprocess.Popen([sys.executable, str(ROOT / "inference_video.py"), model, video,
                                "--save_path", str(save_path), *extra],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL, env=ONE_THREAD_ENV)
    try:
        deadline = time.monotonic() + 120
        while not any(path.name.endswith(".partial") for path in tmp_path.rglob("*")):
            assert process.poll() is None and time.monotonic() < deadline, "never started writing"
            time.sleep(0.05)
        time.sleep(0.5)  # well into the run (it takes several seconds)
        process.send_signal(signal_number)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    return process.returncode, out, err


def assert_interrupted_cleanly(tmp_path, err):
    """Nothing at the output path, no partial file; finished segments kept only with a note saying so."""
    last = error_lines(err)[-1]
    assert last.startswith("interrupted: "), err
    assert not [path for path in tmp_path.rglob("*") if path.name.endswith(".partial")]
    assert not (tmp_path / "out.mp4").exists()
    if last == "interrupted: nothing was written":
        assert os.listdir(tmp_path) == []
    else:
        assert "kept in" in last and "resumes" in last  # segments, or the scan of the source
        assert os.listdir(tmp_path) == ["out.mp4.parts"]


def test_ctrl_c_leaves_no_half_written_file(tmp_path, model_files, long_videos):
    status, out, err = interrupt_program(tmp_path, model_files["tiny"], long_videos[500], signal.SIGINT)
    assert status == 130, err
    assert out == ""
    assert_interrupted_cleanly(tmp_path, err)


# --------------------------------------------------------------------------- memory

MEASURE_PEAK_RSS = """
import resource, subprocess, sys
result = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(result.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def peak_rss_mb(*argv) -> float:
    """Peak resident memory of the program, in MB, measured from a fresh parent process."""
    result = subprocess.run([sys.executable, "-c", MEASURE_PEAK_RSS, sys.executable, str(ROOT / "inference_video.py"),
                             *map(str, argv)], capture_output=True, text=True, timeout=600, env=ONE_THREAD_ENV)
    status, kilobytes = result.stdout.split()
    assert status == "0", result.stderr
    return int(kilobytes) / 1024  # ru_maxrss is in kilobytes on Linux


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss units differ by platform")
def test_memory_does_not_grow_with_the_length(tmp_path, model_files, long_videos):
    short = peak_rss_mb(model_files["tiny"], long_videos[50], "--save_path", tmp_path / "short.mp4")
    long = peak_rss_mb(model_files["tiny"], long_videos[500], "--save_path", tmp_path / "long.mp4")
    with av.open(str(tmp_path / "long.mp4")) as container:
        assert container.streams.video[0].frames == 999
    assert long - short < 30, f"peak RSS {short:.0f} MB for 50 frames, {long:.0f} MB for 500"


# --------------------------------------------------------------------------- the program

def test_program_exit_status_and_stderr(tmp_path, model_files, videos):
    result = run_program(model_files["blend"], videos["film"], "--multiplier", "1")
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and "--multiplier" in result.stderr
    result = run_program(model_files["blend"], tmp_path / "nope.mp4", "--save_path", tmp_path / "out.mp4")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [f"error: input not found: {tmp_path / 'nope.mp4'}"]
    assert os.listdir(tmp_path) == []


def test_help_documents_everything():
    result = run_program("--help")
    assert result.returncode == 0
    for words in ["model_path", "input", "--save_path", "--multiplier", "--fps", "--mode", "direct", "recursive",
                  "--scene_threshold", "--input_fps", "--gpu", "--precision", "bf16", "--fp16", "natural order",
                  "variable-frame-rate",
                  "does not drop frames", "Audio streams are copied", "re-encoded to AAC", "Rotation",
                  ".mp4", ".mkv", "PNG", "exit status", "Ctrl-C", "trained"]:
        assert words in result.stdout, words


# --------------------------------------------------------------------------- damaged and unusual inputs

def faststart_copy(source, target):
    """The same streams, remuxed with the index at the front (as web uploads are)."""
    with av.open(str(source)) as reader, av.open(str(target), "w", options={"movflags": "+faststart"}) as writer:
        streams = {stream.index: writer.add_stream_from_template(stream) for stream in reader.streams}
        for packet in reader.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                writer.mux(packet)
    return str(target)


def cut_short(source, target, fraction):
    data = pathlib.Path(source).read_bytes()
    pathlib.Path(target).write_bytes(data[:int(len(data) * fraction)])
    return str(target)


@pytest.fixture(scope="module")
def cut_videos(tmp_path_factory):
    """95-frame clips cut in half: a faststart MP4 (index intact) and a Matroska file."""
    folder = tmp_path_factory.mktemp("cut")
    whole_mp4 = make_video(folder / "whole.mp4", count=95, rate=F(24), width=160, height=96, audio=None)
    whole_mkv = make_video(folder / "whole.mkv", count=95, rate=F(24), width=160, height=96, audio=None)
    faststart = faststart_copy(whole_mp4, folder / "faststart.mp4")
    return {"mp4": cut_short(faststart, folder / "half.mp4", 0.5),
            "mkv": cut_short(whole_mkv, folder / "half.mkv", 0.5),
            # The index of a plain MP4 is at its end: cut off, nothing can be read.
            "no_index": cut_short(whole_mp4, folder / "no_index.mp4", 0.5),
            "whole_mp4": faststart, "whole_mkv": whole_mkv}


@pytest.mark.parametrize("kind", ["mp4", "mkv"])
@pytest.mark.parametrize("job", [[], ["--segment_frames", "10"], ["--dedup"]], ids=["one_segment", "segments", "dedup"])
def test_a_video_cut_short_is_used_up_to_the_cut_with_one_warning(capsys, tmp_path, model_files, cut_videos, kind,
                                                                   job):
    """Decode what can be decoded, finish from those frames, say what was lost (exit 0): once, also when the
    source is scanned first (several segments, --dedup) and the segments read it again."""
    times, frames = decode_video_leniently(cut_videos[kind])
    assert 20 < len(frames) < 60  # the cut lost frames, some remain
    status, out, err = run_cli(capsys, model_files["blend"], cut_videos[kind], "--save_path", tmp_path / "o", *job)
    assert status == 0, err
    warnings = [line for line in error_lines(err) if line.startswith("warning:")]
    assert len(warnings) == 1, err
    assert "ends early" in warnings[0] and "could not be read" in warnings[0]
    # Where and how much: the last decoded frame's time and the seconds lost (95 frames of 1/24 s).
    assert f"{float(times[-1]):.2f} s" in warnings[0]
    lost = 95 / 24 - float(times[-1] + F(1, 24))
    assert any(f"{lost + error:.2f} s" in warnings[0] for error in (0, 0.01, -0.01))
    written = read_png_folder(tmp_path / "o")
    assert len(written) == 2 * len(frames) - 1
    assert_blends(written, frames, [(n // 2, F(n % 2, 2)) for n in range(len(written))])


@pytest.mark.parametrize("kind", ["whole_mp4", "whole_mkv"])
def test_a_whole_video_gives_no_damage_warning(capsys, tmp_path, model_files, cut_videos, kind):
    status, _, err = run_cli(capsys, model_files["blend"], cut_videos[kind], "--save_path", tmp_path / "o")
    assert status == 0, err
    assert not [line for line in error_lines(err) if line.startswith("warning:")], err


def test_a_video_where_nothing_decodes_is_an_error(capsys, tmp_path, model_files, cut_videos):
    assert_refused_cleanly(inference_video.main, capsys, tmp_path,
                           [model_files["blend"], cut_videos["no_index"], "--save_path", tmp_path / "o.mp4"],
                           "cannot read")
    # The one line says why: a cut MP4 has lost the index kept at its end.
    assert_refused_cleanly(inference_video.main, capsys, tmp_path,
                           [model_files["blend"], cut_videos["no_index"], "--save_path", tmp_path / "o.mp4"],
                           "the file looks cut short")


def decode_video_leniently(path):
    """(times, frames) that PyAV can decode from a damaged file, ignoring the error that ends it."""
    times, frames = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.FFmpegError:
                packet = None
            try:
                decoded = packet.decode() if packet is not None else stream.codec_context.decode(None)
            except av.FFmpegError:
                decoded = []
            for frame in decoded:
                times.append(Fraction(frame.pts * stream.time_base))
                frames.append(frame.to_ndarray(format="rgb24"))
            if packet is None:
                break
    return times, frames


def test_a_stream_recording_without_duration_still_gets_a_progress_total(capsys, tmp_path, model_files):
    """Browser/screen recordings written as a stream say neither duration nor frame count."""
    class Unseekable(io.RawIOBase):
        def __init__(self, file):
            self.file = file

        def writable(self):
            return True

        def write(self, data):
            return self.file.write(data)

    path = tmp_path / "recording.webm"
    moments = [0, 33, 66, 80, 150, 200, 233, 300]  # ms, variable rate
    with open(path, "wb") as file, av.open(Unseekable(file), "w", format="webm") as container:
        stream = container.add_stream("libvpx-vp9", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.codec_context.time_base = F(1, 1000)
        for index, moment in enumerate(moments):
            frame = av.VideoFrame.from_ndarray(pattern_frame(index, 64, 64), format="rgb24")
            frame.pts, frame.time_base = moment, F(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    with av.open(str(path)) as container:
        assert not container.streams.video[0].frames and container.duration is None  # nothing declared
    with media.sources.open_source(str(path), folder_fps=F(30)) as source:
        assert len(source.frame_times()) == len(moments)  # from the packets
    # The job's total, from those times: the outputs from 0 to 0.3 s at 2 x 30 fps.
    status, _, err = run_cli(capsys, model_files["blend"], path, "--save_path", tmp_path / "o")
    assert status == 0, err
    assert "19/19" in err and len(os.listdir(tmp_path / "o")) == 19


def test_sigterm_and_sighup_leave_no_partial_file(tmp_path, model_files, long_videos):
    for signal_number, expected in ((signal.SIGTERM, 143), (signal.SIGHUP, 129)):
        status, out, err = interrupt_program(tmp_path, model_files["tiny"], long_videos[500], signal_number,
                                             "--restart")
        assert status == expected, err
        assert out == ""
        assert_interrupted_cleanly(tmp_path, err)


def test_ntsc_decimal_rate_is_the_exact_rate(capsys, tmp_path, model_files, videos):
    status, out, err = run_cli(capsys, model_files["blend"], videos["film"], "--fps", "59.94",
                               "--save_path", tmp_path / "out.mp4")
    assert status == 0, err
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert container.streams.video[0].average_rate == F(60000, 1001)


def test_output_extension_messages_list_exactly_what_is_accepted(capsys, tmp_path, model_files, videos):
    status, _, err = run_cli(capsys, model_files["blend"], videos["film"], "--save_path", tmp_path / "o.avi")
    assert status == 1
    line = error_lines(err)[0]
    assert ".gif" not in line and ".mp4" in line and ".mkv" in line and "folder" in line
    status, _, err = run_cli(capsys, model_files["blend"], videos["film"], "--save_path", tmp_path / "o.gif")
    assert status == 1 and "GIF output is not offered" in err and ".mp4" in err


def test_max_memory_too_small_is_one_line(capsys, tmp_path, model_files, videos):
    assert_refused_cleanly(inference_video.main, capsys, tmp_path,
                           [model_files["tiny"], videos["film"], "--max_memory", "0.01",
                            "--save_path", tmp_path / "o.mp4"], "--max_memory 0.01 GB is too small")


def test_tiled_runs_say_tiles_run_the_whole_network(capsys, tmp_path, model_files, videos):
    status, _, err = run_cli(capsys, model_files["tiny"], videos["film"], "--tile", "64",
                             "--save_path", tmp_path / "o")
    assert status == 0, err
    notes = [line for line in error_lines(err) if line.startswith("info:")]
    assert any("whole network for each tile" in line for line in notes), err
    assert not any("only has forward()" in line for line in notes), err


def test_threads_option(capsys, tmp_path, model_files, videos):
    status, _, err = run_cli(capsys, model_files["blend"], videos["film"], "--threads", "1",
                             "--save_path", tmp_path / "o")
    assert status == 0, err
    with pytest.raises(SystemExit) as exit_info:
        inference_video.main([model_files["blend"], videos["film"], "--threads", "0"])
    assert exit_info.value.code == 2
