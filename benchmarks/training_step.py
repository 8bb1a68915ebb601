"""Training throughput with a VGG-19 of the real widths: steps/s and peak memory of train.py's step.

    python -m benchmarks.training_step [--precision fp32 bf16] [--threads 2] [--repeats 3]
                                        [--batch_size 8] [--crop 256] [--vgg_file FILE] [--quick]

MatConvNet's imagenet-vgg-verydeep-19.mat (510 MB) is not needed: speed does
not depend on the weights' values, so without ``--vgg_file`` a VGG-19 with
random weights at the real widths (64/128/256/512/512 channels for blocks
1-5; conv1_1 ... conv5_2, the layers the losses run, as the reference's
narrow file has) is written in MatConvNet's layout with ``write_vgg19_mat``
(``training.matlab.save``) and read back through
``training.vgg19`` as train.py reads the real file.

Each precision runs in a child process of its own (so that its peak RSS,
``ru_maxrss``, is that run's alone): the Style network (filters 64,
flow_filters 32,64,128,256, flow_convs 3,3,3,3; Keras's initialisation,
as train.py from scratch), KerasAdam, the style recipe's losses (l1, vgg and
style, all computed as train.py computes them), one batch of random
frames; ``training.step.train_step`` under the autocast train.py uses. One
untimed warm-up step, then ``--repeats`` timed steps; the median, min and
max are printed. bf16 is measured even where the CPU lacks native bf16
(train.py would then train in fp32): the table says whether it was native.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Sequence

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL_WIDTHS = (64, 128, 256, 512, 512)
STYLE_CONFIG = dict(filters=64, flow_filters=(32, 64, 128, 256), flow_convs=(3, 3, 3, 3))
QUICK_CONFIG = dict(filters=4, flow_filters=(4, 4, 8, 8), flow_convs=(3, 3, 3, 3))
QUICK_WIDTHS = (8, 8, 12, 16, 16)


def vgg19_layers(widths: Sequence[int] = REAL_WIDTHS, seed: int = 0) -> List[dict]:
    """MatConvNet's layers conv1_1, relu1_1, ... conv5_2, relu5_2 (32, with the pools), random weights.

    Kernels (3, 3, in, out) float32 with He-normal scale (so activations keep their size through the 14
    convolutions, as trained weights roughly do), biases (1, out)."""
    from training import matlab, vgg19
    rng = np.random.default_rng(seed)
    layers, channels = [], 3
    for b, block in enumerate(vgg19.BLOCKS):
        for name in block:
            out = widths[b]
            kernel = (rng.standard_normal((3, 3, channels, out)) * np.sqrt(2.0 / (9 * channels))).astype(np.float32)
            bias = (rng.standard_normal((1, out)) * 0.01).astype(np.float32)
            layers.append({"name": name, "type": "conv", "weights": matlab.Cell([kernel, bias])})
            layers.append({"name": "relu" + name[4:], "type": "relu", "weights": None})
            channels = out
        if b < len(vgg19.BLOCKS) - 1:
            layers.append({"name": f"pool{b + 1}", "type": "pool", "weights": None})
    return layers


def write_vgg19_mat(path: str, widths: Sequence[int] = REAL_WIDTHS, seed: int = 0) -> str:
    from training import matlab
    matlab.save(path, {"layers": matlab.Cell(vgg19_layers(widths, seed))})
    return path


# --------------------------------------------------------------------------- one precision, in a child process

def measure(precision: str, vgg_file: str, args) -> Dict:
    import torch

    import runtime
    from interpolator import Interpolator
    from training import loop, recipes, step, vgg19
    from training.optim import KerasAdam

    torch.set_num_threads(args.threads)
    model = loop.keras_initialised(Interpolator(**(QUICK_CONFIG if args.quick else STYLE_CONFIG)), 0)
    vgg = vgg19.VGG19Features.from_file(vgg_file)
    widths = [int(getattr(vgg, name + "_weight").shape[0]) for name in ("conv1_1", "conv2_1", "conv3_1", "conv4_1",
                                                                         "conv5_1")]
    loss = step.WeightedLoss(recipes.loss_weights("style"), vgg)
    optimizer = KerasAdam(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    shape = (args.batch_size, 3, args.crop, args.crop)
    batch = {key: torch.rand(shape, generator=generator) for key in ("x0", "y", "x1")}
    batch["time"] = torch.full((args.batch_size, 1), 0.5)
    autocast = (torch.autocast("cpu", enabled=False) if precision == "fp32"
                else torch.autocast("cpu", dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[precision]))
    scaler = torch.amp.GradScaler("cpu") if precision == "fp16" else None
    seconds, losses = [], []
    for k in range(1 + args.repeats):  # the first step warms up (allocations, oneDNN's kernel choices)
        started = time.perf_counter()
        with autocast:
            total, parts = step.train_step(model, optimizer, loss, batch, k, 1e-4, scaler=scaler)
        elapsed = time.perf_counter() - started
        losses.append(total)
        if k:
            seconds.append(elapsed)
        print(f"    {precision} step {k}{' (warm-up)' if not k else ''}: {elapsed:.2f} s, loss {total:.4g}, "
              f"load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    import resource
    return {"precision": precision, "seconds": seconds, "median": statistics.median(seconds),
            "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, "losses": losses,
            "native": runtime.native_precision_support(torch.device("cpu"), precision),
            "parameters": sum(p.numel() for p in model.parameters()), "vgg_widths": widths,
            "threads": torch.get_num_threads()}


def cpu_isa() -> str:
    sys.path.insert(0, ROOT)
    from benchmarks import common
    return common.cpu_description()


def format_table(rows: List[Dict], args) -> str:
    lines = ["| precision | native here | s / step (median) | min - max | steps / s | peak RSS |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['precision']} | {'yes' if row['native'] else 'no (emulated)'} | {row['median']:.2f} | "
                     f"{min(row['seconds']):.2f} - {max(row['seconds']):.2f} | {1 / row['median']:.4f} | "
                     f"{row['rss_gb']:.2f} GB |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", nargs="+", choices=("fp32", "bf16", "fp16"), default=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed steps after the warm-up (default 3)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--vgg_file", help="a VGG-19 .mat (default: random weights at the real widths, written "
                        "to a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="tiny network and narrow VGG: a smoke run")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    if args.child:
        precision, vgg_file = args.child.split(":", 1)
        print(json.dumps(measure(precision, vgg_file, args)))
        return 0
    import torch
    print(f"# training step: {'quick (tiny network)' if args.quick else 'Style network'} (filters, flow_filters, "
          f"flow_convs = {QUICK_CONFIG if args.quick else STYLE_CONFIG}), batch {args.batch_size}, "
          f"{args.crop}x{args.crop} crops, style recipe (l1 + vgg + style), {args.threads} threads, torch "
          f"{torch.__version__}, {time.strftime('%Y-%m-%d %H:%M %Z')}", flush=True)
    print(f"# {cpu_isa()}; torch uses {torch.backends.cpu.get_cpu_capability()} kernels", flush=True)
    print(f"# load average at the start: {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        vgg_file = args.vgg_file
        if vgg_file is None:
            vgg_file = write_vgg19_mat(os.path.join(scratch, "vgg19_random.mat"),
                                       QUICK_WIDTHS if args.quick else REAL_WIDTHS)
            print(f"# VGG-19: random weights, widths {QUICK_WIDTHS if args.quick else REAL_WIDTHS}, "
                  f"{os.path.getsize(vgg_file) / 1e6:.0f} MB .mat", flush=True)
        rows = []
        for precision in args.precision:
            command = [sys.executable, "-m", "benchmarks.training_step", "--child", f"{precision}:{vgg_file}",
                       "--threads", str(args.threads), "--repeats", str(args.repeats), "--batch_size",
                       str(args.batch_size), "--crop", str(args.crop)] + (["--quick"] if args.quick else [])
            result = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
            if result.returncode != 0:
                print(f"{precision} failed (exit status {result.returncode})", file=sys.stderr)
                return 1
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
            print(f"  {precision}: {rows[-1]['median']:.2f} s/step, {rows[-1]['rss_gb']:.2f} GB, "
                  f"{rows[-1]['parameters']:,} parameters, VGG widths {rows[-1]['vgg_widths']}", flush=True)
    print(format_table(rows, args))
    print(f"# load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
