"""Tests of media.writers (and media.encoding.output_kind): the atomic frame writers, video, GIF and PNG folders."""
import logging
import os
import pathlib
import sys
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from media import encoding, errors, writers  # noqa: E402
from test_media_images import smooth_image  # noqa: E402


def leftovers(folder):
    """Temporary files or folders a writer may have left behind."""
    return [name for name in os.listdir(folder) if name.endswith(".partial")]



def test_output_kind():
    assert encoding.output_kind("a/b.mp4") == "video"
    assert encoding.output_kind("a/b.MKV") == "video"
    assert encoding.output_kind("a/b.gif") == "gif"
    assert encoding.output_kind("a/frames") == "png"
    assert encoding.output_kind("a/frames.v2/") == "png"
    with pytest.raises(errors.OutputError, match="unsupported output extension"):
        encoding.output_kind("a/b.avi")


def test_gif_delays_keep_total_duration():
    assert writers.gif_frame_delays(3, Fraction(3)) == [33, 34, 33]
    delays = writers.gif_frame_delays(1000, Fraction(30000, 1001))
    assert sum(delays) == round(1000 * 100 * 1001 / 30000)
    assert set(delays) == {3, 4}


def decode_video(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return stream, frames


@pytest.mark.parametrize("extension", [".mp4", ".mkv"])
def test_video_round_trip_with_exact_timing(tmp_path, extension):
    fps = Fraction(30000, 1001)
    frames = [smooth_image(48, 64, seed=i) for i in range(5)]
    path = tmp_path / f"clip{extension}"
    with writers.open_writer(str(path), fps, 64, 48) as writer:
        for frame in frames:
            writer.write(frame)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == fps
        assert stream.codec_context.pix_fmt == "yuv420p"
        decoded = list(container.decode(stream))
    assert len(decoded) == 5
    # Matroska stores milliseconds; MP4 keeps the exact 1001/30000 s steps.
    tolerance = 1e-3 if extension == ".mkv" else 1e-6
    assert [frame.time for frame in decoded] == pytest.approx([i / float(fps) for i in range(5)], abs=tolerance)
    for original, frame in zip(frames, decoded):
        assert np.abs(frame.to_ndarray(format="rgb24").astype(int) - original).mean() < 4
    assert leftovers(tmp_path) == []


def test_mp4_is_faststart(tmp_path):
    path = tmp_path / "web.mp4"
    with writers.open_writer(str(path), Fraction(10), 32, 32) as writer:
        writer.write(smooth_image(32, 32))
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")


def test_odd_sizes_repeat_the_last_row_and_column(tmp_path, caplog):
    frame = smooth_image(67, 101)
    path = tmp_path / "odd.mp4"
    with caplog.at_level(logging.WARNING, logger="film"):
        with writers.open_writer(str(path), Fraction(10), 101, 67) as writer:
            writer.write(frame)
            writer.write(frame)
    assert any("102x68" in record.getMessage() for record in caplog.records)
    stream, decoded = decode_video(path)
    assert (stream.codec_context.width, stream.codec_context.height) == (102, 68)
    assert len(decoded) == 2
    assert np.abs(decoded[0][:67, :101].astype(int) - frame).mean() < 4
    assert np.abs(decoded[0][67, :101].astype(int) - frame[66]).mean() < 6


def test_gif_timing_and_loop(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [smooth_image(20, 30, seed=i) for i in range(6)]
    with writers.open_writer(str(path), Fraction(3), 30, 20) as writer:
        for frame in frames:
            writer.write(frame)
    with Image.open(path) as gif:
        assert gif.n_frames == 6 and gif.info["loop"] == 0 and gif.size == (30, 20)
        durations = []
        for index in range(gif.n_frames):
            gif.seek(index)
            durations.append(gif.info["duration"])
    assert durations == [330, 340, 330, 330, 340, 330]


def test_png_folder_names_and_content(tmp_path):
    frames = [smooth_image(7, 9, seed=i) for i in range(3)]
    folder = tmp_path / "deep" / "frames"
    with writers.open_writer(str(folder) + "/", Fraction(10), 9, 7) as writer:
        for frame in frames:
            writer.write(frame)
    assert sorted(os.listdir(folder)) == ["frame_00000.png", "frame_00001.png", "frame_00002.png"]
    for index, frame in enumerate(frames):
        saved = cv2.imread(str(folder / f"frame_{index:05d}.png"))[:, :, ::-1]
        np.testing.assert_array_equal(saved, frame)
    assert writers.PngFolderWriter(str(tmp_path / "x"), Fraction(1), 1, 1, frame_count=123456) \
        .frame_name(7) == "frame_000007.png"


def test_png_folder_replaces_earlier_frames_but_keeps_other_files(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for name in ["frame_00000.png", "frame_00007.png", "notes.txt"]:
        (folder / name).write_bytes(b"old")
    with writers.open_writer(str(folder), Fraction(10), 4, 4) as writer:
        writer.write(smooth_image(4, 4))
    assert sorted(os.listdir(folder)) == ["frame_00000.png", "notes.txt"]
    assert (folder / "frame_00000.png").read_bytes() != b"old"


def test_existing_output_is_replaced_only_on_close(tmp_path):
    path = tmp_path / "out.gif"
    path.write_bytes(b"previous result")
    writer = writers.open_writer(str(path), Fraction(10), 8, 8)
    writer.write(smooth_image(8, 8))
    assert path.read_bytes() == b"previous result"
    writer.close()
    assert path.read_bytes().startswith(b"GIF8")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["out.mp4", "out.gif", "frames/"])
@pytest.mark.parametrize("problem", [RuntimeError, KeyboardInterrupt])
def test_failure_inside_with_leaves_nothing(tmp_path, name, problem):
    path = tmp_path / "new" / "folders" / name
    with pytest.raises(problem):
        with writers.open_writer(str(path), Fraction(10), 16, 16) as writer:
            writer.write(smooth_image(16, 16))
            raise problem()
    assert os.listdir(tmp_path) == []  # temporary output and created folders are gone


def test_abort_keeps_an_existing_output(tmp_path):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"keep me")
    writer = writers.open_writer(str(path), Fraction(10), 16, 16)
    writer.write(smooth_image(16, 16))
    writer.abort()
    assert path.read_bytes() == b"keep me" and leftovers(tmp_path) == []


@pytest.mark.parametrize("codec", ["av1", "hevc", "h264"])
def test_an_aborted_encoder_prints_nothing(tmp_path, capfd, codec):
    """SVT-AV1 printed "Svt[error]: deinit called without sending EOS!" to fd 2 when an interrupted
    segment's writer was dropped, after the program's own message about the interruption."""
    import gc
    writer = writers.open_writer(str(tmp_path / "out.mkv"), Fraction(10), 64, 48,
                                 encoding=encoding.VideoEncoding(codec=codec))
    for _ in range(3):
        writer.write(smooth_image(48, 64))
    writer.abort()
    del writer
    gc.collect()
    assert capfd.readouterr().err == "" and leftovers(tmp_path) == []


def test_closing_without_frames_is_an_error(tmp_path):
    with pytest.raises(errors.OutputError, match="no frames"):
        with writers.open_writer(str(tmp_path / "out.mp4"), Fraction(10), 16, 16):
            pass
    assert os.listdir(tmp_path) == []


def test_unwritable_destinations(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for path in [str(blocker / "out.mp4"), str(blocker / "sub" / "out.gif"), str(blocker / "frames/")]:
        with pytest.raises(errors.OutputError):
            writers.open_writer(path, Fraction(10), 16, 16)
    (tmp_path / "folder.mp4").mkdir()
    with pytest.raises(errors.OutputError, match="existing folder"):
        writers.open_writer(str(tmp_path / "folder.mp4"), Fraction(10), 16, 16)
    with pytest.raises(errors.OutputError, match="existing file"):
        writers.open_writer(str(blocker) + "/", Fraction(10), 16, 16)
    assert sorted(os.listdir(tmp_path)) == ["a_file", "folder.mp4"]


def test_frames_of_the_wrong_shape_are_refused(tmp_path):
    with writers.open_writer(str(tmp_path / "frames"), Fraction(10), 16, 16) as writer:
        with pytest.raises(ValueError, match="uint8 frame"):
            writer.write(np.zeros((16, 16, 3), np.float32))
        with pytest.raises(ValueError, match="uint8 frame"):
            writer.write(np.zeros((16, 15, 3), np.uint8))
        writer.write(np.zeros((16, 16, 3), np.uint8))
