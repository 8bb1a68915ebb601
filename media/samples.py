"""Pixels as float32 in [0, 1] or as uint8 / uint16 samples: the one family of conversions.

Every function takes pixels of any of the three kinds (float in [0, 1],
uint8, uint16 on the full 16-bit scale) and returns a new array or, when
the kind is already the one asked for, the array itself:

- ``to_float``: float32 in [0, 1]; integers are multiplied by 1/255 or
  1/65535 (in float32), floats are kept as they are (not clamped).
- ``to_uint8``, ``to_uint16``, ``to_samples(pixels, dtype)``: integer
  samples. Floats are clamped to [0, 1], scaled to 255 or 65535 and rounded
  to nearest (halves to even), in float32 for float32 input; uint8 and
  uint16 go into each other with the same values (x 257, and
  ``round_to_bits(..., 8)`` back), so 8-bit samples stay exact.
- ``round_to_bits``: 16-bit samples rounded to d bits (what a writer of d
  bits stores).
"""
from __future__ import annotations

import numpy as np


def _quantized(pixels: np.ndarray, top: float, dtype: type) -> np.ndarray:
    # Clamped first, then rounded to nearest; on float32 pixels every step is in float32.
    return np.round(np.clip(pixels, 0.0, 1.0) * top).astype(dtype)


def round_to_bits(samples: np.ndarray, bits: int) -> np.ndarray:
    """16-bit samples rounded to ``bits`` bits: round(v * (2^bits - 1) / 65535), as uint8 or uint16.

    FFmpeg widens d-bit samples to 16 bits by repeating their bits, which is
    within 1/2 of v * 65535 / (2^bits - 1): this is its exact inverse.
    """
    top = (1 << bits) - 1
    rounded = (samples.astype(np.uint32) * top + 32767) // 65535
    return rounded.astype(np.uint8 if bits <= 8 else np.uint16)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` as uint8 samples (see the module docstring)."""
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return round_to_bits(pixels, 8)
    return _quantized(pixels, 255.0, np.uint8)


def to_uint16(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` as uint16 samples on the full 16-bit scale (see the module docstring)."""
    if pixels.dtype == np.uint16:
        return pixels
    if pixels.dtype == np.uint8:
        return pixels.astype(np.uint16) * np.uint16(257)  # 255 -> 65535: the same values
    return _quantized(pixels, 65535.0, np.uint16)


def to_samples(pixels: np.ndarray, dtype: type) -> np.ndarray:
    """``pixels`` as samples of ``dtype``, uint8 or uint16 (a writer's ``sample_dtype``)."""
    if dtype == np.uint8:
        return to_uint8(pixels)
    if dtype == np.uint16:
        return to_uint16(pixels)
    raise ValueError(f"samples are uint8 or uint16, not {dtype}")


def to_float(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` as float32 in [0, 1] (see the module docstring)."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) * np.float32(1 / 255)
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) * np.float32(1 / 65535)
    return pixels.astype(np.float32, copy=False)
