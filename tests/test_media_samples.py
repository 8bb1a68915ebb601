"""Tests of media.samples, the one family of pixel conversions, and of the media package's independence of torch."""
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import runtime  # noqa: E402
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


def torch_quantized(frame, crop, dtype):
    """What runtime.tensor_to_samples computed in torch (on the model's device) before it used media.samples."""
    top, left, height, width = crop
    region = frame[0, :, top:top + height, left:left + width].float()
    if dtype == np.uint8:
        return region.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    quantized = region.clamp(0, 1).mul(65535).round().to(torch.int32)
    return quantized.permute(1, 2, 0).cpu().numpy().astype(np.uint16)


@pytest.mark.parametrize("precision", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("dtype, top", [(np.uint8, 255), (np.uint16, 65535)])
def test_model_frames_are_quantized_bit_for_bit_as_before(dtype, top, precision):
    """runtime.tensor_to_samples crops, brings float32 to the CPU and quantizes with media.samples: the same
    samples as clamping, scaling and rounding (halves to even) in torch."""
    rng = np.random.default_rng(5)
    frame = torch.from_numpy(rng.uniform(-0.1, 1.1, (1, 3, 70, 90)).astype(np.float32))
    # One channel halfway between levels (within float32 rounding): where rounding can go either way.
    frame[:, 1] = (torch.arange(70 * 90, dtype=torch.float32).reshape(70, 90) % top + 0.5) / top
    frame = frame.to(precision)
    crop = runtime.CropBox(3, 5, 64, 80)
    after = runtime.tensor_to_samples(frame, crop, dtype)
    assert after.dtype == dtype and after.shape == (64, 80, 3)
    np.testing.assert_array_equal(after, torch_quantized(frame, crop, dtype))


def test_the_media_package_does_not_import_torch():
    code = ("import media, media.audio, media.destination, media.encoding, media.errors, media.images, "
            "media.join, media.samples, media.sources, media.writers; import sys; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
