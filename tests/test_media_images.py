"""Tests of media.images: reading images of every kind (depths, gray, alpha, formats, EXIF orientation)."""
import logging
import pathlib
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from media import errors, images, samples  # noqa: E402


def smooth_image(height, width, seed=0):
    """uint8 RGB with gentle gradients, so lossy codecs reproduce it closely."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = [np.sin(x / (15 + 4 * c) + rng.random() * 6) * np.cos(y / (17 + 3 * c)) for c in range(3)]
    return np.round((np.stack(channels, axis=2) * 0.5 + 0.5) * 255).astype(np.uint8)



def test_reads_8_bit_rgb_as_float_rgb(tmp_path):
    rgb = smooth_image(20, 30)
    path = str(tmp_path / "a.png")
    cv2.imwrite(path, rgb[:, :, ::-1])
    pixels = images.read_image(path)
    assert pixels.dtype == np.float32 and pixels.shape == (20, 30, 3)
    np.testing.assert_array_equal(samples.to_uint8(pixels), rgb)


def test_reads_16_bit_at_full_precision(tmp_path):
    rng = np.random.default_rng(1)
    deep = rng.integers(0, 65536, (10, 12, 3), dtype=np.uint16)
    path = str(tmp_path / "deep.png")
    cv2.imwrite(path, deep[:, :, ::-1])
    loaded = images.load_image(path)
    assert loaded.bit_depth == 16
    np.testing.assert_allclose(loaded.pixels, deep.astype(np.float32) / 65535, atol=1e-7)


@pytest.mark.parametrize("bits", [8, 16])
def test_gray_becomes_three_equal_channels(tmp_path, bits):
    gray = (np.arange(48).reshape(6, 8) * (1 if bits == 8 else 1000)).astype(np.uint8 if bits == 8 else np.uint16)
    path = str(tmp_path / "gray.png")
    cv2.imwrite(path, gray)
    pixels = images.read_image(path)
    assert pixels.shape == (6, 8, 3)
    np.testing.assert_array_equal(pixels[:, :, 0], pixels[:, :, 2])
    np.testing.assert_allclose(pixels[:, :, 1], gray / (255 if bits == 8 else 65535), atol=1e-7)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_dropped_with_one_notice(tmp_path, caplog, mode):
    errors._notices_given.clear()
    rgba = np.dstack([smooth_image(8, 9), np.full((8, 9), 7, np.uint8)])
    image = Image.fromarray(rgba, "RGBA").convert(mode)
    paths = [str(tmp_path / f"{name}.png") for name in "ab"]
    for path in paths:
        image.save(path)
    with caplog.at_level(logging.WARNING, logger="film"):
        first = images.read_image(paths[0])
        images.read_image(paths[1])
    assert first.shape == (8, 9, 3)
    expected = np.asarray(image.convert("RGB"))
    np.testing.assert_array_equal(samples.to_uint8(first), expected)
    assert sum("alpha" in record.getMessage() for record in caplog.records) == 1


@pytest.mark.parametrize("extension", [".jpg", ".webp", ".tiff", ".bmp"])
def test_reads_common_formats(tmp_path, extension):
    rgb = smooth_image(16, 24)
    path = str(tmp_path / f"image{extension}")
    assert cv2.imwrite(path, rgb[:, :, ::-1])
    pixels = images.read_image(path)
    assert pixels.shape == (16, 24, 3)
    assert np.abs(samples.to_uint8(pixels).astype(int) - rgb).mean() < 6  # JPEG/WebP are lossy


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_what_opencv_shows(tmp_path, orientation):
    rgb = smooth_image(12, 20, seed=orientation)
    rgb[:3, :5] = 255  # a corner marker that makes every orientation distinct
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = str(tmp_path / "photo.png")
    Image.fromarray(rgb).save(path, exif=exif.tobytes())
    upright_bgr = cv2.imread(path, cv2.IMREAD_COLOR)  # OpenCV applies the orientation here
    np.testing.assert_array_equal(samples.to_uint8(images.read_image(path)), upright_bgr[:, :, ::-1])


def test_unreadable_inputs_raise_one_line_errors(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    cases = {str(tmp_path / "missing.png"): "not found", str(text): "not an image",
             str(empty): "not an image", str(tmp_path): "folder"}
    for path, words in cases.items():
        with pytest.raises(errors.ImageReadError, match=words) as caught:
            images.read_image(path)
        assert isinstance(caught.value, ValueError) and "\n" not in str(caught.value)

