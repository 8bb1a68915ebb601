"""Tiled interpolation: tile layout, blend weights, agreement with the untiled model, memory estimates.

Frames are small (up to 200×300) and the network is the small random one from
conftest, so the whole file runs in seconds.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tiling
from conftest import random_interpolator

LENGTHS = (64, 100, 128, 129, 200, 223, 224, 300, 513, 897, 1000)
TILE_OVERLAPS = ((64, 0), (64, 16), (64, 31), (128, 0), (128, 32), (128, 63), (192, 50), (512, 128))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small_model():
    return random_interpolator(filters=4, flow_filters=(4, 4, 8, 8))


def smooth_pair(height, width, motion=(2, 3), seed=0):
    """Two crops of one smooth random image, the second shifted by ``motion`` (dy, dx) pixels."""
    generator = torch.Generator().manual_seed(seed)
    margin = 8
    coarse = torch.rand(1, 3, height // 8 + 4, width // 8 + 4, generator=generator)
    image = F.interpolate(coarse, size=(height + 2 * margin, width + 2 * margin), mode="bicubic",
                          align_corners=False).clamp(0, 1)
    dy, dx = motion
    x0 = image[..., margin:margin + height, margin:margin + width]
    x1 = image[..., margin + dy:margin + dy + height, margin + dx:margin + dx + width]
    return x0.contiguous(), x1.contiguous()


def half_time(batch=1):
    return torch.full((batch, 1), 0.5)


def summed_windows(length, tile_size, overlap):
    total = torch.zeros(length, dtype=torch.float64)
    for start, window in tiling.blend_windows(length, tile_size, overlap):
        total[start:start + window.numel()] += window.double()
    return total


class ReturnsFirstFrame(nn.Module):
    def forward(self, x0, x1, dt):
        return x0.clone()


class ReturnsCallNumber(nn.Module):
    """Each call (tile) returns a flat image of its own value: 0, 1, 2, ... in call order."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x0, x1, dt):
        value = float(self.calls)
        self.calls += 1
        return torch.full_like(x0, value)


class CrossFade(nn.Module):
    def forward(self, x0: torch.Tensor, x1: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        time = dt.reshape(-1, 1, 1, 1)
        return x0 * (1.0 - time) + x1 * time


# --------------------------------------------------------------------------- layout and weights

@pytest.mark.parametrize("tile_size, overlap", TILE_OVERLAPS)
def test_tiles_are_full_size_cover_the_frame_and_overlap_enough(tile_size, overlap):
    for length in LENGTHS:
        starts = tiling.tile_starts(length, tile_size, overlap)
        if length <= tile_size:
            assert starts == [0]
            continue
        assert starts[0] == 0 and starts[-1] == length - tile_size  # full-size tiles, frame covered
        shared = [starts[i] + tile_size - starts[i + 1] for i in range(len(starts) - 1)]
        assert min(shared) >= overlap
        # The fewest tiles that achieve it: one tile fewer would leave a gap wider than the stride.
        assert len(starts) == 1 + math.ceil((length - tile_size) / (tile_size - overlap))


@pytest.mark.parametrize("tile_size, overlap", TILE_OVERLAPS)
def test_windows_sum_to_one_everywhere(tile_size, overlap):
    for length in LENGTHS:
        windows = tiling.blend_windows(length, tile_size, overlap)
        for start, window in windows:
            assert window.numel() == min(length, tile_size)
            assert window.min() >= 0 and window.max() <= 1
        total = summed_windows(length, tile_size, overlap)
        assert torch.allclose(total, torch.ones_like(total), rtol=0, atol=1e-6), (length, total)


def test_windows_are_one_in_the_interior_and_complementary_raised_cosines_in_the_band():
    (start0, first), (start1, second) = tiling.blend_windows(200, 128, 32)
    assert (start0, start1) == (0, 72)
    band = slice(72, 128)  # 56 shared pixels: both tiles of 128 in a 200-pixel frame
    assert torch.equal(first[:72], torch.ones(72)) and torch.equal(second[56:], torch.ones(72))
    assert torch.allclose(first[band], tiling.ramp(56).flip(0).float())
    assert torch.allclose(second[:56], tiling.ramp(56).float())
    assert (first[band].diff() < 0).all() and (second[:56].diff() > 0).all()


def test_crowded_tiles_hand_over_before_the_next_but_one_begins():
    # 897 = 512 + 385 needs two gaps of at most 384: tiles at 0, 193 and 385, and tiles 0 and 2
    # share pixels 385..511.
    windows = tiling.blend_windows(897, 512, 128)
    assert [start for start, _ in windows] == [0, 193, 385]
    first = windows[0][1]
    assert torch.equal(first[385:], torch.zeros(512 - 385))  # tile 0 has handed over to tile 1 by then
    weighted_tiles = torch.zeros(897)
    for start, window in windows:
        weighted_tiles[start:start + 512] += (window > 0).float()
    assert weighted_tiles.max() == 2  # each pixel blends at most two tiles
    total = summed_windows(897, 512, 128)
    assert torch.allclose(total, torch.ones_like(total), rtol=0, atol=1e-6)


def test_two_dimensional_weights_sum_to_one():
    rows, columns = tiling.blend_windows(200, 128, 40), tiling.blend_windows(300, 128, 40)
    total = torch.zeros(200, 300, dtype=torch.float64)
    for top, row_window in rows:
        for left, column_window in columns:
            total[top:top + 128, left:left + 128] += row_window.double()[:, None] * column_window.double()[None, :]
    assert torch.allclose(total, torch.ones_like(total), rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- blending of tile outputs

@pytest.mark.parametrize("overlap", (0, 20, 32, 63))
def test_identical_tile_outputs_are_reproduced(overlap):
    x0, x1 = smooth_pair(200, 300)
    result = tiling.interpolate_tiled(ReturnsFirstFrame(), x0, x1, half_time(), 128, overlap)
    # Exact where one tile covers a pixel; within float rounding of the normalisation in the bands.
    torch.testing.assert_close(result, x0, rtol=0, atol=1e-6)


def test_tile_dependent_constants_blend_as_monotone_ramps():
    # One row of tiles (height 100 <= 128) at columns 0, 86, 172: values 0, 1, 2.
    model = ReturnsCallNumber()
    frame = torch.zeros(1, 3, 100, 300)
    result = tiling.interpolate_tiled(model, frame, frame, half_time(), 128, 32)
    assert model.calls == 3
    profile = result[0, 0, 0]
    assert torch.equal(result, profile.expand_as(result))  # rows are identical: no vertical seams
    assert torch.equal(profile[:86], torch.zeros(86))  # single-tile pixels are the tile's value
    assert torch.equal(profile[128:172], torch.ones(44))
    assert torch.equal(profile[214:], torch.full((86,), 2.0))
    assert (profile.diff() >= 0).all()  # monotone through both 42-pixel bands
    # Smooth: a raised cosine over n pixels steps by at most sin(pi / (2n)) of the jump per pixel.
    assert profile.diff().max() <= math.sin(math.pi / (2 * 42)) + 1e-6


def test_tile_dependent_constants_blend_smoothly_in_two_dimensions():
    model = ReturnsCallNumber()
    frame = torch.zeros(1, 3, 200, 300)
    result = tiling.interpolate_tiled(model, frame, frame, half_time(), 128, 32)[0, 0]
    assert model.calls == 6  # rows at 0 and 72, columns at 0, 86 and 172
    values = torch.arange(6.0)
    assert values.min() <= result.min() and result.max() <= values.max()
    # Neighbouring tiles differ by 1 across columns and by 3 across rows; the narrowest band
    # is 42 pixels, so no step can exceed 3 sin(pi / 84) without a seam.
    largest_step = max(result.diff(dim=0).abs().max(), result.diff(dim=1).abs().max())
    assert largest_step <= 3 * math.sin(math.pi / (2 * 42)) + 1e-6


def test_reduced_and_extended_precision_outputs_keep_their_dtype():
    for dtype in (torch.float64, torch.bfloat16):
        x0 = torch.rand(1, 3, 100, 300, dtype=torch.float64).to(dtype)
        result = tiling.interpolate_tiled(ReturnsFirstFrame(), x0, x0, half_time(), 128, 32)
        assert result.dtype == dtype
        torch.testing.assert_close(result, x0)


def test_script_modules_and_batches_are_tiled():
    model = torch.jit.script(CrossFade())
    x0, x1 = torch.rand(2, 3, 100, 300), torch.rand(2, 3, 100, 300)
    dt = torch.tensor([[0.25], [0.75]])
    torch.testing.assert_close(tiling.interpolate_tiled(model, x0, x1, dt, 128), model(x0, x1, dt))


# --------------------------------------------------------------------------- the real network

def test_frame_within_one_tile_is_exactly_the_untiled_result(small_model):
    x0, x1 = smooth_pair(128, 192)
    with torch.no_grad():
        untiled = small_model(x0, x1, half_time())
        for tile_size in (192, 256):
            assert torch.equal(tiling.interpolate_tiled(small_model, x0, x1, half_time(), tile_size), untiled)


def band_mask(height, width, tile_size, overlap):
    """Pixels where two tiles both have weight: the blend bands."""
    def along(length):
        weighted = torch.zeros(length)
        for start, window in tiling.blend_windows(length, tile_size, overlap):
            weighted[start:start + window.numel()] += (window > 0).float()
        return weighted > 1
    return along(height)[:, None] | along(width)[None, :]


def test_tiled_matches_untiled_and_seams_are_no_worse_than_the_interior(small_model):
    x0, x1 = smooth_pair(200, 300, motion=(2, 3))
    tile_size, overlap = 128, 32
    with torch.no_grad():
        untiled = small_model(x0, x1, half_time())
        tiled = tiling.interpolate_tiled(small_model, x0, x1, half_time(), tile_size, overlap)
        # The same tiles averaged with equal weights: tile-edge pixels (no context on one side)
        # count fully. Used to show that the seam bound below would catch them.
        plain_sum, count = torch.zeros_like(untiled), torch.zeros(1, 1, 200, 300)
        for top in tiling.tile_starts(200, tile_size, overlap):
            for left in tiling.tile_starts(300, tile_size, overlap):
                region = (Ellipsis, slice(top, top + tile_size), slice(left, left + tile_size))
                plain_sum[region] += small_model(x0[region], x1[region], half_time())
                count[region] += 1
    difference = (tiled - untiled).abs().mean(dim=1)[0]
    plain_difference = (plain_sum / count - untiled).abs().mean(dim=1)[0]
    bands = band_mask(200, 300, tile_size, overlap)
    in_bands, interior = difference[bands].mean(), difference[~bands].mean()
    print(f"\ntiled vs untiled, 200x300, tile {tile_size}, overlap {overlap}: max {difference.max():.2e}, "
          f"mean {difference.mean():.2e}; blend bands {in_bands:.2e}, interior {interior:.2e}; "
          f"equal-weight average in the bands {plain_difference[bands].mean():.2e}")
    # Small against outputs spread over ~0.05 (the small network's std): measured max 1.0e-3, mean 1.9e-4.
    assert difference.max() < 5e-3 and difference.mean() < 1e-3
    # Interior pixels also differ (the coarse levels see the whole tile), but a tile's edge
    # pixels are far worse: ~0.07 at the edge, falling to the interior's ~2e-4 within 8 pixels.
    # The raised cosine gives them weights ~(pi / 2n)^2, so the bands stay within 2x the
    # interior (measured 1.3x); an equal-weight average lets the edges in and exceeds it.
    assert in_bands < 2 * interior
    assert plain_difference[bands].mean() > 2 * interior


def test_tiled_interpolator_wraps_the_model(small_model):
    x0, x1 = smooth_pair(200, 300)
    wrapper = tiling.TiledInterpolator(small_model, 128)
    assert (wrapper.tile_size, wrapper.overlap) == (128, tiling.default_overlap(128)) == (128, 32)
    with torch.no_grad():
        assert torch.equal(wrapper(x0, x1, half_time()),
                           tiling.interpolate_tiled(small_model, x0, x1, half_time(), 128, 32))


# --------------------------------------------------------------------------- memory model

def test_estimate_reproduces_its_calibration():
    # (filters, height, width, measured peak RSS in MiB): the table in tiling.py.
    for filters, height, width, measured in ((64, 512, 512, 1263), (64, 1024, 1536, 4955),
                                             (32, 512, 512, 813), (16, 768, 512, 689)):
        estimate = tiling.estimate_peak_memory(height, width, filters) / 2**20
        assert abs(estimate - measured) < 0.02 * measured
    assert tiling.estimate_peak_memory(512, 512, dtype_bytes=2) < tiling.estimate_peak_memory(512, 512)


def test_parameter_count_matches_the_network():
    from interpolator import Interpolator
    for filters in (4, 16):
        assert tiling.parameter_count(filters) == sum(p.numel() for p in Interpolator(filters=filters).parameters())


def test_chosen_tile_is_the_largest_that_fits():
    gib = 2**30
    assert tiling.choose_tile_size(512, 512, 8 * gib) is None
    for budget in (2 * gib, 4 * gib, 8 * gib):
        tile = tiling.choose_tile_size(2160, 3840, budget)
        assert tile % 64 == 0

        def needed(size):
            frame_buffers = tiling.FRAME_BUFFER_VALUES_PER_PIXEL * 4 * 2160 * 3840
            return tiling.ESTIMATE_HEADROOM * tiling.estimate_peak_memory(size, size) + frame_buffers
        assert needed(tile) <= budget < needed(tile + 64)
    assert tiling.choose_tile_size(2160, 3840, 2 * gib) < tiling.choose_tile_size(2160, 3840, 8 * gib)
    # A tile as tall as the frame is estimated at the frame's height, not the tile's.
    assert tiling.choose_tile_size(100, 4000, 1 * gib) > 100


# --------------------------------------------------------------------------- argument checks

@pytest.mark.parametrize("tile_size, message", [(0, "multiple of 64"), (32, "multiple of 64"),
                                                (100, "e.g. 64"), (1000, "e.g. 960"), (128.0, "multiple"),
                                                (True, "multiple")])
def test_bad_tile_sizes_are_refused(tile_size, message):
    x0 = torch.zeros(1, 3, 64, 64)
    with pytest.raises(ValueError, match=message):
        tiling.interpolate_tiled(ReturnsFirstFrame(), x0, x0, half_time(), tile_size)
    with pytest.raises(ValueError, match="tile_size"):
        tiling.TiledInterpolator(ReturnsFirstFrame(), tile_size)


@pytest.mark.parametrize("overlap", (-1, 64, 100, 2.5, True))
def test_bad_overlaps_are_refused(overlap):
    x0 = torch.zeros(1, 3, 64, 64)
    with pytest.raises(ValueError, match=r"overlap < tile_size / 2 = 64"):
        tiling.interpolate_tiled(ReturnsFirstFrame(), x0, x0, half_time(), 128, overlap)
    with pytest.raises(ValueError, match="overlap"):
        tiling.TiledInterpolator(ReturnsFirstFrame(), 128, overlap)


def test_bad_frames_and_models_are_refused():
    x0 = torch.zeros(1, 3, 200, 300)
    with pytest.raises(ValueError, match="one shape"):
        tiling.interpolate_tiled(ReturnsFirstFrame(), x0, x0[..., :100], half_time(), 128)
    with pytest.raises(ValueError, match="one shape"):
        tiling.interpolate_tiled(ReturnsFirstFrame(), x0[0], x0[0], half_time(), 128)
    with pytest.raises(ValueError, match="output of the input size"):
        tiling.interpolate_tiled(lambda a, b, t: a[..., :64, :64], x0, x0, half_time(), 128)
    with pytest.raises(ValueError, match="callable"):
        tiling.TiledInterpolator("model.pt", 128)


def test_bad_memory_arguments_are_refused():
    with pytest.raises(ValueError, match="height must be a positive integer"):
        tiling.estimate_peak_memory(0, 100)
    with pytest.raises(ValueError, match="filters must be a positive integer"):
        tiling.estimate_peak_memory(100, 100, filters=16.0)
    with pytest.raises(ValueError, match="max_memory_bytes must be a positive integer"):
        tiling.choose_tile_size(100, 100, -1)
    with pytest.raises(ValueError, match="too small for a 2160x3840 frame"):
        tiling.choose_tile_size(2160, 3840, 2**29)
