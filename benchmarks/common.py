"""What the benchmark's workloads share: the networks, their inputs, and what is counted of a run.

- ``random_network``: the network with random weights (speed does not depend
  on their values), the one definition that the CPU workloads, the device
  table (``benchmarks/device.py``) and the test suite
  (``tests/conftest.py::random_interpolator``) all use; ``STYLE`` is the
  released Style configuration, ``QUICK`` the tiny one of ``--quick``.
- ``exported_file``: that network as the TorchScript file ``export.py
  --fp32`` writes, and ``cli_network``: the file loaded as the CLIs load it
  (``runtime.load_model``: rebuilt as the eager network, which takes oneDNN's
  fused CPU kernels).
- ``frames_of_size``: a textured pattern that moves a few pixels per frame;
  ``test_clip``: such frames as a short H.264 video, written with the
  project's own ``media.writers``.
- ``counted_gflop`` (convolution FLOPs counted on the meta device),
  ``peak_rss_mb``, ``cpu_description``, and the timing helpers.
"""
from __future__ import annotations

import copy
import io
import os
import platform
import resource
import statistics
import time
from fractions import Fraction
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F

from interpolator import Interpolator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STYLE = dict(filters=64, flow_filters=(32, 64, 128, 256))
QUICK = dict(filters=4, flow_filters=(4, 4, 8, 8))


def network_config(quick: bool) -> Dict:
    return QUICK if quick else STYLE


def random_network(config: Dict, seed: int = 0) -> Interpolator:
    """A network with PyTorch's default initialisation and non-zero biases, in eval mode.

    Gives outputs of order 0.1-1 and flows of several pixels on random frames,
    so warps, flows and fusion all matter (no path is silently zero).
    """
    torch.manual_seed(seed)
    model = Interpolator(**config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.normal_(std=0.05)
    return model


def exported_file(scratch: str, config: Dict, name: str) -> str:
    """``random_network(config)`` saved in ``scratch`` as ``export.py --fp32`` saves a network (made once)."""
    path = os.path.join(scratch, f"{name}.pt")
    if not os.path.exists(path):
        archive = io.BytesIO()  # through memory, as export.py does
        torch.jit.save(torch.jit.script(random_network(config)), archive)
        with open(path + ".tmp", "wb") as file:
            file.write(archive.getvalue())
        os.replace(path + ".tmp", path)
    return path


def cli_network(scratch: str, quick: bool) -> torch.nn.Module:
    """The benchmark's network as the CLIs run it: its exported file through ``runtime.load_model``."""
    import runtime
    return runtime.load_model(exported_file(scratch, network_config(quick), "quick" if quick else "style"))


def frames_of_size(height: int, width: int, count: int = 2, seed: int = 0, step=(4, 6)) -> List[torch.Tensor]:
    """A textured pattern moving ``step`` (down, right) pixels per frame: (1, 3, H, W) tensors in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    down, right = step
    # Room for the whole motion, so that every frame has the full size.
    base = F.interpolate(torch.rand(1, 3, height // 16 + 2, width // 16 + 2, generator=generator),
                         size=(height + down * count, width + right * count), mode="bicubic",
                         align_corners=False).clamp(0, 1)
    return [base[:, :, down * i:down * i + height, right * i:right * i + width].contiguous() for i in range(count)]


def test_clip(scratch: str, count: int, width: int, height: int, rate: Fraction = Fraction(24)) -> str:
    """A ``count``-frame H.264 video of the moving pattern (slow enough to hold no scene cut), made once."""
    import media.encoding
    import media.samples
    import media.writers
    path = os.path.join(scratch, f"clip_{count}_{width}x{height}.mp4")
    if not os.path.exists(path):
        encoding = media.encoding.VideoEncoding(crf=12, preset="ultrafast")
        with media.writers.VideoWriter(path, rate, width, height, encoding=encoding) as writer:
            for frame in frames_of_size(height, width, count, step=(1, 1)):
                writer.write(media.samples.to_uint8(frame[0].permute(1, 2, 0).numpy()))
    return path


def mid_time(device="cpu") -> torch.Tensor:
    """dt = 0.5 as the network takes it: (1, 1) float32."""
    return torch.full((1, 1), 0.5, device=device)


def timed(run: Callable[[], object]) -> float:
    """Seconds of one call of ``run``."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def median_seconds(run: Callable[[], object], repeats: int, warmups: int = 1) -> float:
    """Median seconds of ``repeats`` calls of ``run`` after ``warmups`` untimed ones."""
    for _ in range(warmups):
        run()
    return statistics.median(timed(run) for _ in range(repeats))


def counted_gflop(model: torch.nn.Module, run: Callable[[torch.nn.Module, str], object]) -> float:
    """Convolution FLOPs of ``run(model_on_meta, 'meta')`` in GFLOP, counted without computing."""
    from torch.utils.flop_counter import FlopCounterMode
    meta_model = copy.deepcopy(model).to("meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        run(meta_model, "meta")
    return counter.get_total_flops() / 1e9


def peak_rss_mb() -> float:
    """This process's peak resident memory (``ru_maxrss``) in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_description() -> str:
    """The CPU's model and the vector ISA that decides convolution speed."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:  # not Linux: the model as the platform names it, ISA unknown
        return f"CPU: {model}, {os.cpu_count()} logical cores; ISA: unknown"
    features = (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX-512 BF16"), ("amx_tile", "AMX"))
    isa = [name for flag, name in features if flag in flags]
    missing = [name for flag, name in features[1:] if flag not in flags]  # AVX2 is assumed of any CPU in use
    return (f"CPU: {model}, {os.cpu_count()} logical cores; ISA: {', '.join(isa) or 'no AVX2'}"
            + (f" (no {', no '.join(missing)})" if missing else ""))
