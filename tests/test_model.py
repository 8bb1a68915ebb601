"""Behaviour of the TorchScript model beyond the reference cases: sizes, batches, dt."""
import io

import pytest
import torch

from conftest import random_interpolator
from fusion import FusionLevel
from interpolator import Interpolator

SMALL = dict(filters=4, flow_filters=(4, 4, 8, 8))


@pytest.fixture(scope="module")
def scripted():
    model = random_interpolator(**SMALL)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    buffer.seek(0)
    return model, torch.jit.load(buffer)


def frames(batch, height, width, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.rand(batch, 3, height, width, generator=generator)
    return x0, torch.roll(x0, shifts=(2, 3), dims=(2, 3))


@torch.no_grad()
def test_any_size_and_eager_equals_scripted(scripted):
    eager, script = scripted
    for height, width in ((90, 135), (64, 64), (101, 67)):
        x0, x1 = frames(1, height, width)
        dt = torch.full((1, 1), 0.5)
        out = script(x0, x1, dt)
        assert out.shape == (1, 3, height, width)
        # Same float ops in the same order: the two paths agree to float rounding.
        torch.testing.assert_close(out, eager(x0, x1, dt), rtol=0, atol=1e-6)


@torch.no_grad()
def test_batch_with_different_dt_per_item(scripted):
    _, script = scripted
    x0, x1 = frames(2, 90, 135)
    dt = torch.tensor([[0.25], [0.7]])
    batched = script(x0, x1, dt)
    for i in range(2):
        single = script(x0[i:i + 1], x1[i:i + 1], dt[i:i + 1])
        # Batched and single convolutions may take different kernels: float
        # rounding only (outputs are of order 0.3, so 1e-5 is ~3e-5 relative).
        torch.testing.assert_close(batched[i:i + 1], single, rtol=0, atol=1e-5)


@torch.no_grad()
def test_dt_is_honoured(scripted):
    _, script = scripted
    x0, x1 = frames(1, 90, 135)
    half = script(x0, x1, torch.full((1, 1), 0.5))
    quarter = script(x0, x1, torch.full((1, 1), 0.25))
    assert (half - quarter).abs().max() > 1e-3
    # The reuse API renders the same frame as forward.
    images0, features0 = script.encode(x0)
    images1, features1 = script.encode(x1)
    forward_flows, backward_flows = script.estimate_flows(features0, features1)
    again = script.synthesize(images0, features0, images1, features1, forward_flows, backward_flows,
                              torch.full((1, 1), 0.25))
    torch.testing.assert_close(again, quarter, rtol=0, atol=0)


def test_bad_inputs_are_refused_clearly(scripted):
    _, script = scripted
    x0, x1 = frames(1, 90, 135)
    with pytest.raises(Exception, match="at least 64x64"):
        script(x0[:, :, :40], x1[:, :, :40], torch.full((1, 1), 0.5))
    with pytest.raises(Exception, match="one shape"):
        script(x0, x1[:, :, :80], torch.full((1, 1), 0.5))


def test_invalid_configuration_is_refused():
    with pytest.raises(ValueError, match="flow_convs and flow_filters"):
        Interpolator(flow_convs=(3, 3), flow_filters=(4, 4))
    with pytest.raises(ValueError, match="specialized_levels"):
        Interpolator(pyramid_levels=3, sub_levels=3, fusion_pyramid_levels=3, specialized_levels=3)


@torch.no_grad()
@pytest.mark.parametrize("coarse_size", [(6, 10), (1, 1)])
def test_parity_split_upsample_conv_equals_the_literal_one(coarse_size):
    """The fusion's up_conv on exact 2x sizes runs as four small convolutions
    on the coarse grid; it must equal upsample -> pad -> 2x2 conv. Tolerance
    1e-6 of the largest value: only the order of float32 additions differs
    (the kernel taps are summed first), measured 2e-7."""
    torch.manual_seed(0)
    level = FusionLevel(coarser_channels=5, level_channels=3, filters=4)
    coarser = torch.randn(2, 5, *coarse_size)
    height, width = 2 * coarse_size[0], 2 * coarse_size[1]
    expected = level.literal_upsample_conv(coarser, height, width)
    # Written into a channels_last slice, as the fusion does.
    buffer = torch.full((2, height, width, 7), float("nan")).permute(0, 3, 1, 2)
    level._upsample_conv_into(coarser, buffer[:, 3:])
    assert torch.isnan(buffer[:, :3]).all()  # the level's own channels are not touched
    torch.testing.assert_close(buffer[:, 3:], expected, rtol=0, atol=1e-6 * expected.abs().max().item())


@torch.no_grad()
def test_features_stay_channels_last_and_the_output_is_contiguous(scripted):
    """The speed of the CPU path rests on the channels_last layout throughout
    (see util); a change that silently falls back to NCHW would cost ~10%."""
    model, scripted_model = scripted
    x0, x1 = frames(1, 64, 96)
    dt = torch.full((1, 1), 0.5)
    for m in (model, scripted_model):
        images, features = m.encode(x0)
        for tensor in images + features:
            assert tensor.is_contiguous(memory_format=torch.channels_last)
        assert m(x0, x1, dt).is_contiguous()


@torch.no_grad()
def test_reuse_api_refuses_frames_of_different_sizes(scripted):
    for model in scripted:
        images0, features0 = model.encode(frames(1, 64, 96)[0])
        images1, features1 = model.encode(frames(1, 64, 90)[0])
        with pytest.raises((ValueError, torch.jit.Error), match="feature pyramids of the two frames differ"):
            model.estimate_flows(features0, features1)
        flows = model.estimate_flows(features0, features0)
        with pytest.raises((ValueError, torch.jit.Error), match="image pyramids of the two frames differ"):
            model.synthesize(images0, features0, images1, features1, flows[0], flows[1], torch.full((1, 1), 0.5))
