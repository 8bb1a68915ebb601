"""Evaluate a FILM model on a benchmark, as the original's eval/eval_cli.py does (the command line).

    python evaluate.py MODEL DATASET_DIR --dataset {vimeo90k,middlebury,ucf101,xiph2k,xiph4k,frames}
                       [--precision fp32 bf16 fp16] [--reuse on off] [--tile none 256]
                       [--padding none edge64] [--span K] [--mode recursive direct balanced]
                       [--ssim_sums exact|tensorflow-cpu] [--max_examples N] [--save_frames DIR]
                       [--output results.csv]

The benchmarks are ``evaluation.datasets``, the metrics ``evaluation.metrics``,
the runs and results.csv ``evaluation.runner``; this module parses the
command line and wires them together. Problems the user can fix end the
program with one line on stderr and exit status 1 (2 for bad arguments),
before anything is written (``cli``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional, Sequence

import cli  # first: it sets how OpenMP threads wait before torch loads
import runtime
from evaluation import datasets, runner
from evaluation.metrics import METRIC_NAMES, SSIM_SUMS

log = cli.log

DEFAULT_OUTPUT = "results.csv"

DESCRIPTION = """\
Evaluate a FILM model on a frame interpolation benchmark, read from the
folders its download unpacks to, the way the original FILM's eval_cli.py
does: each example's middle frame is made from its two neighbours (t = 0.5)
and compared with the ground truth by L1, L2, SSIM and PSNR. Several
precisions and modes are run side by side, each model call once per setting.
With --span K, clips are cut into windows of K frames and every frame between
a window's two inputs is predicted, to compare FILM's recursive midpoints with
direct dt = i/K frames."""


def _layouts() -> str:
    return "\n".join(f"{name} ({benchmark.title}):\n{benchmark.layout}"
                     for name, benchmark in datasets.BENCHMARKS.items())


EPILOG = f"""\
dataset folders (--dataset; a folder lacking a file is refused before anything runs):
{_layouts()}

how frames and metrics are computed (as the original's eval):
  frames are 8-bit RGB times float32(1/255); the network sees them as they
  are (--padding none, the original's way; edge64 pads to a multiple of 64
  as inference.py does and crops back). The prediction is clipped to [0, 1]
  and compared in float32, not rounded to 8 bits. PSNR and SSIM are
  tf.image.psnr / tf.image.ssim's (max_val 1.0; SSIM: 11x11 Gaussian window,
  sigma 1.5, valid positions only), per example; L1/L2 mean absolute/squared
  differences. Xiph-2K resizes in linear light (gamma 2.2, area mean),
  Xiph-4K crops the centre, as the original's create_xiph_tfrecord.py.
  TensorFlow on a CPU sums SSIM's positions sequentially in float32, which
  moves its SSIM off the exact value as frames grow (1.7e-5 at 448x256,
  1.2e-3 at 896x512); --ssim_sums tensorflow-cpu sums that way, to reproduce
  numbers the original made on a CPU; the default sums exactly.

settings (--precision, --reuse, --tile, --padding, --mode take lists; every
combination runs, in the order given; the first is the baseline of the
table's differences):
  precision  fp32, bf16, fp16: the arithmetic asked for is used even where
             the hardware would emulate it (slower; quality is what counts here)
  reuse      on: the stages (encode, flows, synthesis) called separately, as
             the video path runs them; off: one forward() call. Same frames
             expected; measured here
  tile       none, or SIZE (multiple of 64): overlapping tiles (tiling.py)
  padding    none (default), edge64
  mode       recursive (default: FILM's midpoints), direct (every frame from
             the window's two inputs at dt = i/K, flows once), balanced;
             matters only with --span K > 2, where frames s and s + K are the
             inputs and every frame between them is an example (keys
             "<frame>@<i>of<K>"); recursive needs K a power of 2. Clips only:
             xiph2k, xiph4k, frames. The benchmarks' own figures are span 2.

results (--output, default {DEFAULT_OUTPUT}): the original's results.csv: a
  title row "key, l1, l2, ssim, psnr", one row per example, the last row
  "mean, ..." (with several settings, or any but the default one, the
  columns are "<setting>:<metric>", so a file is only continued by a run of
  the same settings).
  Each row is on disk before the next example starts: run the same command
  again after an interruption and it continues (rows there are skipped; a
  half-written last line is dropped). A table of the means is printed.

exit status: 0 on success, 1 on a problem with the files or the run, 2 on
bad arguments, 130 when interrupted (finished rows are kept)."""


def _reuse(text: str) -> bool:
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")
    return text == "on"


def _tile(text: str) -> Optional[int]:
    if text == "none":
        return None
    return cli.whole_number(64, multiple_of=64)(text)


def build_parser() -> argparse.ArgumentParser:
    parser = cli.make_parser("evaluate.py", DESCRIPTION, EPILOG)
    parser.add_argument("model_path", help=cli.MODEL_HELP)
    parser.add_argument("dataset_dir", help="the benchmark's folder (layouts below)")
    parser.add_argument("--dataset", required=True, choices=list(datasets.BENCHMARKS),
                        help="which benchmark DATASET_DIR holds")
    parser.add_argument("--precision", nargs="+", choices=runtime.PRECISIONS, default=["fp32"],
                        help="one or more precisions to evaluate side by side (default: fp32)")
    parser.add_argument("--reuse", nargs="+", type=_reuse, default=[True], metavar="{on,off}",
                        help="stages called separately (on, default) and/or one forward() call (off)")
    parser.add_argument("--tile", nargs="+", type=_tile, default=[None], metavar="{none,SIZE}",
                        help="untiled (none, default) and/or tiles of SIZE px (a multiple of 64)")
    parser.add_argument("--padding", nargs="+", choices=runner.PADDINGS, default=["none"],
                        help="frames as they are (none, default: the original's way) and/or padded to a "
                             "multiple of 64 by repeating edges (edge64: inference.py's way)")
    parser.add_argument("--mode", nargs="+", choices=runner.MODES, default=[runner.DEFAULT_MODE],
                        help="frame schedules to compare with --span > 2 (default: recursive)")
    parser.add_argument("--span", type=cli.whole_number(2), default=2, metavar="K",
                        help="windows of K frames: the inputs K frames apart, every frame between them an "
                             "example (default: 2, the benchmarks' triplets; K > 2 for xiph2k, xiph4k, frames)")
    parser.add_argument("--ssim_sums", "--ssim-sums", dest="ssim_sums", choices=SSIM_SUMS, default="exact",
                        help="exact (default), or sequential float32 sums as TensorFlow's CPU kernel makes them")
    parser.add_argument("--max_examples", "--max-examples", dest="max_examples", type=cli.whole_number(1),
                        default=None, metavar="N", help="only the first N examples (default: all)")
    parser.add_argument("--save_frames", "--save-frames", dest="save_frames", metavar="DIR", default=None,
                        help="also write each prediction as DIR/<setting>/<key>.png (8-bit)")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, metavar="CSV",
                        help=f"the results file (default: {DEFAULT_OUTPUT}); an existing one is continued")
    cli.add_gpu_argument(parser)
    parser.add_argument("--max_memory", "--max-memory", dest="max_memory", type=cli.gigabytes, default=None,
                        metavar="GB", help="memory budget for one frame; larger frames are tiled automatically "
                                           "(default: 60%% of the GPU's memory with --gpu, else of the RAM)")
    cli.add_threads_argument(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    examples = datasets.find_examples(args.dataset, args.dataset_dir, args.span)
    settings = runner.make_settings(args.precision, args.reuse, args.tile, args.padding, args.mode, args.span,
                                    args.ssim_sums)
    if args.span == 2 and len(set(args.mode)) > 1:
        log.info("a triplet's one frame is the midpoint in every mode: --mode matters with --span > 2 only")
    elif len(settings) < len(args.precision) * len(args.reuse) * len(args.tile) * len(args.padding):
        log.info("tiled models run forward() per tile: --reuse does not apply to them")
    if not os.path.isfile(args.model_path):
        raise runtime.ModelLoadError(f"model file not found: {args.model_path}" if not os.path.exists(
            args.model_path) else f"expected a model file, found a folder: {args.model_path}")
    options = runtime.RuntimeOptions(gpu=args.gpu, max_memory_gb=args.max_memory, threads=args.threads)
    per_setting, stats, results = runner.evaluate(args.model_path, args.dataset, examples, settings, options,
                                                  args.output, args.max_examples, args.save_frames,
                                                  span=args.span)
    rows = len(results.rows)
    benchmark = datasets.BENCHMARKS[args.dataset]
    print(runner.format_table(benchmark.title, per_setting, stats, rows))
    ran = max((stat.examples for stat in stats.values()), default=0)
    print(f"{cli.count(ran, 'example')} run now, {rows - ran} from an earlier run; "
          f"{', '.join(METRIC_NAMES)} per example and their means in {args.output} "
          f"({time.perf_counter() - started:.1f} s)")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        runner.check_modes(args.mode, args.span)
    except ValueError as error:
        parser.error(str(error))
    return cli.run_reporting_errors(run, args)


if __name__ == "__main__":
    sys.exit(main())
