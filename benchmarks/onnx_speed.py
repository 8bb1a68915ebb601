"""ONNX Runtime (CPU) against our TorchScript file on this CPU: one Style-sized forward pass.

    python benchmarks/onnx_speed.py [--size 384x640] [--runs 3] [--threads N]

Random weights (the released ones cannot be downloaded here; speed does not
depend on the values). Our TorchScript file is timed as our programs run it
(``runtime.load_model``: the eager network, oneDNN's fused CPU kernels) and
as the plain scripted module; the ONNX model exported from the same weights
in ONNX Runtime's CPU provider. Prints the CPU (lscpu) with the figures.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

import export  # noqa: E402
import onnx_export  # noqa: E402
import runtime  # noqa: E402
from interpolator import STYLE_CONFIG, Interpolator  # noqa: E402


def cpu_line() -> str:
    fields = {}
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    flags = set(fields.get("Flags", "").split())
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16") if f in flags]
    return f"{fields.get('Model name', '?')}; {os.cpu_count()} CPUs seen; ISA: {' '.join(isa) or 'none of avx2/avx512'}"


def timed(function, runs):
    function()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="384x640", help="HxW (default %(default)s)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    threads = runtime.set_threads(args.threads)
    torch.manual_seed(0)
    model = Interpolator(**STYLE_CONFIG).eval()
    x0, x1 = export.test_frames(height, width)
    dt = torch.full((1, 1), 0.5)
    with tempfile.TemporaryDirectory() as folder:
        script_path = os.path.join(folder, "film.pt")
        torch.jit.script(model).save(script_path)
        onnx_path = os.path.join(folder, "film.onnx")
        start = time.perf_counter()
        onnx_export.export_onnx(model, onnx_path)
        export_seconds = time.perf_counter() - start
        session = onnx_export.session(onnx_path, threads)
        ours = runtime.load_model(script_path)
        scripted = torch.jit.load(script_path).eval()
        with torch.no_grad(), torch.jit.optimized_execution(False):
            reference = ours(x0, x1, dt).numpy()
            error = onnx_export.relative_error(onnx_export.run(session, x0, x1, dt), reference)
            figures = {
                "TorchScript file as our programs run it (runtime.load_model)":
                    timed(lambda: ours(x0, x1, dt), args.runs),
                "TorchScript module itself (torch.jit.load)": timed(lambda: scripted(x0, x1, dt), args.runs),
                "ONNX Runtime CPU": timed(lambda: onnx_export.run(session, x0, x1, dt), args.runs),
            }
    print(f"CPU: {cpu_line()}")
    print(f"Style network (random weights), {width}x{height}, fp32, {threads} threads, median of {args.runs}:")
    for name, seconds in figures.items():
        print(f"  {name:<62} {seconds:6.2f} s")
    print(f"  ONNX export took {export_seconds:.0f} s; ONNX vs ours max|d|/max: {error:.1e}")


if __name__ == "__main__":
    main()
