"""The opt-in reduced precisions (bf16, fp16) against fp32, eager and TorchScript.

Run on the CPU here, where both are emulated (slow but numerically what
native kernels give: products of 8/11-bit mantissas, wider accumulation).
The figures for the Style network are in the README; these tests pin the
properties: flows and warp positions stay float32, and the image error stays
at the precision's rounding level.
"""
import io

import pytest
import torch

from conftest import random_interpolator

SMALL = dict(filters=4, flow_filters=(4, 4, 8, 8))
# Tiny network, 64x96 frames, measured max|reduced - fp32| / max|fp32| of the
# image: bf16 1.6e-2, fp16 1.5e-3. Bounds: 2.5x those.
IMAGE_TOLERANCE = {torch.bfloat16: 4e-2, torch.float16: 4e-3}


def scripted(model):
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)


@pytest.fixture(scope="module")
def frames():
    generator = torch.Generator().manual_seed(1)
    x0 = torch.rand(1, 3, 64, 96, generator=generator)
    return x0, torch.roll(x0, shifts=(3, 5), dims=(2, 3)), torch.full((1, 1), 0.5)


@pytest.mark.parametrize("as_script", [False, True], ids=["eager", "torchscript"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@torch.no_grad()
def test_reduced_precision_stays_close_and_keeps_float32_flows(frames, dtype, as_script):
    x0, x1, dt = frames
    reference = random_interpolator(0, **SMALL).debug_forward(x0, x1, dt)
    model = random_interpolator(0, **SMALL).to(dtype)
    if as_script:
        model = scripted(model)
    outputs = model.debug_forward(x0.to(dtype), x1.to(dtype), dt)
    assert outputs["image"].dtype == dtype
    error = (outputs["image"].float() - reference["image"]).abs().max().item()
    assert 0 < error <= IMAGE_TOLERANCE[dtype] * reference["image"].abs().max().item()
    # Residuals are convolution outputs (reduced); their sums are float32.
    for name, flow in outputs.items():
        if name.startswith(("forward_flow", "backward_flow")):
            assert flow.dtype == torch.float32, name
    # Flows differ only by the convolutions' rounding, not by rounded positions:
    # measured 1.5e-3 (bf16) and 2.6e-4 (fp16) of the largest flow.
    flow_error = (outputs["forward_flow_pyramid/0"] - reference["forward_flow_pyramid/0"]).abs().max()
    assert flow_error <= 1e-2 * reference["forward_flow_pyramid/0"].abs().max()


@pytest.mark.parametrize("avx512_bf16, amx, native", [(False, False, False), (True, False, True), (False, True, True)])
def test_bf16_is_native_on_x86_only_with_avx512_bf16_or_amx(monkeypatch, avx512_bf16, amx, native):
    """oneDNN calls bf16 supported on any AVX-512 CPU, where it is emulated (3-7x slower than fp32)."""
    import runtime
    monkeypatch.setattr(runtime, "_is_x86", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert runtime.native_precision_support(torch.device("cpu"), "bf16") is native


def test_kept_memory_is_counted_in_the_tile_choice(monkeypatch):
    """With freed memory kept (the CLIs' default on glibc), peaks are ~1.3x higher: tiles get smaller."""
    import cpu_threads
    import runtime
    import tiling
    from conftest import random_interpolator
    model = random_interpolator(filters=4, flow_filters=(4, 4, 8, 8))
    needed = (tiling.ESTIMATE_HEADROOM * tiling.estimate_peak_memory(2048, 2048, filters=4)
              + tiling.FRAME_BUFFER_VALUES_PER_PIXEL * 4 * 2048 * 2048)
    budget = 1.05 * needed / 2 ** 30  # fits with the default allocator, not with 1.3x
    monkeypatch.setattr(cpu_threads, "_memory_kept", False)
    default = runtime.apply_tiling(model, 2048, 2048, None, budget, torch.float32)
    monkeypatch.setattr(cpu_threads, "_memory_kept", True)
    kept = runtime.apply_tiling(model, 2048, 2048, None, budget, torch.float32)
    assert default is model and isinstance(kept, tiling.TiledInterpolator)
