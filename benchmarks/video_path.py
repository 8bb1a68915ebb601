"""Workload C: twice the frame rate of a 720p sequence (``--quick``: 128x72), --sequence_frames frames.

``video_reuse``: the video path's order of work (each frame encoded once, a
pair's flows once, one new frame per pair): one timed run of the whole
sequence after a warm-up, per frame made. ``forward_per_pair``: the
baseline of one ``forward()`` per pair, every pair the same cost: the
median of --repeats pairs stands for all of them. The network is the one
the CLIs run (``common.cli_network``).
"""
from __future__ import annotations

import statistics
from typing import Dict

import torch

from benchmarks import common


def padded_sequence(args):
    height, width = (72, 128) if args.quick else (720, 1280)
    frames = common.frames_of_size(height, width, args.sequence_frames)
    return [torch.nn.functional.pad(f, (0, -width % 64, 0, -height % 64), mode="replicate") for f in frames]


def warmed_network(args, padded) -> torch.nn.Module:
    model = common.cli_network(args.scratch, args.quick)
    with torch.no_grad():
        model(padded[0], padded[1], common.mid_time())
    return model


def video_reuse(args) -> Dict:
    padded = padded_sequence(args)
    model = warmed_network(args, padded)

    def video_path(m, device):
        half = common.mid_time(device)
        previous = m.encode(padded[0].to(device))
        for frame in padded[1:]:
            current = m.encode(frame.to(device))
            flows = m.estimate_flows(previous[1], current[1])
            m.synthesize(previous[0], previous[1], current[0], current[1], flows[0], flows[1], half)
            previous = current

    made = len(padded) - 1
    with torch.no_grad():
        seconds = common.timed(lambda: video_path(model, "cpu"))
    return dict(seconds=seconds / made, gflop=common.counted_gflop(model, video_path) / made, frames=made)


def forward_per_pair(args) -> Dict:
    padded = padded_sequence(args)
    model = warmed_network(args, padded)
    half = common.mid_time()
    pairs = list(zip(padded, padded[1:]))[:args.repeats]
    with torch.no_grad():
        seconds = statistics.median(common.timed(lambda: model(a, b, half)) for a, b in pairs)
    gflop = common.counted_gflop(model, lambda m, d: m(padded[0].to(d), padded[1].to(d), common.mid_time(d)))
    return dict(seconds=seconds, gflop=gflop, frames=len(pairs))


VARIANTS = {"forward-per-pair": forward_per_pair, "reuse": video_reuse}


def add_notes(results: Dict[str, Dict], args) -> None:
    ratio = results["forward-per-pair"]["seconds"] / results["reuse"]["seconds"]
    results["reuse"]["note"] = f"{ratio:.2f}x forward-per-pair, {args.sequence_frames} frames"
