"""Speed and memory of FILM on one device (a CUDA GPU, Apple's MPS, or the CPU), as one table.

    python benchmark.py --device cuda          # the GPU run: Style network, ~8 min on one GPU
    python benchmark.py --device mps
    python benchmark.py --device cpu --quick   # the same logic with a tiny network and frames (CI)

Rows: every frame size (1280x720, 1920x1080, 3840x2160; --quick: 192x128)
x precision (fp32, fp16, bf16 where the device runs it natively; --quick:
all three) x path:

- ``forward``: ``model(x0, x1, dt)`` for one frame, median of --repeats
  calls after warm-ups; also as the variants torch offers (``channels_last``
  memory format; on CUDA, ``torch.compile`` and a CUDA graph of the forward).
- ``video``: the video path (``video_pipeline.PairRenderer`` over a sequence:
  each frame encoded once, flows once per pair, one frame made per pair, as
  ``inference_video.py --multiplier 2`` makes them): seconds per made frame.

Columns: seconds per frame, frames per second, the device's peak memory for
that row (CUDA: ``torch.cuda.max_memory_allocated``; MPS: Metal's driver
allocation after the row; CPU: not measured per row), and the largest error
against the same size's fp32 plain forward, as a fraction of the output's
largest magnitude. A variant is marked kept when it is faster than the plain
forward in its precision and within that precision's bound (the bounds are
``tests/test_devices.py``'s against the original's outputs). The network has
random weights (speed does not depend on their values).
"""
from __future__ import annotations

import statistics
import time
from fractions import Fraction
from typing import Callable, Dict, List, Optional

import torch

import runtime
import video_pipeline
from benchmarks.common import QUICK, STYLE, random_network
from media.errors import first_line

SIZES = ((720, 1280), (1080, 1920), (2160, 3840))
QUICK_SIZES = ((128, 192),)
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# Error bounds relative to the output's largest magnitude: fp32's parity bound,
# and tests/test_devices.py's bounds against the original for fp16 and bf16.
ERROR_BOUNDS = {"fp32": 2e-5, "fp16": 5e-3, "bf16": 4e-2}
# torch.compile takes minutes per shape and precision: it is tried at one size.
COMPILE_SIZE = (1080, 1920)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> Optional[float]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    if device.type == "mps":
        return torch.mps.driver_allocated_memory() / 2 ** 20
    return None


def timed_calls(call: Callable[[], torch.Tensor], device: torch.device, repeats: int,
                warmups: int = 2) -> float:
    """Median seconds of ``repeats`` calls after ``warmups``."""
    for _ in range(warmups):
        call()
    synchronize(device)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        synchronize(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def relative_error(output: torch.Tensor, reference: torch.Tensor) -> float:
    reference = reference.float()
    return float((output.float() - reference).abs().max() / reference.abs().max().clamp_min(1e-12))


def cuda_graph_of(model, x0, x1, dt) -> Callable[[], torch.Tensor]:
    """The forward captured as a CUDA graph on static inputs (replays cost no launches)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            model(x0, x1, dt)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        output = model(x0, x1, dt)

    def replay() -> torch.Tensor:
        graph.replay()
        return output
    return replay


def forward_variants(model, device: torch.device, size) -> Dict[str, Callable]:
    """{variant: f(model, x0, x1, dt) -> a zero-argument call}, the ones torch offers on this device."""
    variants = {"plain": lambda m, x0, x1, dt: (lambda: m(x0, x1, dt))}

    def channels_last(m, x0, x1, dt):
        m = m.to(memory_format=torch.channels_last)
        a, b = x0.contiguous(memory_format=torch.channels_last), x1.contiguous(memory_format=torch.channels_last)
        return lambda: m(a, b, dt)
    variants["channels_last"] = channels_last
    if device.type == "cuda":
        variants["cuda-graph"] = lambda m, x0, x1, dt: cuda_graph_of(m, x0, x1, dt)
        if tuple(size) == COMPILE_SIZE:
            variants["torch.compile"] = lambda m, x0, x1, dt: (lambda f: (lambda: f(x0, x1, dt)))(torch.compile(m))
    return variants


def video_seconds_per_frame(model, device, dtype, frames: List[torch.Tensor]) -> float:
    """Seconds per made frame through the video path's renderer (reuse on)."""
    renderer = video_pipeline.PairRenderer(runtime.ModelRuntime(model, device, dtype), "direct")
    half = [Fraction(1, 2)]

    def run(sequence):
        previous = runtime.ModelFrame(sequence[0])
        for tensor in sequence[1:]:
            current = runtime.ModelFrame(tensor)
            for _, frame in renderer.render(previous, current, half):
                del frame
            previous = current
    run(frames[:2])  # warm-up
    synchronize(device)
    started = time.perf_counter()
    run(frames)
    synchronize(device)
    return (time.perf_counter() - started) / (len(frames) - 1)


def measure(device: torch.device, *, quick: bool, repeats: int, sequence_frames: int,
            precisions=None, log=print) -> List[Dict]:
    """Every row of the table, as dicts; ``log`` gets a line per row as it is measured."""
    sizes = QUICK_SIZES if quick else SIZES
    if precisions is None:
        precisions = [p for p in PRECISIONS if quick or runtime.native_precision_support(device, p)]
    base = random_network(QUICK if quick else STYLE)
    rows: List[Dict] = []
    generator = torch.Generator().manual_seed(0)
    for height, width in sizes:
        padded = runtime.padded_size(height, width)
        sequence = [torch.rand(1, 3, *padded, generator=generator) for _ in range(sequence_frames)]
        reference = None
        for name in precisions:
            dtype = PRECISIONS[name]
            model = random_network(QUICK if quick else STYLE).to(device=device, dtype=dtype)
            model.load_state_dict(base.state_dict())
            x0, x1 = (frame.to(device=device, dtype=dtype) for frame in sequence[:2])
            dt = torch.full((1, 1), 0.5, device=device)  # float32 in every precision
            plain_seconds = None
            for variant, make in forward_variants(model, device, (height, width)).items():
                row = dict(size=f"{width}x{height}", precision=name, path="forward", variant=variant)
                try:
                    with torch.no_grad():
                        reset_peak_memory(device)
                        call = make(model, x0, x1, dt)
                        seconds = timed_calls(call, device, repeats)
                        output = call().float().cpu()
                    row.update(seconds=seconds, memory_mb=peak_memory_mb(device))
                    if reference is None:  # fp32 plain comes first
                        reference = output
                    row["error"] = relative_error(output, reference)
                    if variant == "plain":
                        plain_seconds = seconds
                    else:
                        row["kept"] = seconds < plain_seconds and row["error"] <= ERROR_BOUNDS[name]
                except Exception as error:  # a variant this device or build cannot run: said in its row
                    row["failed"] = first_line(error)[:80]
                finally:
                    model = model.to(memory_format=torch.contiguous_format)
                rows.append(row)
                log(format_row(row))
            with torch.no_grad():
                reset_peak_memory(device)
                frames = [frame.to(device=device, dtype=dtype) for frame in sequence]
                seconds = video_seconds_per_frame(model, device, dtype, frames)
                del frames
            row = dict(size=f"{width}x{height}", precision=name, path="video", variant="reuse",
                       seconds=seconds, memory_mb=peak_memory_mb(device))
            rows.append(row)
            log(format_row(row))
            del model, x0, x1
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


TABLE_HEADER = ("| size | precision | path | variant | s / frame | frames / s | peak memory | error vs fp32 |\n"
                "|---|---|---|---|---|---|---|---|")


def format_row(row: Dict) -> str:
    cells = [row["size"], row["precision"], row["path"], row["variant"]]
    if "failed" in row:
        return "| " + " | ".join(cells + ["–", "–", "–", f"failed: {row['failed']}"]) + " |"
    memory = "–" if row.get("memory_mb") is None else f"{row['memory_mb'] / 1024:.2f} GB"
    error = "–" if "error" not in row else f"{row['error']:.1e}"
    if "kept" in row:
        error += " (kept)" if row["kept"] else " (not kept)"
    cells += [f"{row['seconds']:.4f}", f"{1 / row['seconds']:.2f}", memory, error]
    return "| " + " | ".join(cells) + " |"


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        return (f"{properties.name}, compute capability {properties.major}.{properties.minor}, "
                f"{properties.total_memory / 2 ** 30:.0f} GB")
    if device.type == "mps":
        import platform
        return f"Apple MPS, macOS {platform.mac_ver()[0]}"
    return f"CPU, torch {torch.backends.cpu.get_cpu_capability()} kernels, {torch.get_num_threads()} threads"


def main(device_name: str, *, quick: bool, repeats: int, sequence_frames: int) -> int:
    device = torch.device(device_name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benchmark.py: --device cuda, but torch sees no CUDA GPU here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SystemExit("benchmark.py: --device mps, but MPS is not available here")
    started = time.perf_counter()
    print(f"# FILM on {device.type}: {device_description(device)}; torch {torch.__version__}; "
          f"{'quick (tiny network)' if quick else 'Style network, random weights'}; {time.strftime('%Y-%m-%d')}",
          flush=True)
    print(TABLE_HEADER, flush=True)
    rows = measure(device, quick=quick, repeats=repeats, sequence_frames=sequence_frames,
                   log=lambda line: print(line, flush=True))
    print(f"\n{len(rows)} rows in {time.perf_counter() - started:.0f} s")
    return 0
