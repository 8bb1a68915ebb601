"""Speed and memory of this FILM port on the CPU, printed as a table.

    python benchmark.py            # the full run: Style network; slow
    python benchmark.py --quick    # smoke run: tiny network, small frames

Every measurement runs in a child process of its own, so that each row's peak
RSS (``ru_maxrss``) is that workload's alone. The network is the released
Style configuration (filters 64, 34.4 M parameters) with random weights:
speed does not depend on the weights' values. B, C and D run it as the CLIs
do (its exported file through runtime.load_model: the eager network, with
oneDNN's fused CPU kernels). Workloads (each a module of benchmarks/, whose
docstring says what each row times):

  A  one mid frame at 1280x704 (benchmarks/forward.py): as the CLIs run it,
     the same with glibc's malloc keeping freed memory, a plain
     torch.jit.load of the exported file, the same frozen and optimised for
     inference (with their largest difference from the CLIs' output), the
     same network and weights in TensorFlow (benchmarks/tf_film.py), and
     the limit row: the forward's convolutions alone, each distinct shape
     timed in isolation and summed over the forward's calls; the other rows
     say what % of it they reach.
  B  7 in-between frames for the two photos (1024x768), each inference.py mode,
     and the baseline of one forward() per frame (benchmarks/images.py)
  C  2x a 720p sequence through the video path (each frame encoded once,
     flows once per pair) against one forward() per pair
     (benchmarks/video_path.py)
  D  one 3840x2160 frame, tiled to fit the memory budget (benchmarks/tiled.py)
  E  segmented video jobs through video_interpolation.interpolate_video with the
     tiny network: one segment, several segments, 2 Ray workers, and a resume
     after SIGKILL (benchmarks/jobs.py)

Columns: seconds per output frame (A and the forward() baselines of B and C:
median of --repeats calls after a warm-up (two for A's TorchScript rows),
every call costing the same; the
reuse paths of B and C: one timed run of all their frames after a warm-up,
divided by the frames made, since their frames do not cost the same; D: one
run; E: the job's whole time), counted GFLOP/s (convolution multiply-adds x 2,
counted by torch.utils.flop_counter on the meta device, divided by that time),
and the child process's peak RSS. Figures measured so far, with their
machines, and how long a full run takes: docs/performance.md.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

import cli  # noqa: F401 -- first: the CLIs' OpenMP settings, so that the figures are theirs
from benchmarks import common, forward, images, jobs, tiled, video_path

ROOT = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = {"A": forward, "B": images, "C": video_path, "D": tiled, "E": jobs}


def run_child(workload: str, variant: str, args) -> Dict:
    command = [sys.executable, os.path.abspath(__file__), "--child", workload, variant, "--scratch", args.scratch,
               "--repeats", str(args.repeats), "--sequence_frames", str(args.sequence_frames)]
    if args.quick:
        command.append("--quick")
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"{workload}/{variant} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def child(args) -> int:
    """One row, measured in this process; its result as a JSON line on stdout."""
    workload, args.variant = args.child
    result = WORKLOADS[workload].VARIANTS[args.variant](args)
    result["rss_mb"] = common.peak_rss_mb()
    print(json.dumps(result))
    return 0


def run_workload(workload: str, args) -> List[Dict]:
    """The workload's rows: medians over --rounds, which alternate its variants."""
    module = WORKLOADS[workload]
    # Rounds alternate the variants, so that a machine whose speed drifts
    # (shared hosts do, by 20% over minutes) affects them all alike.
    runs: Dict[str, List[Dict]] = {variant: [] for variant in module.VARIANTS}
    for round_number in range(args.rounds):
        for variant in module.VARIANTS:
            result = run_child(workload, variant, args)
            runs[variant].append(result)
            print(f"  {workload} {variant}: {result['seconds']:.2f} s/frame, {result['rss_mb'] / 1024:.2f} GB "
                  f"(round {round_number + 1}, load {os.getloadavg()[0]:.2f})", flush=True)
    results = {variant: dict(variant_runs[0], seconds=statistics.median(r["seconds"] for r in variant_runs),
                             rss_mb=max(r["rss_mb"] for r in variant_runs), workload=workload, variant=variant)
               for variant, variant_runs in runs.items()}
    module.add_notes(results, args)
    return list(results.values())


def format_table(rows: List[Dict]) -> str:
    lines = ["| workload | variant | s / output frame | counted GFLOP/s | peak RSS | notes |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        rate = f"{row['gflop'] / row['seconds']:.0f}" if row.get("gflop") else "–"
        lines.append(f"| {row['workload']} | {row['variant']} | {row['seconds']:.2f} | {rate} | "
                     f"{row['rss_mb'] / 1024:.2f} GB | {row.get('note', '')} |")
    return "\n".join(lines)


def print_header(args) -> None:
    import torch
    print(f"# FILM benchmark: {'quick (tiny network)' if args.quick else 'Style network'}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d')}", flush=True)
    print(f"# {common.cpu_description()}; torch uses {torch.backends.cpu.get_cpu_capability()} kernels", flush=True)
    print(f"# load average at the start: {os.getloadavg()[0]:.2f} (anything above ~0.1 on an idle machine is "
          f"someone else's work, and the figures are then not to be trusted)", flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny network and frames: a smoke run for CI")
    parser.add_argument("--workloads", default="ABCDE", help="which workloads to run (default: ABCDE)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed calls for A and for the forward() baselines of B and C (median; default 3)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run each workload's variants this many times in alternation; the table shows "
                             "medians (default 1)")
    parser.add_argument("--sequence_frames", type=int, default=30,
                        help="frames of the workload C sequence (default 30)")
    parser.add_argument("--device", choices=("cuda", "mps", "cpu"),
                        help="instead of the CPU workloads: the device table (benchmarks/device.py): "
                             "forward and video path per size and precision, with peak device memory")
    parser.add_argument("--child", nargs=2, metavar=("WORKLOAD", "VARIANT"), help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)  # the run's folder for files its children share
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.rounds < 1 or args.sequence_frames < 2:
        parser.error("--repeats and --rounds must be >= 1 and --sequence_frames >= 2")
    if args.device:
        from benchmarks import device
        return device.main(args.device, quick=args.quick, repeats=args.repeats,
                           sequence_frames=min(args.sequence_frames, 4 if args.quick else 8))
    if args.child:
        return child(args)
    unknown = set(args.workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads {sorted(unknown)}; choose from {''.join(WORKLOADS)}")
    print_header(args)
    started = time.perf_counter()
    # The exported network files, the clip and the rows' outputs, shared by the children of this run.
    args.scratch = tempfile.mkdtemp(prefix="film_benchmark_")
    try:
        rows = [row for workload in args.workloads for row in run_workload(workload, args)]
    finally:
        shutil.rmtree(args.scratch, ignore_errors=True)
    print()
    print(format_table(rows))
    print(f"\nTotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
