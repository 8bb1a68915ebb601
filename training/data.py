"""Training data: triplets of frames (x0, y, x1) from Vimeo-90K, triplet folders, or the user's footage.

A triplet is three image paths; ``y`` is the frame halfway between ``x0``
and ``x1`` (time 0.5, as in all the original's training data). Sources,
recognised by their layout (``find_triplets``):

- **Vimeo-90K** (the original's training set): a folder with
  ``tri_trainlist.txt`` and ``sequences/<seq>/<clip>/im1.png, im2.png,
  im3.png``; the training split is ``tri_trainlist.txt``, validation
  ``tri_testlist.txt`` when present.
- **a folder of triplets**: every folder below it holding exactly three
  image files, in natural order of their names. A fixed share
  (``val_fraction``) of them, chosen by a hash of the folder's path (so the
  split does not depend on which other folders exist), is validation.
- **footage**: a video file, a folder of frames (more than three images), or
  a folder of such. Frames that repeat the one before (held frames,
  ``video_pipeline.duplicate_difference``) are dropped; triplets are kept
  frames (i, i + gap, i + 2·gap) with no scene cut between them
  (``video_pipeline.scene_difference``). The last ``val_fraction`` of each
  source's frames is validation; triplets crossing that boundary are not
  used, so no frame is in both splits. Video frames are decoded once into
  PNG files in the run's folder (``cache``).

The found triplets are written to the run's folder (``manifest.json``) and
read back on resume, so a resumed run samples the very same list.

Sampling (``TripletSampler``): sample ``k`` of the run (step s, item i of
batch B: k = s·B + i) is triplet ``order(epoch)[k mod n]``, where epoch =
k div n and ``order`` is a permutation seeded by (seed, epoch), augmented and
cropped with a generator seeded by (seed, k). So the data of any step is a
function of the seed and the step, whatever the number of loader workers,
and resuming at step s needs nothing but s.
"""
import hashlib
import json
import os
from fractions import Fraction
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

import media.samples
import media.sources
import video_pipeline
from media import images
from media.errors import MediaError
from training import augment

Triplet = Tuple[str, str, str]
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".y4m", ".gif")


class DataError(ValueError):
    """The training data cannot be used; the message is one line."""


def _images_in(folder: str) -> List[str]:
    names = [n for n in os.listdir(folder) if n.lower().endswith(images.FRAME_EXTENSIONS) and not n.startswith(".")
             and os.path.isfile(os.path.join(folder, n))]
    return [os.path.join(folder, n) for n in sorted(names, key=media.sources.natural_sort_key)]


def _in_validation(key: str, fraction: float) -> bool:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64 < fraction


def is_vimeo(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "tri_trainlist.txt")) and os.path.isdir(os.path.join(path, "sequences"))


def vimeo_triplets(root: str, listing: str) -> List[Triplet]:
    path = os.path.join(root, listing)
    if not os.path.isfile(path):
        return []
    triplets = []
    with open(path) as file:
        for line in file:
            clip = line.strip()
            if clip:
                folder = os.path.join(root, "sequences", clip)
                triplets.append(tuple(os.path.join(folder, f"im{i}.png") for i in (1, 2, 3)))
    missing = [t[0] for t in triplets if not os.path.isfile(t[0])]
    if missing:
        raise DataError(f"{root}: {len(missing)} clips of {listing} are missing, e.g. {missing[0]}")
    return triplets


def folder_triplets(root: str, val_fraction: float) -> Tuple[List[Triplet], List[Triplet]]:
    train, validation = [], []
    for folder, subfolders, _ in os.walk(root):
        subfolders.sort(key=media.sources.natural_sort_key)
        files = _images_in(folder)
        if len(files) == 3:
            key = os.path.relpath(folder, root)
            (validation if _in_validation(key, val_fraction) else train).append(tuple(files))
    return train, validation


def _frame_sources(path: str) -> List[str]:
    """The videos and frame folders that a footage path stands for."""
    if os.path.isfile(path):
        return [path]
    if len(_images_in(path)) > 3:
        return [path]
    found = []
    for name in sorted(os.listdir(path), key=media.sources.natural_sort_key):
        child = os.path.join(path, name)
        if os.path.isfile(child) and name.lower().endswith(VIDEO_EXTENSIONS):
            found.append(child)
        elif os.path.isdir(child) and len(_images_in(child)) > 3:
            found.append(child)
    return found


def _kept_frames(source_path: str, cache: str, dedup_threshold: float, scene_threshold: float):
    """(frame paths, cut flags): the source's frames without held frames; cuts[i]: a scene cut before frame i."""
    try:
        source = media.sources.open_source(source_path, Fraction(1))
    except MediaError as error:
        raise DataError(str(error)) from None
    paths, cuts, previous = [], [], None
    folder = os.path.join(cache, hashlib.sha256(os.path.abspath(source_path).encode()).hexdigest()[:16])
    with source:
        frames = source.frames_from(Fraction(0))
        if dedup_threshold >= 0:
            frames = video_pipeline.drop_duplicates(frames, dedup_threshold)
        for frame in frames:
            if isinstance(source, media.sources.FolderSource):
                path = source.files[int(frame.time)]
            else:
                os.makedirs(folder, exist_ok=True)
                path = os.path.join(folder, f"{len(paths):06d}.png")
                pixels = frame.pixels if frame.pixels.dtype != np.float32 else media.samples.to_uint16(frame.pixels)
                if not cv2.imwrite(path, np.ascontiguousarray(pixels[:, :, ::-1])):
                    raise DataError(f"cannot write {path}")
            thumbnail = video_pipeline.scene_thumbnail(frame.pixels)
            cuts.append(previous is not None
                        and video_pipeline.scene_difference(previous, thumbnail) > scene_threshold)
            previous = thumbnail
            paths.append(path)
    return paths, cuts


def footage_triplets(path: str, cache: str, gap: int = 1, val_fraction: float = 0.1,
                     scene_threshold: float = video_pipeline.DEFAULT_SCENE_THRESHOLD,
                     dedup_threshold: float = video_pipeline.DEFAULT_DEDUP_THRESHOLD):
    if gap < 1:
        raise DataError(f"the frame gap must be at least 1, got {gap}")
    sources = _frame_sources(path)
    if not sources:
        raise DataError(f"{path} holds no videos, frame folders or triplet folders")
    train, validation = [], []
    for source_path in sources:
        paths, cuts = _kept_frames(source_path, cache, dedup_threshold, scene_threshold)
        held_out = 0
        if val_fraction > 0:
            # At least one whole validation triplet, where the source leaves one for training too.
            held_out = max(int(round(len(paths) * val_fraction)), 2 * gap + 1)
            if len(paths) - held_out < 2 * gap + 1:
                held_out = 0
        split = len(paths) - held_out
        cut_before = np.cumsum(cuts)  # triplet i..j has no cut inside when the counts at i and j agree
        for first in range(0, len(paths) - 2 * gap):
            last = first + 2 * gap
            if cut_before[last] != cut_before[first]:
                continue
            if last < split:
                train.append((paths[first], paths[first + gap], paths[last]))
            elif first >= split:
                validation.append((paths[first], paths[first + gap], paths[last]))
    return train, validation


def find_triplets(paths: Sequence[str], cache: str, val_fraction: float = 0.1, gap: int = 1,
                  scene_threshold: float = video_pipeline.DEFAULT_SCENE_THRESHOLD,
                  dedup_threshold: float = video_pipeline.DEFAULT_DEDUP_THRESHOLD) -> Dict[str, object]:
    """{'train': [...], 'validation': [...], 'sources': [(path, layout, n_train, n_val)]} for the data paths."""
    if not 0 <= val_fraction < 1:
        raise DataError(f"the validation fraction must be in [0, 1), got {val_fraction}")
    train, validation, sources = [], [], []
    for path in paths:
        if not os.path.exists(path):
            raise DataError(f"training data not found: {path}")
        if os.path.isdir(path) and is_vimeo(path):
            layout = "vimeo90k"
            part_train, part_val = vimeo_triplets(path, "tri_trainlist.txt"), vimeo_triplets(path, "tri_testlist.txt")
        else:
            part_train, part_val = (folder_triplets(path, val_fraction) if os.path.isdir(path) else ([], []))
            layout = "triplet folders"
            if not part_train and not part_val:
                layout = "footage"
                part_train, part_val = footage_triplets(path, cache, gap, val_fraction, scene_threshold,
                                                        dedup_threshold)
        sources.append((path, layout, len(part_train), len(part_val)))
        train += part_train
        validation += part_val
    if not train:
        raise DataError(f"no training triplets in {', '.join(paths)} (see train.py --help for the layouts)")
    return {"train": [list(t) for t in train], "validation": [list(t) for t in validation], "sources": sources}


def save_manifest(manifest: Dict[str, object], path: str) -> None:
    temporary = path + ".tmp"
    with open(temporary, "w") as file:
        json.dump(manifest, file)
    os.replace(temporary, path)


def load_manifest(path: str) -> Dict[str, object]:
    with open(path) as file:
        return json.load(file)


def read_triplet(triplet: Sequence[str]) -> Dict[str, np.ndarray]:
    sample = {key: images.read_image(path) for key, path in zip(augment.FRAMES, triplet)}
    shapes = {sample[key].shape for key in augment.FRAMES}
    if len(shapes) != 1:
        raise DataError(f"the frames of {triplet[0]} ... differ in size")
    return sample


def to_tensors(sample: Dict[str, np.ndarray]) -> Dict[str, torch.Tensor]:
    tensors = {key: torch.from_numpy(np.ascontiguousarray(sample[key].transpose(2, 0, 1))) for key in augment.FRAMES}
    tensors["time"] = torch.full((1,), 0.5)
    return tensors


class TripletSampler(torch.utils.data.Dataset):
    """Sample ``k`` of the run (see the module docstring) as tensors x0, y, x1 (3, crop, crop), time (1,)."""

    def __init__(self, triplets: Sequence[Sequence[str]], seed: int, crop_size: int,
                 augmentations: Sequence[str] = augment.AUGMENTATIONS):
        self.triplets, self.seed, self.crop_size, self.augmentations = list(triplets), seed, crop_size, augmentations
        self._order_epoch, self._order = None, None

    def order(self, epoch: int) -> np.ndarray:
        if self._order_epoch != epoch:
            self._order = np.random.default_rng([self.seed, 0, epoch]).permutation(len(self.triplets))
            self._order_epoch = epoch
        return self._order

    def triplet_of(self, k: int) -> Sequence[str]:
        epoch, position = divmod(k, len(self.triplets))
        return self.triplets[int(self.order(epoch)[position])]

    def __len__(self):
        return 2 ** 62  # indexed by sample number; the sampler decides which

    def __getitem__(self, k: int) -> Dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, 1, k])
        sample = augment.augment(read_triplet(self.triplet_of(k)), rng, self.augmentations)
        return to_tensors(augment.random_crop(sample, self.crop_size, rng))


def batches(sampler: TripletSampler, batch_size: int, first_step: int, workers: int = 0,
            rank: int = 0, world_size: int = 1):
    """Batches from ``first_step`` on; with several processes, process ``rank`` gets its share of each batch.

    The combined batch of a step is the same whatever ``world_size``: process r
    takes items r·b ... (r+1)·b - 1 of it, b = batch_size / world_size.
    """
    if batch_size % world_size:
        raise DataError(f"the batch size {batch_size} is not divisible by the {world_size} processes")
    share = batch_size // world_size

    class _Numbers(torch.utils.data.Sampler):
        def __iter__(self):
            step = first_step
            while True:
                start = step * batch_size + rank * share
                yield from range(start, start + share)
                step += 1

    loader = torch.utils.data.DataLoader(sampler, batch_size=share, sampler=_Numbers(), num_workers=workers,
                                         persistent_workers=False, prefetch_factor=2 if workers else None)
    return iter(loader)


def validation_batches(triplets: Sequence[Sequence[str]], crop_size: int, count: Optional[int] = None):
    """The first ``count`` validation triplets, centre-cropped, one per batch (sizes may differ)."""
    for triplet in list(triplets)[:count]:
        sample = augment.center_crop(read_triplet(triplet), crop_size)
        yield {key: value.unsqueeze(0) for key, value in to_tensors(sample).items()}
