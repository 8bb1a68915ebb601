"""Workload A: one mid frame at 1280x704 (``--quick``: 192x128), four ways, against the convolutions' limit.

Rows (each a function of ``args``, run in a child process of its own):

- ``torch`` (``one_frame_torch``): what the CLIs run. The network's exported
  file loaded with ``runtime.load_model``, which rebuilds our files as the
  eager network; that takes oneDNN's fused CPU kernels
  (``util.fused_cpu_kernels``). ``torch-kept-memory``: the same with glibc's
  malloc keeping freed memory (``cpu_threads.keep_freed_memory``, which
  ``runtime.open_model`` sets for the CLIs).
- ``jit-load`` (``one_frame_jit_load``): a user's plain ``torch.jit.load`` of
  the same file. The file is portable (it names no oneDNN op), so this is
  the plain path, not the fused kernels. ``jit-frozen``
  (``one_frame_jit_frozen``): the same after
  ``torch.jit.optimize_for_inference(torch.jit.freeze(...))``. Both run with
  torch's default TorchScript executor and two warm-up calls (its profiling
  run, then its optimised graph); their notes give the largest absolute
  difference from the ``torch`` row's output.
- ``tensorflow`` (``one_frame_tensorflow``): the same network and weights in
  TensorFlow (``benchmarks/tf_film.py``, held to the original by the tests).
- ``limit`` (``convolution_limit``): the forward's convolutions alone, each
  distinct shape timed in isolation (channels_last, warm) and summed over
  the forward's calls. No implementation of this network beats that on this
  machine with these convolution kernels; the other rows say what % of it
  they reach.
"""
from __future__ import annotations

import copy
import os
from typing import Dict

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from benchmarks import common


def frame_size(quick: bool):
    return (128, 192) if quick else (704, 1280)


def exported_path(args) -> str:
    return common.exported_file(args.scratch, common.network_config(args.quick), "quick" if args.quick else "style")


def output_path(args, variant: str) -> str:
    """Where a row leaves its output frame, for the parity notes."""
    return os.path.join(args.scratch, f"A-{variant}.pt")


def forward_run(args):
    """``run(model, device)``: the forward on this workload's two frames."""
    x0, x1 = common.frames_of_size(*frame_size(args.quick))
    return lambda model, device: model(x0.to(device), x1.to(device), common.mid_time(device))


def time_forward(model, args, warmups: int = 1) -> Dict:
    """The row of one forward: median of --repeats calls; the output is kept for the parity notes."""
    run = forward_run(args)
    with torch.no_grad():
        seconds = common.median_seconds(lambda: run(model, "cpu"), args.repeats, warmups)
        torch.save(run(model, "cpu"), output_path(args, args.variant))
    gflop = common.counted_gflop(common.random_network(common.network_config(args.quick)), run)
    return dict(seconds=seconds, gflop=gflop, frames=1)


def one_frame_torch(args) -> Dict:
    import runtime
    return time_forward(runtime.load_model(exported_path(args)), args)


def one_frame_torch_kept_memory(args) -> Dict:
    import cpu_threads
    if not cpu_threads.keep_freed_memory():
        raise RuntimeError("mallopt is not available here (not glibc)")
    return one_frame_torch(args)


def one_frame_jit_load(args) -> Dict:
    return time_forward(torch.jit.load(exported_path(args)), args, warmups=2)


def one_frame_jit_frozen(args) -> Dict:
    model = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.load(exported_path(args)).eval()))
    return time_forward(model, args, warmups=2)


def one_frame_tensorflow(args) -> Dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    import convert
    from benchmarks import tf_film, tf_film_weights
    torch_model = common.random_network(common.network_config(args.quick))
    weights = {}
    for key, tensor in torch_model.state_dict().items():
        if key == convert.PYRAMID_LEVELS_KEY:
            continue
        array = tensor.numpy()
        weights[convert.tf_name_for(key, torch_model.fusion_pyramid_levels)] = \
            array.transpose(2, 3, 1, 0) if array.ndim == 4 else array
    tf_model = tf_film.FilmModel(dict(torch_model.config))
    tf_film_weights.set_weights_by_name(tf_model, weights)
    x0, x1 = (f.permute(0, 2, 3, 1).numpy() for f in common.frames_of_size(*frame_size(args.quick)))
    inputs = {"x0": tf.constant(x0), "x1": tf.constant(x1), "time": tf.constant([[0.5]], tf.float32)}

    def call():
        # The model's one traced graph for any input size, with all outputs, exactly
        # what a loaded SavedModel of it (or of Google's) runs when called.
        return tf_model(inputs, training=False)["image"].numpy()
    # The warm-up optimises the graph.
    seconds = common.median_seconds(call, args.repeats)
    return dict(seconds=seconds, gflop=common.counted_gflop(torch_model, forward_run(args)), frames=1)


# ----------------------------------------------------------------------------- the limit row

def convolution_calls(model, run) -> Dict:
    """{(input shape, weight shape, padding): calls} of ``run(model_on_meta, 'meta')``.

    Recorded on the meta device, where the network takes its plain path: the
    convolutions the network defines, each on its whole (concatenated) input,
    whatever fusions the CPU path makes of them.
    """
    calls: Dict = {}

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten.convolution.default:
                stride, padding, dilation, transposed, _, groups = args[3:9]
                if list(stride) != [1, 1] or list(dilation) != [1, 1] or transposed or groups != 1:
                    raise ValueError(f"unexpected convolution {func} {args[3:9]}")
                key = (tuple(args[0].shape), tuple(args[1].shape), tuple(padding))
                calls[key] = calls.get(key, 0) + 1
            return func(*args, **(kwargs or {}))

    meta_model = copy.deepcopy(model).to("meta")
    with Recorder(), torch.no_grad():
        run(meta_model, "meta")
    return calls


def conv_output_shape(input_shape, weight_shape, padding):
    """(B, C_out, H', W') of a stride-1 convolution."""
    return (input_shape[0], weight_shape[0], input_shape[2] + 2 * padding[0] - weight_shape[2] + 1,
            input_shape[3] + 2 * padding[1] - weight_shape[3] + 1)


def convolution_seconds(calls: Dict, repeats: int) -> float:
    """Seconds of the recorded convolutions, each shape timed alone (median of
    ``repeats`` after a warm-up) on channels_last tensors, times its calls."""
    total = 0.0
    with torch.no_grad():
        for (input_shape, weight_shape, padding), count in calls.items():
            x = torch.rand(input_shape).contiguous(memory_format=torch.channels_last)
            weight = (torch.rand(weight_shape) - 0.5).contiguous(memory_format=torch.channels_last)
            bias = torch.rand(weight_shape[0])
            total += count * common.median_seconds(lambda: F.conv2d(x, weight, bias, padding=padding), repeats)
    return total


def convolution_limit(args) -> Dict:
    model = common.random_network(common.network_config(args.quick))
    run = forward_run(args)
    calls = convolution_calls(model, run)
    seconds = convolution_seconds(calls, max(args.repeats, 3))
    return dict(seconds=seconds, gflop=common.counted_gflop(model, run), frames=1,
                note=f"{sum(calls.values())} convolutions ({len(calls)} shapes), each timed alone")


VARIANTS = {"torch": one_frame_torch, "torch-kept-memory": one_frame_torch_kept_memory,
            "jit-load": one_frame_jit_load, "jit-frozen": one_frame_jit_frozen,
            "tensorflow": one_frame_tensorflow, "limit": convolution_limit}
TORCH_ROWS = {"torch": "runtime.load_model of the exported file, as the CLIs run it: eager, oneDNN's fused kernels",
              "torch-kept-memory": "the same with glibc malloc keeping freed memory (mallopt), as "
                                   "runtime.open_model sets it for the CLIs",
              "jit-load": "torch.jit.load of the exported file: the portable TorchScript, plain kernels",
              "jit-frozen": "torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.load(file)))"}


def add_notes(results: Dict[str, Dict], args) -> None:
    """Each torch row against TensorFlow and the limit; the TorchScript rows' parity with the CLIs' row."""
    limit, tensorflow = results["limit"]["seconds"], results["tensorflow"]["seconds"]
    reference = torch.load(output_path(args, "torch"))
    for variant, what in TORCH_ROWS.items():
        row = results[variant]
        note = f"{what}; {tensorflow / row['seconds']:.2f}x TensorFlow's speed, " \
               f"{100 * limit / row['seconds']:.0f}% of the limit"
        if variant.startswith("jit-"):
            difference = (torch.load(output_path(args, variant)) - reference).abs().max().item()
            note += f"; max abs difference from the torch row {difference:.1e}"
        row["note"] = note
    results["tensorflow"]["note"] = f"{100 * limit / tensorflow:.0f}% of the limit"

