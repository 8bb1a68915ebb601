"""Tests of media.samples, the one family of pixel conversions, and of the media package's independence of torch."""
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from media import samples  # noqa: E402


def test_to_uint8_clamps_and_rounds():
    values = np.array([-0.2, 0.0, 0.4 / 255, 0.6 / 255, 127.5 / 255 - 1e-4, 1.0, 1.3], np.float32)
    np.testing.assert_array_equal(samples.to_uint8(values), [0, 0, 0, 1, 127, 255, 255])


def test_round_to_bits_inverts_ffmpegs_widening():
    levels = np.arange(1024, dtype=np.uint16)
    widened = (levels << 6) | (levels >> 4)   # how FFmpeg turns 10-bit samples into 16-bit ones
    np.testing.assert_array_equal(samples.round_to_bits(widened, 10), levels)
    np.testing.assert_array_equal(samples.round_to_bits(np.arange(256, dtype=np.uint16) * 257, 8), np.arange(256))


def test_8_bit_samples_stay_exact_through_every_conversion():
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    assert samples.to_samples(levels, np.uint8) is levels
    np.testing.assert_array_equal(samples.to_uint8(samples.to_uint16(levels)), levels)
    np.testing.assert_array_equal(samples.to_uint8(samples.to_float(levels)), levels)
    np.testing.assert_array_equal(samples.to_uint16(samples.to_float(levels)), samples.to_uint16(levels))
    with pytest.raises(ValueError, match="uint8 or uint16"):
        samples.to_samples(levels, np.float32)


def test_the_media_package_does_not_import_torch():
    code = ("import media, media.audio, media.destination, media.encoding, media.errors, media.images, "
            "media.join, media.samples, media.sources, media.writers; import sys; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
