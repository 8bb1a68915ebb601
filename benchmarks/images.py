"""Workload B: 7 in-between frames of the two photos (1024x768; ``--quick``: a 192x128 crop).

``image_modes``: each ``inference.py`` mode (balanced, recursive, direct)
through ``image_pipeline.make_frames``, as ``inference.py`` makes them (each
frame's pyramids once, a pair's flows once): one timed run of all 7 frames
after a warm-up, divided by 7, since its frames do not cost the same.
``forward_per_frame``: the baseline of one ``forward()`` per frame, every
frame the same cost: the median of --repeats calls stands for all 7. The
network is the one the CLIs run (``common.cli_network``).
"""
from __future__ import annotations

import os
from typing import Dict

import torch

from benchmarks import common

FRAMES = 7


def photos(quick: bool):
    """photos/one.png and two.png as (H, W, 3) float arrays."""
    import media.images
    first, second = (media.images.read_image(os.path.join(common.ROOT, "photos", name))
                     for name in ("one.png", "two.png"))
    return (first[:128, :192], second[:128, :192]) if quick else (first, second)


def warmed_network(args) -> torch.nn.Module:
    model = common.cli_network(args.scratch, args.quick)
    warm = common.frames_of_size(128, 128)
    with torch.no_grad():
        model(warm[0], warm[1], common.mid_time())
    return model


def padded_photos(args):
    import runtime
    return [runtime.pad_to_multiple(runtime.image_to_tensor(photo))[0] for photo in photos(args.quick)]


def forward_per_frame(args) -> Dict:
    model = warmed_network(args)
    x0, x1 = padded_photos(args)
    with torch.no_grad():
        seconds = common.median_seconds(lambda: model(x0, x1, common.mid_time()), args.repeats, warmups=0)
    gflop = common.counted_gflop(model, lambda m, d: m(x0.to(d), x1.to(d), common.mid_time(d)))
    return dict(seconds=seconds, gflop=gflop, frames=args.repeats)


def image_modes(args) -> Dict:
    """``args.variant``'s mode: the 7 frames of its schedule, features and flows reused."""
    import frame_schedule
    import image_pipeline
    import runtime
    model = warmed_network(args)
    first, second = photos(args.quick)
    schedule = frame_schedule.make_schedule(args.variant, FRAMES)
    seconds = common.timed(lambda: image_pipeline.make_frames(
        runtime.ModelRuntime(model, torch.device("cpu"), torch.float32), first, second, schedule, reuse=True,
        show_progress=False))
    x0, x1 = padded_photos(args)

    def count(meta_model, device):
        for _ in image_pipeline.run_schedule(meta_model, x0.to(device), x1.to(device), schedule, reuse=True):
            pass
    return dict(seconds=seconds / FRAMES, gflop=common.counted_gflop(model, count) / FRAMES, frames=FRAMES)


VARIANTS = {"forward-per-frame": forward_per_frame, "balanced": image_modes, "recursive": image_modes,
            "direct": image_modes}


def add_notes(results: Dict[str, Dict], args) -> None:
    base = results["forward-per-frame"]["seconds"]
    for variant in ("balanced", "recursive", "direct"):
        results[variant]["note"] = f"{base / results[variant]['seconds']:.2f}x forward-per-frame"
