"""The backward warp (util): expected outputs, and its two implementations.

On the CPU the warp is a weighted gather of whole pixel vectors
(``bilinear_taps`` + ``gather_bilinear``); on GPUs it is grid_sample. Both must
be the original's bilinear interpolation with clamped positions.
"""
import pytest
import torch

import util


def image_and_flow(batch=2, channels=5, height=7, width=9, scale=4.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, channels, height, width, generator=generator)
    # Large enough that many positions fall outside and are clamped.
    flow = torch.randn(batch, 2, height, width, generator=generator) * scale
    return util.to_channels_last(image), flow


def test_integer_shift_is_an_exact_copy_clamped_at_the_border():
    image, _ = image_and_flow()
    flow = torch.zeros(2, 2, 7, 9)
    flow[:, 0] = 2.0   # read two pixels to the right
    flow[:, 1] = -1.0  # and one row up
    warped = util.warp(image, flow)
    cols = (torch.arange(9) + 2).clamp(max=8)
    rows = (torch.arange(7) - 1).clamp(min=0)
    expected = image[:, :, rows][:, :, :, cols]
    assert torch.equal(warped, expected)  # weights are exactly 1 and 0


def test_half_pixel_shift_averages_neighbours():
    image = torch.tensor([[[[0.0, 1.0, 4.0]]]])
    flow = torch.zeros(1, 2, 1, 3)
    flow[:, 0] = 0.5
    # The last position (2.5) is clamped to pixel 2.
    assert torch.equal(util.warp(image, flow), torch.tensor([[[[0.5, 2.5, 4.0]]]]))


@pytest.mark.parametrize("size", [(7, 9), (1, 1), (1, 6), (5, 1)])
def test_gather_equals_grid_sample(size):
    """Tolerance 1e-5: grid_sample's normalised coordinates cost about one
    float32 ulp of position (~1e-6 px here), times image gradients below 1."""
    image, flow = image_and_flow(height=size[0], width=size[1])
    by_gather = util.gather_bilinear(image, util.bilinear_taps(flow))
    by_grid = util.warp_with_grid(image, util.sampling_grid(flow))
    assert by_gather.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(by_gather, by_grid, rtol=0, atol=1e-5)


@pytest.mark.parametrize("path", ["gather", "grid"])
def test_reduced_precision_images_keep_float32_positions(path):
    """A bfloat16 image warped by a float32 flow: only the values are rounded
    (bf16 keeps 8 bits: 2^-8 of values in [0, 1]), not the positions; a
    position rounded to bf16 would be off by a whole pixel at x ~ 300."""
    image, _ = image_and_flow(batch=1, channels=3, height=4, width=400)
    flow = torch.full((1, 2, 4, 400), 0.25)
    sampler = (util.bilinear_taps(flow), ) if path == "gather" else (util.sampling_grid(flow), )
    warp = util.gather_bilinear if path == "gather" else util.warp_with_grid
    expected = warp(image, sampler[0])
    reduced = warp(image.bfloat16(), sampler[0])
    assert reduced.dtype == torch.bfloat16
    torch.testing.assert_close(reduced.float(), expected, rtol=0, atol=2 ** -8)


@pytest.mark.parametrize("path", ["gather", "grid"])
def test_image_and_flow_of_different_sizes_are_refused(path):
    """grid_sample alone would silently resample to the flow's size (this hid
    a benchmark bug: frames of two sizes were paired)."""
    image, _ = image_and_flow(height=4, width=3)
    flow = torch.zeros(2, 2, 3, 4)  # same pixel count, transposed
    sampler = util.bilinear_taps(flow) if path == "gather" else util.sampling_grid(flow)
    warp = util.gather_bilinear if path == "gather" else util.warp_with_grid
    with pytest.raises(ValueError, match="cannot warp a 4x3 image"):
        warp(image, sampler)
