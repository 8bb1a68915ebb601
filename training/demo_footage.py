"""Generated footage for trying train.py and evaluate.py: textures panning at a known speed, as frames.

    python -m training.demo_footage OUT [--frames 80] [--shift 6] [--size 96x128]
    python -m training.demo_footage OUT --clips 16 --speed 0.5,3 [--frames 40] [--size 128x128] [--seed 1]
    python -m training.demo_footage OUT --vimeo 48 --speed 10,14 [--size 128x128] [--seed 3]

- Without ``--clips`` or ``--vimeo`` (``write``): one frame folder, a blurred
  noise texture whose camera moves ``--shift`` pixels right and ``shift // 2``
  down per frame (the README's first demo).
- ``--clips N`` (``write_clips``): N frame folders ``clip_000/`` ... below
  OUT, train.py's "footage" layout. Each clip has its own texture (blurred
  noise at three scales, so that both fine and coarse detail can be matched)
  and a straight camera path in a random direction at a random speed, drawn
  uniformly from ``--speed MIN,MAX`` pixels per frame (sub-pixel positions,
  bicubic resampling). Consecutive frames move by the speed, so a footage
  triplet (i, i+1, i+2) has its inputs 2 x speed apart.
- ``--vimeo N`` (``write_vimeo``): N triplets in the layout of Vimeo-90K's
  test set, which evaluate.py (``--dataset vimeo90k``) and train.py read:
  ``sequences/00001/0001/im1.png, im2.png, im3.png`` ... and
  ``tri_testlist.txt`` listing them; each triplet its own texture, direction
  and speed, the ground truth ``im2`` exactly halfway. ``--train K`` adds K
  more triplets listed in ``tri_trainlist.txt`` (then train.py reads the
  folder as Vimeo-90K with tri_testlist.txt as validation).

Everything is drawn from ``--seed``: the same command writes the same frames.
Different seeds give different textures and paths, which is how a held-out
set is kept apart from the training footage.
"""
import argparse
import math
import os
from typing import Sequence, Tuple

import cv2
import numpy as np

TEXTURE_SCALES = ((1.5, 0.35), (4.0, 0.4), (12.0, 0.25))  # (Gaussian sigma in px, weight)


def write(folder: str, frames: int = 80, shift: int = 6, size=(96, 128), seed: int = 0) -> None:
    """The first demo: one diagonal pan of blurred noise (integer shifts), as frame_00000.png ..."""
    height, width = size
    rng = np.random.default_rng(seed)
    canvas = (height + frames * shift // 2 + 8, width + frames * shift + 8)
    texture = cv2.GaussianBlur(rng.random((*canvas, 3)).astype(np.float32), (0, 0), 2.5)
    texture = (texture - texture.min()) / (texture.max() - texture.min())
    os.makedirs(folder, exist_ok=True)
    for i in range(frames):
        top, left = i * (shift // 2), i * shift
        frame = texture[top:top + height, left:left + width]
        _save(os.path.join(folder, f"frame_{i:05d}.png"), frame)


def _save(path: str, frame: np.ndarray) -> None:
    """An RGB float frame in [0, 1] as an 8-bit PNG."""
    pixels = (np.clip(frame, 0, 1)[:, :, ::-1] * 255).round().astype(np.uint8)
    if not cv2.imwrite(path, pixels):
        raise OSError(f"cannot write {path}")


def texture(shape: Tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1]: noise blurred at several scales, each normalised, weighted and summed."""
    total = np.zeros((*shape, 3), np.float32)
    for sigma, weight in TEXTURE_SCALES:
        layer = cv2.GaussianBlur(rng.random((*shape, 3)).astype(np.float32), (0, 0), sigma)
        layer = (layer - layer.min()) / max(float(layer.max() - layer.min()), 1e-6)
        total += weight * layer
    return (total - total.min()) / max(float(total.max() - total.min()), 1e-6)


def pan(frames: int, speed: float, angle: float, size: Tuple[int, int], rng: np.random.Generator):
    """``frames`` views of a new texture, the camera moving ``speed`` px per frame at ``angle`` degrees."""
    height, width = size
    dx, dy = speed * math.cos(math.radians(angle)), speed * math.sin(math.radians(angle))
    margin = 8
    travel_x, travel_y = abs(dx) * (frames - 1), abs(dy) * (frames - 1)
    canvas = texture((int(math.ceil(height + travel_y)) + 2 * margin, int(math.ceil(width + travel_x)) + 2 * margin),
                     rng)
    start_x = margin + (travel_x if dx < 0 else 0.0)
    start_y = margin + (travel_y if dy < 0 else 0.0)
    views = []
    for i in range(frames):
        x, y = start_x + i * dx, start_y + i * dy
        # Output pixel (u, v) shows canvas pixel (u + x, v + y).
        matrix = np.array([[1, 0, x], [0, 1, y]], np.float64)
        views.append(cv2.warpAffine(canvas, matrix, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                    borderMode=cv2.BORDER_REFLECT))
    return views


def _speed_and_angle(rng: np.random.Generator, speeds: Sequence[float]) -> Tuple[float, float]:
    low, high = (speeds[0], speeds[-1])
    return float(rng.uniform(low, high)), float(rng.uniform(0.0, 360.0))


def write_clips(folder: str, clips: int, frames: int = 40, speeds: Sequence[float] = (0.5, 3.0),
                size: Tuple[int, int] = (128, 128), seed: int = 0):
    """``clips`` frame folders (module docstring); returns [(clip folder, speed, angle)]."""
    rng = np.random.default_rng([seed, 1])
    written = []
    for k in range(clips):
        speed, angle = _speed_and_angle(rng, speeds)
        clip = os.path.join(folder, f"clip_{k:03d}")
        os.makedirs(clip, exist_ok=True)
        for i, view in enumerate(pan(frames, speed, angle, size, rng)):
            _save(os.path.join(clip, f"frame_{i:05d}.png"), view)
        written.append((clip, speed, angle))
    return written


def write_vimeo(folder: str, test: int, speeds: Sequence[float] = (0.5, 3.0), size: Tuple[int, int] = (128, 128),
                seed: int = 0, train: int = 0):
    """Triplets in Vimeo-90K's layout (module docstring); returns {'test': [names], 'train': [names]}."""
    rng = np.random.default_rng([seed, 2])
    names = {"test": [], "train": []}
    for k in range(test + train):
        split = "test" if k < test else "train"
        name = f"{1 + k // 1000:05d}/{1 + k % 1000:04d}"
        clip = os.path.join(folder, "sequences", *name.split("/"))
        os.makedirs(clip, exist_ok=True)
        speed, angle = _speed_and_angle(rng, speeds)
        for i, view in enumerate(pan(3, speed, angle, size, rng)):
            _save(os.path.join(clip, f"im{i + 1}.png"), view)
        names[split].append(name)
    for split, listed in names.items():
        if listed:
            with open(os.path.join(folder, f"tri_{split}list.txt"), "w") as listing:
                listing.write("".join(f"{name}\n" for name in listed))
    return names


def _speeds(text: str) -> Tuple[float, float]:
    values = [float(v) for v in text.split(",")]
    if len(values) not in (1, 2) or min(values) < 0 or values[0] > values[-1]:
        raise argparse.ArgumentTypeError(f"expected SPEED or MIN,MAX (px per frame), got {text!r}")
    return values[0], values[-1]


def _size(text: str) -> Tuple[int, int]:
    try:
        height, width = (int(v) for v in text.split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH, got {text!r}") from None
    return height, width


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--frames", type=int, default=None, help="frames per clip (default 80; 40 with --clips)")
    parser.add_argument("--shift", type=int, default=6, help="the first demo's shift per frame")
    parser.add_argument("--size", type=_size, default=None, help="HEIGHTxWIDTH (default 96x128; 128x128 with "
                        "--clips or --vimeo)")
    parser.add_argument("--seed", type=int, default=0)
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--clips", type=int, help="write this many frame folders of random pans")
    kind.add_argument("--vimeo", type=int, metavar="N", help="write N test triplets in Vimeo-90K's layout")
    parser.add_argument("--train", type=int, default=0, help="with --vimeo: also this many training triplets")
    parser.add_argument("--speed", type=_speeds, default=(0.5, 3.0), help="MIN,MAX px per frame (default 0.5,3)")
    args = parser.parse_args(argv)
    if args.clips is None and args.vimeo is None:
        write(args.folder, args.frames or 80, args.shift, args.size or (96, 128), args.seed)
    elif args.clips is not None:
        for clip, speed, angle in write_clips(args.folder, args.clips, args.frames or 40, args.speed,
                                              args.size or (128, 128), args.seed):
            print(f"{clip}: {speed:.2f} px/frame at {angle:.0f} deg")
    else:
        names = write_vimeo(args.folder, args.vimeo, args.speed, args.size or (128, 128), args.seed, args.train)
        print(f"{args.folder}: {len(names['test'])} test and {len(names['train'])} training triplets "
              f"(Vimeo-90K layout)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
