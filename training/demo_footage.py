"""Generated footage for trying train.py: a textured picture panning diagonally, as a frame folder.

    python -m training.demo_footage OUT_FOLDER [--frames 80] [--shift 6] [--size 96x128]

The texture is blurred noise (seeded, so every run gets the same frames); the
camera moves ``shift`` pixels right and ``shift // 2`` down per frame.
"""
import argparse
import os

import cv2
import numpy as np


def write(folder: str, frames: int = 80, shift: int = 6, size=(96, 128), seed: int = 0) -> None:
    height, width = size
    rng = np.random.default_rng(seed)
    canvas = (height + frames * shift // 2 + 8, width + frames * shift + 8)
    texture = cv2.GaussianBlur(rng.random((*canvas, 3)).astype(np.float32), (0, 0), 2.5)
    texture = (texture - texture.min()) / (texture.max() - texture.min())
    os.makedirs(folder, exist_ok=True)
    for i in range(frames):
        top, left = i * (shift // 2), i * shift
        frame = texture[top:top + height, left:left + width]
        cv2.imwrite(os.path.join(folder, f"frame_{i:05d}.png"), (frame[:, :, ::-1] * 255).round().astype(np.uint8))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--frames", type=int, default=80)
    parser.add_argument("--shift", type=int, default=6)
    parser.add_argument("--size", default="96x128", help="HEIGHTxWIDTH")
    args = parser.parse_args()
    write(args.folder, args.frames, args.shift, tuple(int(v) for v in args.size.split("x")))
