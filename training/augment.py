"""Random crops and the original's augmentations (training/augmentation_lib.py), on numpy frames.

A sample is a dict of (H, W, 3) float32 RGB frames ``x0``, ``y``, ``x1`` in
[0, 1]. As in the original, the augmentations run on the whole frames, in
this order, each decided once per sample for all three frames, and the
random crop comes after them:

- ``rot90``: a rotation by k·90° counter-clockwise, k uniform in {0, 1, 2, 3};
- ``flip``: a left-right flip with probability 1/2;
- ``rotate``: with probability 1/2, a rotation by an angle uniform in
  [-45°, 45°] about the centre, bilinear, the corners filled with black;
- ``reverse``: with probability 1/2, x0 and x1 swapped (time stays 0.5).

All randomness comes from the ``numpy.random.Generator`` passed in, so a
sample is a function of its generator's seed (``data`` seeds one per sample).
"""
from typing import Dict, Sequence

import cv2
import numpy as np

AUGMENTATIONS = ("rot90", "flip", "rotate", "reverse")
FRAMES = ("x0", "y", "x1")


def rotate_frame(frame: np.ndarray, degrees: float) -> np.ndarray:
    """Counter-clockwise about the centre ((w-1)/2, (h-1)/2), bilinear, black outside (tfa.image.rotate)."""
    height, width = frame.shape[:2]
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2.0, (height - 1) / 2.0), degrees, 1.0)
    return cv2.warpAffine(frame, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(0.0, 0.0, 0.0))


def augment(sample: Dict[str, np.ndarray], rng: np.random.Generator,
            names: Sequence[str] = AUGMENTATIONS) -> Dict[str, np.ndarray]:
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentations {unknown}; known: {', '.join(AUGMENTATIONS)}")
    sample = dict(sample)
    for name in AUGMENTATIONS:  # the original's order, whatever order they were named in
        if name not in names:
            continue
        if name == "rot90":
            k = int(rng.integers(0, 4))
            if k:
                sample = {key: np.ascontiguousarray(np.rot90(sample[key], k)) for key in FRAMES}
        elif name == "flip":
            if rng.integers(0, 2):
                sample = {key: np.ascontiguousarray(sample[key][:, ::-1]) for key in FRAMES}
        elif name == "rotate":
            apply, angle = int(rng.integers(0, 2)), float(rng.uniform(-45.0, 45.0))
            if apply:
                sample = {key: rotate_frame(sample[key], angle) for key in FRAMES}
        elif name == "reverse":
            if rng.integers(0, 2):
                sample["x0"], sample["x1"] = sample["x1"], sample["x0"]
    return sample


def random_crop(sample: Dict[str, np.ndarray], size: int, rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """The same size×size window of all three frames, at a uniform random position (size <= 0: whole frames)."""
    if size <= 0:
        return sample
    height, width = sample["y"].shape[:2]
    if height < size or width < size:
        raise ValueError(f"a {width}x{height} frame is smaller than the {size}x{size} crop: choose a smaller --crop")
    top, left = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
    return {key: np.ascontiguousarray(sample[key][top:top + size, left:left + size]) for key in FRAMES}


def center_crop(sample: Dict[str, np.ndarray], size: int) -> Dict[str, np.ndarray]:
    """The central size×size window (for validation; whole frames where smaller or size <= 0)."""
    height, width = sample["y"].shape[:2]
    if size <= 0 or (height <= size and width <= size):
        return sample
    crop_h, crop_w = min(size, height), min(size, width)
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return {key: np.ascontiguousarray(sample[key][top:top + crop_h, left:left + crop_w]) for key in FRAMES}
