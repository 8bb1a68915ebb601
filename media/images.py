"""Reading still images (upright, RGB, float32), and the names of frames in folders.

``load_image`` / ``read_image`` give float32 (H, W, 3) RGB in [0, 1] for
any image file OpenCV decodes (8 or 16-bit, gray, RGB, with or without
alpha, floating point), turned upright by its EXIF orientation. A folder
of frames, as input, is the image files with ``FRAME_EXTENSIONS`` in it; as
output, numbered PNG files ``frame_00000.png``, ... (``is_frame_name``).
"""
from __future__ import annotations

import os
import re
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image

from media.errors import ImageReadError, notice_once

# Extensions of the image files a frame folder is made of (all read by OpenCV).
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".exr")
# Numbered PNG frames written to a folder: frame_00000.png, frame_00001.png, ...
PNG_FRAME_PREFIX = "frame_"
PNG_FRAME_DIGITS = 5


def is_frame_name(name: str) -> bool:
    """Whether a file name is one of the numbered PNG frames this program writes."""
    return re.fullmatch(re.escape(PNG_FRAME_PREFIX) + r"\d+\.png", name) is not None


class LoadedImage(NamedTuple):
    pixels: np.ndarray     # float32 (H, W, 3) RGB in [0, 1]
    had_alpha: bool        # an alpha channel was present and has been dropped
    bit_depth: int         # 8, 16 or 32 (floating point files)


# EXIF orientation tag values -> how to turn the stored pixels upright.
_ORIENTATION_FIXES = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, k=-1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, k=1),
}


def _exif_orientation(path: str) -> int:
    # OpenCV ignores EXIF orientation when it keeps alpha and bit depth
    # (IMREAD_UNCHANGED), so it is read here to show photos upright like viewers do.
    try:
        with Image.open(path) as image:
            return int(image.getexif().get(0x0112, 1))
    except Exception:  # Pillow cannot open every format OpenCV reads: then assume upright.
        return 1


def decode_file(path: str) -> np.ndarray:
    """The file's samples as OpenCV decodes them (BGR order, as stored, no EXIF turn)."""
    try:
        # Reading the bytes ourselves copes with non-ASCII paths on every platform.
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise ImageReadError(f"cannot read {path}: {error.strerror or error}") from None
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if decoded is None:
        raise ImageReadError(f"not an image OpenCV can read: {path}")
    return decoded


def load_image(path: str) -> LoadedImage:
    """Read an image file that OpenCV can decode; see the module docstring for the result."""
    if not os.path.exists(path):
        raise ImageReadError(f"image not found: {path}")
    if os.path.isdir(path):
        raise ImageReadError(f"expected an image file, found a folder: {path}")
    decoded = decode_file(path)

    # A division, not samples.to_float's multiplication by 1/255: the two
    # differ in the last bit for some values, and this is what images were
    # always read as (the frames made from them stay the same).
    if decoded.dtype == np.uint8:
        pixels, bit_depth = decoded.astype(np.float32) / np.float32(255), 8
    elif decoded.dtype == np.uint16:
        pixels, bit_depth = decoded.astype(np.float32) / np.float32(65535), 16
    elif decoded.dtype in (np.float32, np.float64):
        pixels, bit_depth = np.clip(decoded.astype(np.float32), 0, 1), 32
    else:
        raise ImageReadError(f"unsupported sample type {decoded.dtype} in {path}")

    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    had_alpha = False
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    elif pixels.shape[2] == 2:          # gray + alpha
        pixels, had_alpha = np.repeat(pixels[:, :, :1], 3, axis=2), True
    elif pixels.shape[2] == 3:
        pixels = pixels[:, :, ::-1]     # OpenCV's BGR -> RGB
    elif pixels.shape[2] == 4:
        pixels, had_alpha = pixels[:, :, 2::-1], True
    else:
        raise ImageReadError(f"unsupported number of channels ({pixels.shape[2]}) in {path}")

    fix = _ORIENTATION_FIXES.get(_exif_orientation(path))
    if fix is not None:
        pixels = fix(pixels)
    return LoadedImage(np.ascontiguousarray(pixels, dtype=np.float32), had_alpha, bit_depth)


def read_loaded_image(path: str) -> LoadedImage:
    """``load_image``, with one notice when alpha is dropped."""
    loaded = load_image(path)
    if loaded.had_alpha:
        notice_once("alpha channel dropped: frames are interpolated as opaque RGB")
    return loaded


def read_image(path: str) -> np.ndarray:
    """Read an image as float32 (H, W, 3) RGB in [0, 1]; alpha is dropped with one notice."""
    return read_loaded_image(path).pixels
