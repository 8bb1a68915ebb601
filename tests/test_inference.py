"""Tests of frame_schedule and inference.py, with a tiny random-weights FILM model.

Frame schedules are checked without a model; the runner against independent
re-implementations of each mode made of plain forward() calls; the command line
in-process through ``inference.main`` (and through a subprocess where the exit
status of the real program matters).
"""
import bisect
import hashlib
import os
import pathlib
import subprocess
import sys
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
import torch
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import frame_schedule  # noqa: E402
import image_pipeline  # noqa: E402
import inference  # noqa: E402
import media.samples  # noqa: E402
import media.writers  # noqa: E402
import runtime  # noqa: E402
from conftest import (ForwardOnly, Recorder, StageRecorder, assert_refused_cleanly, error_lines,  # noqa: E402,F401
                      random_interpolator, run_main, tree)
from frame_schedule import Step  # noqa: E402

TINY = dict(filters=4, flow_filters=(4, 4, 8, 8))
FRAME_COUNTS = (1, 2, 3, 7, 18)
WIDTH, HEIGHT = 101, 67  # odd on purpose: padded to 128x128 for the network


# --------------------------------------------------------------------------- fixtures

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    eager = random_interpolator(**TINY)
    files = {name: str(folder / f"{name}.pt") for name in ("script", "state", "half_state", "forward_only")}
    torch.jit.script(eager).save(files["script"])
    torch.save(eager.state_dict(), files["state"])
    torch.save({key: value.half() if value.is_floating_point() else value
                for key, value in eager.state_dict().items()}, files["half_state"])
    torch.jit.script(ForwardOnly(eager)).save(files["forward_only"])
    return files


@pytest.fixture(scope="module")
def script_model(model_files):
    with torch.jit.optimized_execution(False):
        yield runtime.load_model(model_files["script"])


@pytest.fixture(scope="module")
def forward_only_model(model_files):
    with torch.jit.optimized_execution(False):
        yield runtime.load_model(model_files["forward_only"])


def make_image(seed, height=HEIGHT, width=WIDTH, shift=0):
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(seed)
    planes = [np.sin((x - shift) / (6 + 2 * c) + rng.random() * 6) * np.cos(y / (8 + c)) for c in range(3)]
    return np.round((np.stack(planes, axis=2) * 0.45 + 0.5) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def image_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    first, second = make_image(1), make_image(1, shift=6)
    paths = (str(folder / "one.png"), str(folder / "two.png"))
    cv2.imwrite(paths[0], first[:, :, ::-1])
    cv2.imwrite(paths[1], second[:, :, ::-1])
    return paths, first, second


def run_cli(capsys, *argv):
    return run_main(inference.main, capsys, *argv)


# --------------------------------------------------------------------------- schedules

def original_port_steps(n):
    """The original port's loop, as words: min |dt - 0.5| over (interval, target), row-major ties."""
    existing, remaining, steps = [0, n + 1], list(range(1, n + 1)), []
    while remaining:
        best = None
        for a, b in zip(existing, existing[1:]):
            for k in remaining:
                distance = abs(Fraction(k - a, b - a) - Fraction(1, 2))
                if best is None or distance < best[0]:
                    best = (distance, a, b, k)
        _, a, b, k = best
        steps.append(Step(a, b, k, Fraction(k - a, b - a)))
        bisect.insort(existing, k)
        remaining.remove(k)
    return steps


def check_runnable(schedule):
    made = {0, schedule.last_slot}
    for step in schedule.steps:
        assert step.left in made and step.right in made and step.new not in made
        assert step.left < step.new < step.right
        times = schedule.times
        assert step.dt == (times[step.new] - times[step.left]) / (times[step.right] - times[step.left])
        made.add(step.new)
    assert made == set(range(len(schedule.times)))
    assert set(schedule.outputs) <= made and list(schedule.outputs) == sorted(schedule.outputs)
    assert schedule.outputs[0] == 0 and schedule.outputs[-1] == schedule.last_slot


def peak_live_slots(schedule):
    """Most slots whose pyramids must be held at once (from first use to last use)."""
    last_use = schedule.last_use_of_slots()
    live, peak = set(), 0
    for index, step in enumerate(schedule.steps):
        live |= {step.left, step.right}
        peak = max(peak, len(live))
        live -= {slot for slot in (step.left, step.right) if last_use[slot] == index}
    return peak


@pytest.mark.parametrize("n", range(1, 41))
def test_balanced_is_the_original_ports_scheme(n):
    schedule = frame_schedule.balanced_schedule(n)
    check_runnable(schedule)
    assert sorted(schedule.steps) == sorted(original_port_steps(n))
    assert schedule.times == tuple(Fraction(k, n + 1) for k in range(n + 2))
    assert schedule.outputs == tuple(range(n + 2))


def test_balanced_examples():
    assert frame_schedule.balanced_schedule(1).steps == (Step(0, 2, 1, Fraction(1, 2)),)
    assert frame_schedule.balanced_schedule(2).steps == (Step(0, 3, 1, Fraction(1, 3)),
                                                          Step(1, 3, 2, Fraction(1, 2)))
    assert all(step.dt == Fraction(1, 2) for step in frame_schedule.balanced_schedule(7).steps)
    first = frame_schedule.balanced_schedule(18).steps[0]
    assert first == Step(0, 19, 9, Fraction(9, 19))


@pytest.mark.parametrize("n", FRAME_COUNTS + (4, 5, 15, 31, 100))
def test_recursive_uses_midpoints_only(n):
    schedule = frame_schedule.recursive_schedule(n)
    check_runnable(schedule)
    assert all(step.dt == Fraction(1, 2) for step in schedule.steps)
    assert len(schedule.outputs) == n + 2
    depth = frame_schedule.recursion_depth(n)
    assert 2 ** depth - 1 >= n > 2 ** (depth - 1) - 1
    output_times = [schedule.times[slot] for slot in schedule.outputs]
    for k, time in enumerate(output_times):
        # The grid time nearest k/(N+1), so within half a grid step of it.
        assert (time * 2 ** depth).denominator == 1
        assert abs(time - Fraction(k, n + 1)) <= Fraction(1, 2 ** (depth + 1))
    if n == 2 ** depth - 1:
        assert output_times == [Fraction(k, n + 1) for k in range(n + 2)]
        assert len(schedule.steps) == n


def test_recursive_examples():
    two = frame_schedule.recursive_schedule(2)
    assert [str(two.times[slot]) for slot in two.outputs] == ["0", "1/4", "3/4", "1"]
    assert two.steps == (Step(0, 4, 2, Fraction(1, 2)), Step(0, 2, 1, Fraction(1, 2)),
                         Step(2, 4, 3, Fraction(1, 2)))
    assert two.outputs == (0, 1, 3, 4)  # slot 2 (t = 1/2) is made but not shown
    assert len(frame_schedule.recursive_schedule(18).steps) == 25


@pytest.mark.parametrize("n", FRAME_COUNTS)
def test_direct_makes_every_frame_from_the_inputs(n):
    schedule = frame_schedule.direct_schedule(n)
    check_runnable(schedule)
    assert schedule.steps == tuple(Step(0, n + 1, k, Fraction(k, n + 1)) for k in range(1, n + 1))
    assert schedule.last_use_of_pairs() == {(0, n + 1): n - 1}


@pytest.mark.parametrize("mode", frame_schedule.SCHEDULE_MODES)
def test_few_pyramids_are_alive_at_once(mode):
    for n in (18, 100, 500):
        schedule = frame_schedule.make_schedule(mode, n)
        assert peak_live_slots(schedule) <= frame_schedule.recursion_depth(n) + 2


def test_schedule_arguments_are_checked():
    with pytest.raises(ValueError, match="at least 1"):
        frame_schedule.make_schedule("balanced", 0)
    with pytest.raises(ValueError, match="unknown mode"):
        frame_schedule.make_schedule("sideways", 3)


def test_sequence_order():
    assert frame_schedule.sequence_order((0, 1, 2, 3), pingpong=False) == [0, 1, 2, 3]
    assert frame_schedule.sequence_order((0, 1, 2, 3), pingpong=True) == [0, 1, 2, 3, 2, 1]
    assert frame_schedule.sequence_order((0, 1, 3, 4), pingpong=True) == [0, 1, 3, 4, 3, 1]
    assert frame_schedule.sequence_order((0, 1, 2), pingpong=True) == [0, 1, 2, 1]


# --------------------------------------------------------------------------- padding

@pytest.mark.parametrize("size, padded", [((67, 101), (128, 128)), ((64, 128), (64, 128)),
                                           ((20, 30), (64, 64)), ((130, 65), (192, 128))])
def test_padding_round_trip(size, padded):
    pixels = np.random.default_rng(0).random((*size, 3), dtype=np.float32)
    tensor = runtime.image_to_tensor(pixels)
    padded_tensor, crop = runtime.pad_to_multiple(tensor)
    assert tuple(padded_tensor.shape) == (1, 3, *padded)
    top, left, height, width = crop
    assert (height, width) == size
    assert top == (padded[0] - size[0]) // 2 and left == (padded[1] - size[1]) // 2
    torch.testing.assert_close(padded_tensor[:, :, top:top + height, left:left + width], tensor, rtol=0, atol=0)
    # Edges are repeated, not blacked out.
    torch.testing.assert_close(padded_tensor[:, :, :top + 1, left], tensor[:, :, :1, 0].expand(-1, -1, top + 1))
    np.testing.assert_array_equal(runtime.tensor_to_samples(padded_tensor, crop), media.samples.to_uint8(pixels))


# --------------------------------------------------------------------------- runner

@torch.no_grad()
def reference_frames(model, x0, x1, mode, n):
    """{time: frame} made by plain forward calls, each mode written out independently."""
    def make(a, b, dt):
        return model(a, b, torch.full((1, 1), float(dt))).clamp(0, 1)

    if mode == "direct":
        return {Fraction(k, n + 1): make(x0, x1, Fraction(k, n + 1)) for k in range(1, n + 1)}
    if mode == "recursive":
        grid = 2 ** frame_schedule.recursion_depth(n)
        frames = {Fraction(0): x0, Fraction(1): x1}

        def bisect_range(a, b):
            if b - a < 2:
                return
            middle = (a + b) // 2
            frames[Fraction(middle, grid)] = make(frames[Fraction(a, grid)], frames[Fraction(b, grid)], 0.5)
            bisect_range(a, middle)
            bisect_range(middle, b)

        bisect_range(0, grid)
        wanted = [Fraction(round(Fraction(k * grid, n + 1)), grid) for k in range(1, n + 1)]
        return {time: frames[time] for time in wanted}
    # The original port's loop, literally: frames[k] at time k/(N+1).
    frames = {0: x0, n + 1: x1}
    for step in original_port_steps(n):
        frames[step.new] = make(frames[step.left], frames[step.right], step.dt)
    return {Fraction(k, n + 1): frames[k] for k in range(1, n + 1)}


@pytest.fixture(scope="module")
def small_pair():
    x0 = torch.from_numpy(make_image(3, 64, 96)).permute(2, 0, 1)[None].float() / 255
    x1 = torch.from_numpy(make_image(3, 64, 96, shift=5)).permute(2, 0, 1)[None].float() / 255
    return x0, x1


@pytest.mark.parametrize("mode", frame_schedule.SCHEDULE_MODES)
@pytest.mark.parametrize("n", FRAME_COUNTS)
def test_reuse_gives_the_frames_of_plain_forward_calls(script_model, forward_only_model, small_pair, mode, n):
    x0, x1 = small_pair
    schedule = frame_schedule.make_schedule(mode, n)
    outputs = set(schedule.outputs)
    with torch.jit.optimized_execution(False):
        expected = reference_frames(forward_only_model, x0, x1, mode, n)
        recorder = StageRecorder(script_model)
        reused = {schedule.times[slot]: frame for slot, frame in
                  image_pipeline.run_schedule(recorder, x0, x1, schedule) if slot in outputs}
        plain = {schedule.times[slot]: frame for slot, frame in
                 image_pipeline.run_schedule(forward_only_model, x0, x1, schedule) if slot in outputs}
    assert sorted(reused) == sorted(plain) == sorted(expected)
    assert len(expected) == n
    for time, frame in expected.items():
        torch.testing.assert_close(reused[time], frame, rtol=0, atol=1e-5)
        torch.testing.assert_close(plain[time], frame, rtol=0, atol=1e-5)

    # Work reused: one encode per frame used as an input, flows once per pair.
    inputs_used = {slot for step in schedule.steps for slot in (step.left, step.right)}
    assert recorder.calls["encode"] == len(inputs_used)
    assert recorder.calls["estimate_flows"] == len({(s.left, s.right) for s in schedule.steps})
    assert recorder.calls["synthesize"] == len(schedule.steps) and recorder.calls["forward"] == 0
    if mode == "direct":
        assert recorder.calls["estimate_flows"] == 1
    assert recorder.peak_live <= peak_live_slots(schedule)
    assert recorder.live == 0  # every pyramid freed


def test_models_without_stages_get_forward_calls(script_model, small_pair):
    recorder = Recorder(script_model)
    assert not runtime.supports_reuse(recorder) and runtime.supports_reuse(script_model)
    schedule = frame_schedule.balanced_schedule(3)
    with torch.jit.optimized_execution(False):
        frames = list(image_pipeline.run_schedule(recorder, *small_pair, schedule))
    assert [slot for slot, _ in frames] == [step.new for step in schedule.steps]
    assert recorder.calls["forward"] == 3


# --------------------------------------------------------------------------- command line

def read_png_folder(folder):
    names = sorted(os.listdir(folder))
    return names, [cv2.imread(os.path.join(folder, name))[:, :, ::-1] for name in names]


@pytest.mark.parametrize("mode", frame_schedule.SCHEDULE_MODES)
@pytest.mark.parametrize("n", FRAME_COUNTS)
def test_png_frames_in_time_order(capsys, tmp_path, model_files, script_model, image_pair, mode, n):
    (first_path, second_path), first, second = image_pair
    status, out, err = run_cli(capsys, model_files["script"], first_path, second_path,
                               "--frames", n, "--mode", mode, "--save_path", tmp_path / "frames")
    assert status == 0, err
    names, frames = read_png_folder(tmp_path / "frames")
    assert names == [f"frame_{k:05d}.png" for k in range(n + 2)]
    assert all(frame.shape == (HEIGHT, WIDTH, 3) for frame in frames)
    # The inputs come back exactly: padding and cropping lose nothing.
    np.testing.assert_array_equal(frames[0], first)
    np.testing.assert_array_equal(frames[-1], second)
    # In-between frames, in time order, as the runner makes them.
    schedule = frame_schedule.make_schedule(mode, n)
    x0, crop = runtime.pad_to_multiple(runtime.image_to_tensor(first.astype(np.float32) / 255))
    x1, _ = runtime.pad_to_multiple(runtime.image_to_tensor(second.astype(np.float32) / 255))
    with torch.jit.optimized_execution(False):
        made = dict(image_pipeline.run_schedule(script_model, x0, x1, schedule))
    for frame, slot in zip(frames[1:-1], schedule.outputs[1:-1]):
        assert np.abs(frame.astype(int) - runtime.tensor_to_samples(made[slot], crop)).max() <= 1
    # One of each is said in the singular ("1 in-between frame (... 1 model run, ...").
    assert f"{n} in-between frame{'s' if n > 1 else ''} (" in out and str(tmp_path / "frames") in out
    assert f" {len(schedule.steps)} model run{'s' if len(schedule.steps) > 1 else ''}," in out


class RecordingWriter:
    sample_dtype = np.uint8

    def __init__(self, path, fps, width, height, frame_count=None, encoding=None):
        self.path, self.frames = path, []
        RecordingWriter.last = self

    def write(self, frame):
        self.frames.append(frame.copy())

    def __enter__(self):
        return self

    def __exit__(self, *error):
        pass


@pytest.mark.parametrize("forward_only", [False, True])
def test_video_plays_there_and_back_unless_forward_only(capsys, tmp_path, monkeypatch, model_files,
                                                        image_pair, forward_only):
    (first_path, second_path), first, second = image_pair
    status, _, err = run_cli(capsys, model_files["script"], first_path, second_path, "--frames", 3,
                             "--save_path", tmp_path / "frames/")
    assert status == 0, err
    _, forward = read_png_folder(tmp_path / "frames")
    monkeypatch.setattr(media.writers, "open_writer", RecordingWriter)
    extra = ["--forward_only"] if forward_only else []
    status, out, err = run_cli(capsys, model_files["script"], first_path, second_path, "--frames", 3,
                               "--save_path", tmp_path / "out.mp4", *extra)
    assert status == 0, err
    written = RecordingWriter.last.frames
    expected = forward if forward_only else forward + forward[-2:0:-1]
    assert len(written) == len(expected) == (5 if forward_only else 8)
    for got, want in zip(written, expected):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("fps, forward_only, expected_frames", [
    ("10", False, 6), ("10", True, 4), ("30000/1001", False, 6)])
def test_mp4_decodes_with_frames_size_and_rate(capsys, tmp_path, model_files, image_pair,
                                               fps, forward_only, expected_frames):
    (first_path, second_path), _, _ = image_pair
    output = tmp_path / "clip.mp4"
    extra = ["--forward-only"] if forward_only else []
    status, _, err = run_cli(capsys, model_files["script"], first_path, second_path, "--frames", 2,
                             "--fps", fps, "--save_path", output, *extra)
    assert status == 0, err
    assert any("102x68" in line for line in error_lines(err))  # odd size: said once
    with av.open(str(output)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.codec.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.codec_context.width, stream.codec_context.height) == (WIDTH + 1, HEIGHT + 1)
        assert stream.average_rate == Fraction(fps)
        decoded = list(container.decode(stream))
    assert len(decoded) == expected_frames
    assert decoded[-1].time == pytest.approx((expected_frames - 1) / float(Fraction(fps)), abs=1e-6)


def test_default_output_is_mp4_beside_img1(capsys, tmp_path, model_files, image_pair):
    (first_path, second_path), _, _ = image_pair
    folder = tmp_path / "shots"
    folder.mkdir()
    img1 = folder / "a.png"
    img1.write_bytes(pathlib.Path(first_path).read_bytes())
    status, out, err = run_cli(capsys, model_files["script"], img1, second_path, "--frames", 1)
    assert status == 0, err
    assert tree(folder) == ["a.png", "output.mp4"]
    assert str(folder / "output.mp4") in out


def test_gif_timing(capsys, tmp_path, model_files, image_pair):
    (first_path, second_path), _, _ = image_pair
    output = tmp_path / "sub" / "loop.gif"
    status, _, err = run_cli(capsys, model_files["script"], first_path, second_path, "--frames", 2,
                             "--fps", 3, "--save_path", output)
    assert status == 0, err
    with Image.open(output) as gif:
        assert gif.size == (WIDTH, HEIGHT) and gif.info["loop"] == 0
        durations = []
        for index in range(gif.n_frames):
            gif.seek(index)
            durations.append(gif.info["duration"])
    assert durations == [330, 340, 330, 330, 340, 330]  # 6 frames at 3 fps: exactly 2 s


@pytest.mark.parametrize("model", ["state", "half_state", "forward_only"])
def test_other_model_files(capsys, tmp_path, model_files, image_pair, model):
    (first_path, second_path), _, _ = image_pair
    status, _, err = run_cli(capsys, model_files[model], first_path, second_path, "--frames", 2,
                             "--save_path", tmp_path / "frames")
    assert status == 0, err
    assert len(os.listdir(tmp_path / "frames")) == 4
    assert ("only has forward()" in err) == (model == "forward_only")


@pytest.mark.parametrize("option", [["--fp16"], ["--precision", "fp16"], ["--precision", "bf16"]],
                         ids=["fp16-alias", "fp16", "bf16"])
def test_reduced_precision_without_native_support_runs_in_fp32(capsys, tmp_path, model_files, image_pair,
                                                                option):
    (first_path, second_path), _, _ = image_pair
    status, _, err = run_cli(capsys, model_files["script"], first_path, second_path, "--frames", 1,
                             "--gpu", *option, "--save_path", tmp_path / "a")
    assert status == 0, err
    device = runtime.choose_device(True)
    precision = option[-1] if option[0] == "--precision" else "fp16"
    if not runtime.native_precision_support(device, precision):
        assert any(f"--precision {precision}: this " in line and "running in fp32" in line
                   for line in error_lines(err))
    assert len(os.listdir(tmp_path / "a")) == 3


def test_bf16_where_supported_gives_close_frames(capsys, tmp_path, model_files, image_pair, monkeypatch):
    """The bf16 path end to end, forced on (emulated, slow) where the CPU lacks
    it. Tolerance: 8/255 per pixel for the tiny test network (bf16 keeps 8
    bits; measured max 3/255)."""
    (first_path, second_path), _, _ = image_pair
    monkeypatch.setattr(runtime, "native_precision_support", lambda device, precision: True)
    frames = {}
    for precision in ("fp32", "bf16"):
        status, _, err = run_cli(capsys, model_files["script"], first_path, second_path, "--frames", 1,
                                 "--precision", precision, "--save_path", tmp_path / precision)
        assert status == 0, err
        frames[precision] = cv2.imread(str(tmp_path / precision / sorted(os.listdir(tmp_path / precision))[1]))
    difference = np.abs(frames["fp32"].astype(int) - frames["bf16"].astype(int))
    assert 0 < difference.max() <= 8


def write_image(path, pixels):
    assert cv2.imwrite(str(path), pixels)
    return str(path)


def test_gray_16_bit_and_alpha_inputs(capsys, tmp_path, model_files, image_pair):
    _, first, second = image_pair
    gray16 = (cv2.cvtColor(first, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257)
    rgba = np.dstack([second[:, :, ::-1], np.full((HEIGHT, WIDTH), 128, np.uint8)])
    a = write_image(tmp_path / "gray16.png", gray16)
    b = write_image(tmp_path / "rgba.png", rgba)
    c = write_image(tmp_path / "rgba2.tiff", rgba)
    status, _, err = run_cli(capsys, model_files["script"], a, b, "--frames", 1, "--save_path", tmp_path / "o1")
    assert status == 0, err
    assert sum("alpha" in line for line in error_lines(err)) == 1
    status, _, err = run_cli(capsys, model_files["script"], b, c, "--frames", 1, "--save_path", tmp_path / "o2")
    assert status == 0, err
    assert sum("alpha" in line for line in error_lines(err)) == 1  # said once for both
    _, frames = read_png_folder(tmp_path / "o1")
    np.testing.assert_array_equal(frames[0][:, :, 0], np.round(gray16 / 257).astype(np.uint8))
    np.testing.assert_array_equal(frames[-1], second)


def digest(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def test_inputs_are_not_modified(capsys, tmp_path, model_files, image_pair):
    (first_path, second_path), _, _ = image_pair
    before = [digest(p) for p in (first_path, second_path, model_files["script"])]
    status, _, err = run_cli(capsys, model_files["script"], first_path, second_path, "--frames", 1,
                             "--save_path", tmp_path / "x.gif")
    assert status == 0, err
    assert [digest(p) for p in (first_path, second_path, model_files["script"])] == before


# --------------------------------------------------------------------------- bad input

@pytest.fixture()
def bad_inputs(tmp_path, model_files, image_pair):
    (first_path, second_path), first, _ = image_pair
    files = {"img1": first_path, "img2": second_path, "model": model_files["script"]}
    files["text"] = str(tmp_path / "notes.txt")
    pathlib.Path(files["text"]).write_text("not an image")
    files["small"] = write_image(tmp_path / "small.png", first[:60, :90, ::-1])
    files["garbage_model"] = str(tmp_path / "garbage.pt")
    pathlib.Path(files["garbage_model"]).write_bytes(os.urandom(2000))
    files["tensor_dict"] = str(tmp_path / "other_weights.pt")
    torch.save({"conv.weight": torch.zeros(3, 3)}, files["tensor_dict"])
    files["a_file"] = str(tmp_path / "a_file")
    pathlib.Path(files["a_file"]).write_text("in the way")
    files["frames"] = str(tmp_path / "frames")
    os.mkdir(files["frames"])
    write_image(tmp_path / "frames" / "frame_00001.png", first[:, :, ::-1])
    return files


BAD_FILE_CASES = {
    "missing image": (["{model}", "{tmp}/nope.png", "{img2}"], "image not found"),
    "text as image": (["{model}", "{img1}", "{text}"], "not an image"),
    "folder as image": (["{model}", "{tmp}", "{img2}"], "folder"),
    "different sizes": (["{model}", "{img1}", "{small}"], "differ in size: 101x67"),
    "missing model": (["{tmp}/nope.pt", "{img1}", "{img2}"], "model file not found"),
    "garbage model": (["{garbage_model}", "{img1}", "{img2}"], "neither a TorchScript model nor a state dict"),
    "image as model": (["{img1}", "{img1}", "{img2}"], "neither a TorchScript model nor a state dict"),
    "foreign state dict": (["{tensor_dict}", "{img1}", "{img2}"], "do not fit a FILM interpolator"),
    "output under a file": (["{model}", "{img1}", "{img2}", "--save_path", "{a_file}/new/out.mp4"], "is a file"),
    "output is a file": (["{model}", "{img1}", "{img2}", "--save_path", "{a_file}/"], "existing file"),
    "unknown extension": (["{model}", "{img1}", "{img2}", "--save_path", "{tmp}/new/out.avi"], "unsupported output"),
    "output is an input": (["{model}", "{img1}", "{frames}/frame_00001.png", "--save_path", "{frames}"],
                           "would overwrite the input"),
}


@pytest.mark.parametrize("case", BAD_FILE_CASES)
def test_bad_files_give_one_line_and_leave_nothing(capsys, tmp_path, bad_inputs, case):
    argv, words = BAD_FILE_CASES[case]
    assert_refused_cleanly(inference.main, capsys, tmp_path,
                           [a.format(tmp=tmp_path, **bad_inputs) for a in argv], words)


@pytest.mark.parametrize("argv, words", [
    (["--frames", "0"], "--frames: must be at least 1"),
    (["--frames", "two"], "--frames: expected a whole number"),
    (["--fps", "0"], "--fps: must be greater than 0"),
    (["--fps", "-5"], "--fps: must be greater than 0"),
    (["--fps", "fast"], "--fps: expected a number"),
    (["--mode", "sideways"], "invalid choice"),
    (["--bf16"], "unrecognized arguments"),
])
def test_bad_arguments_give_one_line(capsys, bad_inputs, argv, words):
    with pytest.raises(SystemExit) as exit_info:
        inference.main([bad_inputs["model"], bad_inputs["img1"], bad_inputs["img2"], *argv])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and words in lines[0]


def test_interrupt_leaves_nothing(capsys, tmp_path, monkeypatch, model_files, image_pair):
    (first_path, second_path), _, _ = image_pair
    real_run_schedule = image_pipeline.run_schedule

    def interrupted(*args, **kwargs):
        for index, made in enumerate(real_run_schedule(*args, **kwargs)):
            if index == 2:
                raise KeyboardInterrupt
            yield made

    monkeypatch.setattr(image_pipeline, "run_schedule", interrupted)
    (tmp_path / "keep.mp4").write_bytes(b"previous")
    for name in ["new/out.mp4", "keep.mp4", "frames/"]:
        status, _, err = run_cli(capsys, model_files["script"], first_path, second_path, "--frames", 7,
                                 "--save_path", tmp_path / name)
        assert status == 130 and "interrupted" in err
    assert tree(tmp_path) == ["keep.mp4"] and (tmp_path / "keep.mp4").read_bytes() == b"previous"


def run_program(*argv):
    # One thread, as in-process (see one_thread).
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(ROOT / "inference.py"), *map(str, argv)], env=environment,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_program_exit_status_and_stderr(tmp_path, bad_inputs):
    result = run_program(bad_inputs["model"], bad_inputs["img1"], bad_inputs["img2"], "--frames", "0")
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and "--frames" in result.stderr
    result = run_program(bad_inputs["model"], bad_inputs["img1"], tmp_path / "nope.png",
                         "--save_path", tmp_path / "out.mp4")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [f"error: image not found: {tmp_path / 'nope.png'}"]
    assert not (tmp_path / "out.mp4").exists()


def test_help_documents_everything():
    result = run_program("--help")
    assert result.returncode == 0
    for words in ["model_path", "img1", "img2", "--save_path", "--frames", "--fps", "--mode", "balanced",
                  "recursive", "direct", "--forward_only", "--gpu", "--precision", "bf16", "docs/exactness.md",
                  "--fp16", ".mp4", ".gif",
                  "PNG", "multiples of 64", "2^K - 1", "trained at dt = 0.5", "exit status"]:
        assert words in result.stdout, words
