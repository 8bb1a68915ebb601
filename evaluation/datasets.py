"""The five benchmarks of the original FILM, read from the folders their downloads unpack to.

Conventions, stated once for this module (each matches what the original's
``datasets/create_*_tfrecord.py`` puts into its TFRecords, and how
``training/data_lib.py`` decodes them for ``eval/eval_cli.py``):

- An example is a triplet: the first input (time 0), the ground truth (time
  0.5: the original always evaluates at 0.5) and the second input (time 1).
  Its ``key`` is the ground truth's path relative to the dataset folder,
  without extension (e.g. ``sequences/00001/0389/im2``). The original's key is
  only the file name (``im2``, the same for every Vimeo triplet), which cannot
  tell rows apart when a run resumes.
- Wider windows (``span`` K > 2, for the benchmarks made of whole clips:
  Xiph and ``frames``): frames s and s + K of a clip are the inputs and each
  frame s + i between them is an example at time i / K, keyed
  ``<ground truth key>@<i>of<K>``; the examples of one window are listed
  together, in time order. With K = 2 these are the triplets above.
- Frames are read as 8-bit RGB (alpha dropped, gray repeated) and become
  float32 as TensorFlow's ``decode_image(..., dtype=tf.float32)`` makes them:
  samples times float32(1/255) (``media.samples.to_float``; a division by 255
  differs in the last bit for some values). 16-bit PNGs are read at 16 bits
  (times 1/65535, as TensorFlow does), except for Xiph, whose resize works on
  8-bit samples only.
- Nothing is cropped or resized, except Xiph (``create_xiph_tfrecord.py``
  with ``datasets/util.py``), where the order is centre crop, then resize:
  Xiph-4K crops the central half: ``H // 4`` rows and ``W // 4`` columns off
  each side (4096x2160 -> 2048x1080). Xiph-2K resizes to ``(H // 2, W // 2)``
  in linear light: 8-bit samples / 255, clipped, to the power 2.2; the
  area-weighted mean of the source pixels under each output pixel
  (``skimage.transform.resize_local_mean``); clipped, to the power 1 / 2.2;
  times 255 plus 0.5, clipped to [0, 255] and truncated to uint8. The result
  was stored as PNG, so the network sees those 8-bit samples.
- Which examples: Vimeo-90K, the folders listed in ``tri_testlist.txt``, in
  its order; Middlebury, every ``other-data`` folder that has a ground truth
  in ``other-gt-interp`` (the 12 "other" sequences with one), by name;
  UCF101, every numbered folder of ``ucf101_interp_ours``, by number; Xiph,
  the frames of the folder sorted by name, taken as clips of 100 frames
  (the original: 8 clips), and in each clip the triplets (f - 1, f, f + 1) for
  f = 1, 3, ..., 97 (49 per clip, 392 in all); ``frames`` (not one of the
  original's: the user's own footage), every image of the folder as one clip,
  or each folder in it as a clip, the triplets (f - 1, f, f + 1) for
  f = 1, 3, ... In both, windows of span K start at frames 0, K, 2K, ... of
  the clip, as long as they end within it (for a Xiph clip and K = 2: the
  original's 49 triplets).

A folder that lacks something is refused before anything runs, with one line
naming the first thing missing (``DatasetError``).
"""
from __future__ import annotations

import os
from fractions import Fraction
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

import numpy as np

import media.images
import media.samples
from media.errors import MediaError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
XIPH_CLIP_FRAMES = 100      # the original's --num_frames
XIPH_CLIPS = 8              # the original's --num_clips
XIPH_GAMMA = 2.2            # datasets/util.py resamples in this approximate linear light


class DatasetError(MediaError):
    """A dataset folder that lacks what its benchmark needs, or a frame that cannot be used; one line."""


class Example(NamedTuple):
    """One triplet: the two inputs and the ground truth between them (paths), at ``time`` between them."""

    key: str
    first: str
    ground_truth: str
    second: str
    time: Fraction = Fraction(1, 2)

    @property
    def files(self):
        """The three frames' paths."""
        return self.first, self.ground_truth, self.second

    @property
    def window(self):
        """The two inputs: examples with the same window are made by one run of a schedule."""
        return self.first, self.second


class Benchmark(NamedTuple):
    """A benchmark: where its triplets are and how its frames are prepared."""

    name: str
    title: str                                    # the paper's name for it
    layout: str                                   # the expected folder layout, for --help
    find: Callable[..., List[Example]]            # (dataset folder, span) -> its examples, checked complete
    prepare: Optional[Callable[[np.ndarray], np.ndarray]] = None  # uint8 frame -> what the network sees
    clips: bool = False                           # made of whole clips: windows wider than 2 are possible


# --------------------------------------------------------------------------- reading frames

def read_samples(path: str) -> np.ndarray:
    """An image file as (H, W, 3) RGB samples, uint8 or uint16, as stored (no EXIF turn)."""
    try:
        decoded = media.images.decode_file(path)
    except media.images.ImageReadError as error:
        raise DatasetError(str(error)) from None
    if decoded.dtype not in (np.uint8, np.uint16):
        raise DatasetError(f"expected 8- or 16-bit samples, found {decoded.dtype} in {path}")
    if decoded.ndim == 2:
        decoded = decoded[:, :, None]
    channels = decoded.shape[2]
    if channels in (1, 2):
        return np.ascontiguousarray(np.repeat(decoded[:, :, :1], 3, axis=2))
    if channels in (3, 4):
        return np.ascontiguousarray(decoded[:, :, 2::-1])  # OpenCV's BGR(A) -> RGB
    raise DatasetError(f"unsupported number of channels ({channels}) in {path}")


def load_frame(path: str, benchmark: Benchmark) -> np.ndarray:
    """A frame as the original's network sees it: float32 (H, W, 3) RGB in [0, 1] (module docstring)."""
    samples = read_samples(path)
    if benchmark.prepare is not None:
        if samples.dtype != np.uint8:
            raise DatasetError(f"{benchmark.name} frames are resized as 8-bit samples, found 16-bit: {path}")
        samples = benchmark.prepare(samples)
    return media.samples.to_float(samples)


def load_window(examples: Sequence[Example], benchmark: Benchmark):
    """(first, second, [ground truth of each example]) float32 frames of examples sharing one window,
    checked to be of one size."""
    first_path, second_path = examples[0].window
    paths = [first_path, second_path, *(example.ground_truth for example in examples)]
    frames = [load_frame(path, benchmark) for path in paths]
    sizes = {frame.shape for frame in frames}
    if len(sizes) > 1:
        described = ", ".join(f"{os.path.basename(p)} {f.shape[1]}x{f.shape[0]}" for p, f in zip(paths, frames))
        raise DatasetError(f"the frames of {examples[0].key} differ in size: {described}")
    return frames[0], frames[1], frames[2:]


def load_example(example: Example, benchmark: Benchmark):
    """(first, ground truth, second) float32 frames of one example, checked to be of one size."""
    first, second, (truth,) = load_window([example], benchmark)
    return first, truth, second


# --------------------------------------------------------------------------- Xiph crops and resizes

def centre_crop_half(samples: np.ndarray) -> np.ndarray:
    """Xiph-4K: the original's centre crop with factor 2 (H // 4 rows, W // 4 columns off each side)."""
    rows, columns = samples.shape[0] // 4, samples.shape[1] // 4
    return samples[rows:samples.shape[0] - rows, columns:samples.shape[1] - columns]


def _local_mean_weights(old: int, new: int) -> np.ndarray:
    """(new, old) weights: each output pixel's share of each input pixel it covers, rows summing to 1."""
    scale = old / new
    edges = np.arange(new + 1, dtype=np.float64) * scale
    starts, ends = edges[:-1], edges[1:]
    positions = np.arange(old, dtype=np.float64)
    overlap = np.clip(np.minimum(ends[:, None], positions[None, :] + 1) - np.maximum(starts[:, None],
                                                                                     positions[None, :]), 0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def resize_local_mean(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-weighted mean resize of a float32 (H, W, C) image, in float32 (as ``skimage``'s)."""
    rows = _local_mean_weights(image.shape[0], height).astype(np.float32)
    columns = _local_mean_weights(image.shape[1], width).astype(np.float32)
    resized = np.tensordot(rows, image, axes=([1], [0]))                  # (height, W, C)
    return np.tensordot(columns, resized, axes=([1], [1])).transpose(1, 0, 2)  # (height, width, C)


def downscale_half_linear_light(samples: np.ndarray) -> np.ndarray:
    """Xiph-2K: the original's resize to (H // 2, W // 2) in linear light (module docstring)."""
    linear = np.power(np.clip(samples.astype(np.float32) / np.float32(255), 0, 1), np.float32(XIPH_GAMMA))
    resized = resize_local_mean(linear, samples.shape[0] // 2, samples.shape[1] // 2)
    encoded = np.power(np.clip(resized, 0, 1), np.float32(1 / XIPH_GAMMA))
    return np.clip(encoded * np.float32(255) + np.float32(0.5), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- finding examples

def _require_folder(path: str, what: str) -> None:
    if not os.path.isdir(path):
        raise DatasetError(f"{what} not found: {path}" if not os.path.exists(path) else
                           f"{what} should be a folder: {path}")


def _check_complete(examples: Sequence[Example], dataset: str) -> List[Example]:
    """Every file of every example exists; otherwise one line naming the first missing file."""
    missing = list(dict.fromkeys(path for example in examples for path in example.files if not os.path.isfile(path)))
    if missing:
        incomplete = sum(1 for example in examples if any(not os.path.isfile(p) for p in example.files))
        raise DatasetError(f"{dataset}: {incomplete} of {len(examples)} examples are incomplete; "
                           f"missing {missing[0]}{f' and {len(missing) - 1} more files' if len(missing) > 1 else ''}")
    if not examples:
        raise DatasetError(f"{dataset}: no examples found")
    return list(examples)


def _key(root: str, path: str) -> str:
    return os.path.splitext(os.path.relpath(path, root))[0].replace(os.sep, "/")


def _example(root: str, first: str, ground_truth: str, second: str) -> Example:
    return Example(_key(root, ground_truth), first, ground_truth, second)


def find_vimeo90k(root: str) -> List[Example]:
    listing = os.path.join(root, "tri_testlist.txt")
    if not os.path.isfile(listing):
        raise DatasetError(f"vimeo90k: tri_testlist.txt not found in {root} (expected the unpacked "
                           f"vimeo_interp_test or vimeo_triplet folder)")
    sequences = os.path.join(root, "sequences")
    _require_folder(sequences, "vimeo90k: the sequences folder")
    with open(listing, encoding="utf-8") as text:
        names = [line.strip() for line in text if line.strip()]
    examples = [_example(root, *(os.path.join(sequences, *name.split("/"), f"im{i}.png") for i in (1, 2, 3)))
                for name in names]
    return _check_complete(examples, "vimeo90k")


def find_middlebury(root: str) -> List[Example]:
    inputs, truths = os.path.join(root, "other-data"), os.path.join(root, "other-gt-interp")
    _require_folder(inputs, "middlebury: the other-data folder")
    _require_folder(truths, "middlebury: the other-gt-interp folder")
    # The original lists other-data and drops the sequences without a ground truth
    # (12 of its 24 have one); a ground truth without its inputs is missing data.
    names = sorted(name for name in os.listdir(truths) if os.path.isdir(os.path.join(truths, name)))
    examples = [_example(root, os.path.join(inputs, name, "frame10.png"),
                         os.path.join(truths, name, "frame10i11.png"), os.path.join(inputs, name, "frame11.png"))
                for name in names]
    return _check_complete(examples, "middlebury")


def _numbered_folders(folder: str) -> List[str]:
    names = [name for name in os.listdir(folder) if os.path.isdir(os.path.join(folder, name))]
    return sorted(names, key=lambda name: (0, int(name), "") if name.isdigit() else (1, 0, name))


def find_ucf101(root: str) -> List[Example]:
    # The original reads UCF101_results/ucf101_interp_ours; the folder above it is accepted too.
    folder = os.path.join(root, "ucf101_interp_ours") if os.path.isdir(os.path.join(root, "ucf101_interp_ours")) \
        else root
    names = _numbered_folders(folder)
    if not names:
        raise DatasetError(f"ucf101: no triplet folders (1/, 2/, ...) in {folder}")
    examples = [_example(root, *(os.path.join(folder, name, base)
                                 for base in ("frame_00.png", "frame_01_gt.png", "frame_02.png")))
                for name in names]
    return _check_complete(examples, "ucf101")


def _image_files(root: str) -> List[str]:
    return sorted(name for name in os.listdir(root)
                  if name.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(root, name)))


def _clip_windows(root: str, folder: str, frames: Sequence[str], span: int) -> List[Example]:
    """The examples of the windows of ``span`` frames of one clip, the ``frames`` in ``folder`` (module
    docstring); keys relative to the dataset folder ``root``."""
    examples = []
    for start in range(0, len(frames) - span, span):
        first, second = (os.path.join(folder, frames[start + offset]) for offset in (0, span))
        for offset in range(1, span):
            truth = os.path.join(folder, frames[start + offset])
            key = _key(root, truth) if span == 2 else f"{_key(root, truth)}@{offset}of{span}"
            examples.append(Example(key, first, truth, second, Fraction(offset, span)))
    return examples


def find_xiph(root: str, span: int = 2, dataset: str = "xiph") -> List[Example]:
    _require_folder(root, f"{dataset}: the frames folder")
    frames = _image_files(root)
    if not frames or len(frames) % XIPH_CLIP_FRAMES:
        raise DatasetError(f"{dataset}: expected the first {XIPH_CLIP_FRAMES} frames of each clip "
                           f"({XIPH_CLIPS * XIPH_CLIP_FRAMES} for the original's {XIPH_CLIPS} clips) in {root}, "
                           f"found {len(frames)} image files")
    examples = []
    for clip_start in range(0, len(frames), XIPH_CLIP_FRAMES):
        examples.extend(_clip_windows(root, root, frames[clip_start:clip_start + XIPH_CLIP_FRAMES], span))
    return _check_complete(examples, dataset)


def find_frames(root: str, span: int = 2) -> List[Example]:
    _require_folder(root, "frames: the frames folder")
    frames = _image_files(root)
    if frames:
        clips = [(root, frames)]
    else:  # a folder of clips, one folder each
        names = sorted(name for name in os.listdir(root) if os.path.isdir(os.path.join(root, name)))
        clips = [(os.path.join(root, name), _image_files(os.path.join(root, name))) for name in names]
        clips = [(folder, files) for folder, files in clips if files]
        if not clips:
            raise DatasetError(f"frames: no image files in {root} or in the folders in it")
    examples = []
    for folder, files in clips:
        if len(files) < span + 1:
            raise DatasetError(f"frames: a window of span {span} needs at least {span + 1} frames, found "
                               f"{len(files)} in {folder}")
        examples.extend(_clip_windows(root, folder, files, span))
    return _check_complete(examples, "frames")


VIMEO_LAYOUT = """\
  DATASET_DIR/                 vimeo_interp_test (or vimeo_triplet) unpacked
    tri_testlist.txt           one triplet folder per line, e.g. 00001/0389
    sequences/00001/0389/im1.png, im2.png (ground truth), im3.png"""
MIDDLEBURY_LAYOUT = """\
  DATASET_DIR/                 other-color-allframes.zip and other-gt-interp.zip unpacked
    other-data/<Name>/frame10.png, frame11.png
    other-gt-interp/<Name>/frame10i11.png (ground truth)
  every <Name> of other-gt-interp is an example (the 12 with a ground truth)"""
UCF101_LAYOUT = """\
  DATASET_DIR/                 UCF101_results.zip unpacked (or its ucf101_interp_ours/)
    ucf101_interp_ours/<N>/frame_00.png, frame_01_gt.png (ground truth), frame_02.png"""
XIPH_LAYOUT = """\
  DATASET_DIR/                 one folder with the first 100 frames of each 4K clip
    <clip>-001.png ... (any names that sort clip by clip, frame by frame; 800 for 8 clips)
  triplets (f-1, f, f+1) for f = 1, 3, ..., 97 of each clip; xiph2k: frames
  resized to half size in linear light; xiph4k: the central half cropped"""
FRAMES_LAYOUT = """\
  DATASET_DIR/                 your own footage: consecutive frames of one clip
    0001.png, 0002.png, ...    (any names that sort in time order)
  or DATASET_DIR/<clip>/0001.png, ...: a folder per clip (train.py's footage layout)
  triplets (f-1, f, f+1) for f = 1, 3, 5, ... of each clip; frames as they are"""

BENCHMARKS: Dict[str, Benchmark] = {
    "vimeo90k": Benchmark("vimeo90k", "Vimeo-90K", VIMEO_LAYOUT, find_vimeo90k),
    "middlebury": Benchmark("middlebury", "Middlebury-other", MIDDLEBURY_LAYOUT, find_middlebury),
    "ucf101": Benchmark("ucf101", "UCF101", UCF101_LAYOUT, find_ucf101),
    "xiph2k": Benchmark("xiph2k", "Xiph-2K", XIPH_LAYOUT, lambda root, span: find_xiph(root, span, "xiph2k"),
                        downscale_half_linear_light, clips=True),
    "xiph4k": Benchmark("xiph4k", "Xiph-4K", XIPH_LAYOUT, lambda root, span: find_xiph(root, span, "xiph4k"),
                        centre_crop_half, clips=True),
    "frames": Benchmark("frames", "Frames", FRAMES_LAYOUT, find_frames, clips=True),
}
CLIP_BENCHMARKS = tuple(name for name, benchmark in BENCHMARKS.items() if benchmark.clips)


def find_examples(name: str, root: str, span: int = 2) -> List[Example]:
    """The examples of benchmark ``name`` in the folder ``root``, checked complete (``DatasetError`` if not);
    ``span`` > 2 only for the benchmarks of whole clips (module docstring)."""
    benchmark = BENCHMARKS[name]
    if span != 2 and not benchmark.clips:
        raise DatasetError(f"{name} holds triplets only: windows of {span} frames need whole clips "
                           f"({', '.join(CLIP_BENCHMARKS)})")
    if not os.path.isdir(root):
        raise DatasetError(f"dataset folder not found: {root}" if not os.path.exists(root) else
                           f"the dataset should be a folder: {root}")
    if benchmark.clips:
        return benchmark.find(root, span)
    return benchmark.find(root)

