"""Tests of media_io: reading images of every kind, and the atomic frame writers."""
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

import media_io  # noqa: E402


def smooth_image(height, width, seed=0):
    """uint8 RGB with gentle gradients, so lossy codecs reproduce it closely."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = [np.sin(x / (15 + 4 * c) + rng.random() * 6) * np.cos(y / (17 + 3 * c)) for c in range(3)]
    return np.round((np.stack(channels, axis=2) * 0.5 + 0.5) * 255).astype(np.uint8)


def leftovers(folder):
    """Temporary files or folders a writer may have left behind."""
    return [name for name in os.listdir(folder) if name.endswith(".partial")]


# --------------------------------------------------------------------------- reading

def test_reads_8_bit_rgb_as_float_rgb(tmp_path):
    rgb = smooth_image(20, 30)
    path = str(tmp_path / "a.png")
    cv2.imwrite(path, rgb[:, :, ::-1])
    pixels = media_io.read_image(path)
    assert pixels.dtype == np.float32 and pixels.shape == (20, 30, 3)
    np.testing.assert_array_equal(media_io.to_uint8(pixels), rgb)


def test_reads_16_bit_at_full_precision(tmp_path):
    rng = np.random.default_rng(1)
    deep = rng.integers(0, 65536, (10, 12, 3), dtype=np.uint16)
    path = str(tmp_path / "deep.png")
    cv2.imwrite(path, deep[:, :, ::-1])
    loaded = media_io.load_image(path)
    assert loaded.bit_depth == 16
    np.testing.assert_allclose(loaded.pixels, deep.astype(np.float32) / 65535, atol=1e-7)


@pytest.mark.parametrize("bits", [8, 16])
def test_gray_becomes_three_equal_channels(tmp_path, bits):
    gray = (np.arange(48).reshape(6, 8) * (1 if bits == 8 else 1000)).astype(np.uint8 if bits == 8 else np.uint16)
    path = str(tmp_path / "gray.png")
    cv2.imwrite(path, gray)
    pixels = media_io.read_image(path)
    assert pixels.shape == (6, 8, 3)
    np.testing.assert_array_equal(pixels[:, :, 0], pixels[:, :, 2])
    np.testing.assert_allclose(pixels[:, :, 1], gray / (255 if bits == 8 else 65535), atol=1e-7)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_dropped_with_one_notice(tmp_path, caplog, mode):
    media_io._notices_given.clear()
    rgba = np.dstack([smooth_image(8, 9), np.full((8, 9), 7, np.uint8)])
    image = Image.fromarray(rgba, "RGBA").convert(mode)
    paths = [str(tmp_path / f"{name}.png") for name in "ab"]
    for path in paths:
        image.save(path)
    with caplog.at_level(logging.WARNING, logger="film"):
        first = media_io.read_image(paths[0])
        media_io.read_image(paths[1])
    assert first.shape == (8, 9, 3)
    expected = np.asarray(image.convert("RGB"))
    np.testing.assert_array_equal(media_io.to_uint8(first), expected)
    assert sum("alpha" in record.getMessage() for record in caplog.records) == 1


@pytest.mark.parametrize("extension", [".jpg", ".webp", ".tiff", ".bmp"])
def test_reads_common_formats(tmp_path, extension):
    rgb = smooth_image(16, 24)
    path = str(tmp_path / f"image{extension}")
    assert cv2.imwrite(path, rgb[:, :, ::-1])
    pixels = media_io.read_image(path)
    assert pixels.shape == (16, 24, 3)
    assert np.abs(media_io.to_uint8(pixels).astype(int) - rgb).mean() < 6  # JPEG/WebP are lossy


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_what_opencv_shows(tmp_path, orientation):
    rgb = smooth_image(12, 20, seed=orientation)
    rgb[:3, :5] = 255  # a corner marker that makes every orientation distinct
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = str(tmp_path / "photo.png")
    Image.fromarray(rgb).save(path, exif=exif.tobytes())
    upright_bgr = cv2.imread(path, cv2.IMREAD_COLOR)  # OpenCV applies the orientation here
    np.testing.assert_array_equal(media_io.to_uint8(media_io.read_image(path)), upright_bgr[:, :, ::-1])


def test_unreadable_inputs_raise_one_line_errors(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    cases = {str(tmp_path / "missing.png"): "not found", str(text): "not an image",
             str(empty): "not an image", str(tmp_path): "folder"}
    for path, words in cases.items():
        with pytest.raises(media_io.ImageReadError, match=words) as caught:
            media_io.read_image(path)
        assert isinstance(caught.value, ValueError) and "\n" not in str(caught.value)


def test_to_uint8_clamps_and_rounds():
    values = np.array([-0.2, 0.0, 0.4 / 255, 0.6 / 255, 127.5 / 255 - 1e-4, 1.0, 1.3], np.float32)
    np.testing.assert_array_equal(media_io.to_uint8(values), [0, 0, 0, 1, 127, 255, 255])


# --------------------------------------------------------------------------- writing

def test_output_kind():
    assert media_io.output_kind("a/b.mp4") == "video"
    assert media_io.output_kind("a/b.MKV") == "video"
    assert media_io.output_kind("a/b.gif") == "gif"
    assert media_io.output_kind("a/frames") == "png"
    assert media_io.output_kind("a/frames.v2/") == "png"
    with pytest.raises(media_io.OutputError, match="unsupported output extension"):
        media_io.output_kind("a/b.avi")


def test_gif_delays_keep_total_duration():
    assert media_io.gif_frame_delays(3, Fraction(3)) == [33, 34, 33]
    delays = media_io.gif_frame_delays(1000, Fraction(30000, 1001))
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
    with media_io.open_writer(str(path), fps, 64, 48) as writer:
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
    with media_io.open_writer(str(path), Fraction(10), 32, 32) as writer:
        writer.write(smooth_image(32, 32))
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")


def test_odd_sizes_repeat_the_last_row_and_column(tmp_path, caplog):
    frame = smooth_image(67, 101)
    path = tmp_path / "odd.mp4"
    with caplog.at_level(logging.WARNING, logger="film"):
        with media_io.open_writer(str(path), Fraction(10), 101, 67) as writer:
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
    with media_io.open_writer(str(path), Fraction(3), 30, 20) as writer:
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
    with media_io.open_writer(str(folder) + "/", Fraction(10), 9, 7) as writer:
        for frame in frames:
            writer.write(frame)
    assert sorted(os.listdir(folder)) == ["frame_00000.png", "frame_00001.png", "frame_00002.png"]
    for index, frame in enumerate(frames):
        saved = cv2.imread(str(folder / f"frame_{index:05d}.png"))[:, :, ::-1]
        np.testing.assert_array_equal(saved, frame)
    assert media_io.PngFolderWriter(str(tmp_path / "x"), Fraction(1), 1, 1, frame_count=123456) \
        .frame_name(7) == "frame_000007.png"


def test_png_folder_replaces_earlier_frames_but_keeps_other_files(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for name in ["frame_00000.png", "frame_00007.png", "notes.txt"]:
        (folder / name).write_bytes(b"old")
    with media_io.open_writer(str(folder), Fraction(10), 4, 4) as writer:
        writer.write(smooth_image(4, 4))
    assert sorted(os.listdir(folder)) == ["frame_00000.png", "notes.txt"]
    assert (folder / "frame_00000.png").read_bytes() != b"old"


def test_existing_output_is_replaced_only_on_close(tmp_path):
    path = tmp_path / "out.gif"
    path.write_bytes(b"previous result")
    writer = media_io.open_writer(str(path), Fraction(10), 8, 8)
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
        with media_io.open_writer(str(path), Fraction(10), 16, 16) as writer:
            writer.write(smooth_image(16, 16))
            raise problem()
    assert os.listdir(tmp_path) == []  # temporary output and created folders are gone


def test_abort_keeps_an_existing_output(tmp_path):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"keep me")
    writer = media_io.open_writer(str(path), Fraction(10), 16, 16)
    writer.write(smooth_image(16, 16))
    writer.abort()
    assert path.read_bytes() == b"keep me" and leftovers(tmp_path) == []


def test_closing_without_frames_is_an_error(tmp_path):
    with pytest.raises(media_io.OutputError, match="no frames"):
        with media_io.open_writer(str(tmp_path / "out.mp4"), Fraction(10), 16, 16):
            pass
    assert os.listdir(tmp_path) == []


def test_unwritable_destinations(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for path in [str(blocker / "out.mp4"), str(blocker / "sub" / "out.gif"), str(blocker / "frames/")]:
        with pytest.raises(media_io.OutputError):
            media_io.open_writer(path, Fraction(10), 16, 16)
    (tmp_path / "folder.mp4").mkdir()
    with pytest.raises(media_io.OutputError, match="existing folder"):
        media_io.open_writer(str(tmp_path / "folder.mp4"), Fraction(10), 16, 16)
    with pytest.raises(media_io.OutputError, match="existing file"):
        media_io.open_writer(str(blocker) + "/", Fraction(10), 16, 16)
    assert sorted(os.listdir(tmp_path)) == ["a_file", "folder.mp4"]


def test_frames_of_the_wrong_shape_are_refused(tmp_path):
    with media_io.open_writer(str(tmp_path / "frames"), Fraction(10), 16, 16) as writer:
        with pytest.raises(ValueError, match="uint8 frame"):
            writer.write(np.zeros((16, 16, 3), np.float32))
        with pytest.raises(ValueError, match="uint8 frame"):
            writer.write(np.zeros((16, 15, 3), np.uint8))
        writer.write(np.zeros((16, 16, 3), np.uint8))
