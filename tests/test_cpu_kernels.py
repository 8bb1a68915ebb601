"""The CPU path's fused oneDNN kernels compute what the plain ops compute.

On the CPU in float32 inference the network runs some convolutions as
oneDNN ops with fused post-ops (util.fused_cpu_kernels). The same network
with autograd on takes the plain ops (conv2d, leaky_relu, concatenations),
so the two are compared directly. Tolerance: 1e-5 of the largest output
value; only the order of float32 additions differs (measured ~1e-6).
"""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import util
from conftest import random_interpolator

SMALL = dict(filters=4, flow_filters=(4, 4, 8, 8))


class OpNames(TorchDispatchMode):
    """Records the name of every op that reaches the dispatcher."""

    def __init__(self):
        super().__init__()
        self.names = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def frames(height=96, width=128):
    generator = torch.Generator().manual_seed(3)
    x0 = torch.rand(1, 3, height, width, generator=generator)
    return x0, torch.roll(x0, shifts=(2, 5), dims=(2, 3)), torch.full((1, 1), 0.5)


def plain_outputs(model, x0, x1, dt):
    with torch.enable_grad():  # autograd on: the fused kernels are never taken
        outputs = model.debug_forward(x0, x1, dt)
    return {name: value.detach() for name, value in outputs.items()}


@pytest.mark.parametrize("scripted", [False, True], ids=["eager", "torchscript"])
def test_fused_cpu_path_equals_the_plain_ops(scripted):
    model = random_interpolator(0, **SMALL)
    x0, x1, dt = frames()
    expected = plain_outputs(model, x0, x1, dt)
    if scripted:
        model = torch.jit.script(model)
    with torch.no_grad(), OpNames() as ops:
        actual = model.debug_forward(x0, x1, dt)
    # Eager code takes oneDNN's fused path; a scripted (exported) model names
    # only portable ops and takes the plain one (tests/test_devices.py).
    assert ("mkldnn._convolution_pointwise" in ops.names) is (not scripted)
    for name, value in expected.items():
        scale = value.abs().max().item()
        torch.testing.assert_close(actual[name], value, rtol=0, atol=1e-5 * scale, msg=name)


def test_plain_path_where_fused_kernels_do_not_apply():
    """Autograd, reduced precision and tiny tensors take the plain ops."""
    x = torch.rand(1, 8, 64, 64)
    assert util.fused_cpu_kernels(x) is False  # autograd is on outside no_grad
    with torch.no_grad():
        assert util.fused_cpu_kernels(x)
        assert not util.fused_cpu_kernels(x.bfloat16())
        assert not util.fused_cpu_kernels(x.half())
        assert not util.fused_cpu_kernels(x[:, :1, :16, :16])
        assert not util.fused_cpu_kernels(x.to("meta"))


@torch.no_grad()
def test_conv_leaky_relu_equals_conv_then_activation():
    torch.manual_seed(0)
    for kernel in (1, 3):
        conv = torch.nn.Conv2d(6, 5, kernel, padding=kernel // 2)
        x = util.to_channels_last(torch.randn(2, 6, 40, 48))
        expected = torch.nn.functional.leaky_relu(conv(x), 0.2)
        actual = util.conv_leaky_relu(x, conv.weight, conv.bias)
        torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)
        assert actual.is_contiguous(memory_format=torch.channels_last)


def test_weights_are_stored_channels_last_also_after_loading_a_state_dict():
    """A convolution whose weight is not in its input's layout copies it first,
    on every call (about 0.4 GB per Style forward pass)."""
    from interpolator import Interpolator
    state_dict = {key: value.contiguous() for key, value in random_interpolator(1, **SMALL).state_dict().items()}
    model = Interpolator(**SMALL)
    model.load_state_dict(state_dict)
    for name, parameter in model.named_parameters():
        if parameter.dim() == 4:
            assert parameter.is_contiguous(memory_format=torch.channels_last), name
        torch.testing.assert_close(parameter, state_dict[name], rtol=0, atol=0)


@torch.no_grad()
@pytest.mark.parametrize("size", [(40, 48), (3, 5)], ids=["fused", "plain"])
def test_conv_pair_equals_the_convolution_of_the_concatenation(size):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(14, 6, 3, padding=1)
    a = util.to_channels_last(torch.randn(2, 5, *size))
    b = util.to_channels_last(torch.randn(2, 9, *size))
    expected = torch.nn.functional.leaky_relu(conv(torch.cat([a, b], 1)), 0.2)
    actual = util.conv_pair_leaky_relu(a, b, conv.weight, conv.bias)
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)
    assert actual.is_contiguous(memory_format=torch.channels_last)


def test_fusion_level_by_parts_equals_the_concatenated_input():
    """On the CPU conv1 reads the two warped feature maps where they are and
    only the narrow rest is concatenated; with autograd on, the level runs on
    the whole concatenation as the original does."""
    from fusion import FusionLevel
    torch.manual_seed(0)
    level = FusionLevel(coarser_channels=12, level_channels=2 * (3 + 8) + 4, filters=6).to(
        memory_format=torch.channels_last)
    height, width = 48, 64
    coarser = util.to_channels_last(torch.randn(1, 12, height // 2, width // 2))
    parts = [util.to_channels_last(torch.rand(1, c, height, width)) for c in (3, 8, 3, 8)]
    parts += [torch.randn(1, 2, height, width), torch.randn(1, 2, height, width)]  # flows are NCHW
    with torch.enable_grad():
        expected = level(coarser, list(parts)).detach()
    with torch.no_grad(), OpNames() as ops:
        actual = level(coarser, list(parts))
    assert "mkldnn._convolution_pointwise_" in ops.names  # conv1 by parts did run
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5 * expected.abs().max().item())
