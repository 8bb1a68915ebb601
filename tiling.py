"""Tiled interpolation: frames too large for one forward pass, done in overlapping pieces.

Conventions, stated once for this module:
- Frames are NCHW float tensors, RGB in [0, 1]; ``dt`` is (B, 1), as for
  ``Interpolator.forward``. Any module or ScriptModule with that
  ``forward(x0, x1, dt)`` can be tiled (files exported by other ports too).
- Tiles are squares of ``tile_size`` pixels, a multiple of 64 so that every
  level of the model's 7-level pyramid (coarsest = 1/64) has whole pixels. A
  frame dimension no larger than ``tile_size`` is covered by one tile of the
  full dimension. Along a longer dimension, tiles are full size (never padded):
  the first starts at 0, the last ends at the border, and the fewest tiles that
  keep neighbours at least ``overlap`` pixels into each other are spread evenly
  between them (``tile_starts``). Starts need not be multiples of 64: on the
  small random model, interior pixels of crops matched the full-frame result
  equally well at aligned and unaligned offsets.
- Blending (``blend_windows``): each tile's output is weighted by a separable
  window, 1 in the tile's interior, falling across the band it shares with
  its next neighbour as the raised cosine 0.5 + 0.5 cos(pi (k + 0.5) / n),
  k = 0 .. n - 1, while that neighbour rises as its mirror image. The two sum
  to exactly 1, so the weights of all tiles sum to 1 at every pixel and a pixel
  covered by one tile is that tile's output unchanged. The accumulated result
  is still divided by the summed weights, which only removes rounding. No
  ramp faces the frame border.

Why overlap, and how much. A tile only sees what is inside it: a pixel whose
motion partner lies outside its tile cannot be matched, and a pixel at a tile
edge has no context on one side. The window gives each tile a weight that grows
with the pixel's distance from that tile's inner edge, so inside a blend band
the output is dominated by the tile where the pixel has more context (at the
band's middle, ``overlap / 2`` on the near side), and outside the bands every
pixel is at least ``overlap`` from any inner tile edge. The model's own reach
is far larger: each of its 7 flow levels can add about 3 pixels of its own
scale (3×3 convs), which is about 3·(1 + 2 + ... + 64) ≈ 380 pixels at full
resolution, plus the features' receptive fields. Measured on the Style-size
network (random weights, a 512-pixel crop of a 512×1024 frame), a crop's
output differs from the whole frame's by 3e-2 at its edge, 3e-4 at 64 pixels
in, 4e-5 at 128 and 1e-5 beyond 192. An overlap covering all of that would
make 512-pixel tiles cost several times the untiled work, so the default is a
share of it: ``min(128, tile_size // 4)`` pixels (two pixels of the coarsest
level for tiles of 512 and more). At 1536×1024 with 512-pixel tiles, overlap
192 gave the same mean and max difference from the untiled result as 128
(3.8e-5 and 4e-4) with 15 tiles instead of 12. Near a seam, motion larger
than about half the overlap can take a pixel's partner out of the tile that
dominates there; that tile renders the pixel as if occluded and the blend mixes
the two tiles' guesses. A larger ``overlap`` buys context with time (work grows
as (tile_size / (tile_size - overlap))²); for footage with very large motion
prefer the largest tile that fits in memory.

Memory. One tile's activations are alive at a time; the full-frame buffers are
the caller's inputs plus a float32 accumulator (B, 3, H, W) and a weight sum
(1, 1, H, W), about 130 MB at 3840×2160. Call under ``torch.no_grad()`` (or
``torch.inference_mode()``): with autograd on, every tile's graph is kept.
``estimate_peak_memory`` predicts an untiled forward's peak RSS, and
``choose_tile_size`` picks the largest tile whose forward fits a budget.
"""
import numbers
from typing import Callable, List, Optional, Tuple

import torch
from torch import Tensor

# The model's coarsest pyramid level is 1/64 of the input (7 levels).
TILE_MULTIPLE = 64
MAX_DEFAULT_OVERLAP = 128

# A budget that leaves room for the operating system and other programs on an
# 8 GB machine; 3840×2160 then runs in 960-pixel tiles (see choose_tile_size).
DEFAULT_MAX_MEMORY_BYTES = 4 * 2**30

# ---- Peak-memory model of one untiled forward pass (CPU, fp32, no_grad) -------------
#
#   peak RSS ≈ RUNTIME + WEIGHT_FACTOR · parameter_count(filters) · dtype_bytes
#              + height · width · (PER_PIXEL_BASE + PER_PIXEL_PER_FILTER · filters) · dtype_bytes / 4
#
# Calibrated with ru_maxrss of a fresh process per measurement (torch 2.13 CPU,
# 2 threads, default flow_filters (32, 64, 128, 256), random weights, one
# 64×64 warm-up forward before the measured one), 2026-11-25, after the
# channels_last changes (which roughly halved the activation memory):
#
#   filters  height×width  process before  peak RSS   fitted
#        64       256×256        513 MiB    716 MiB   715 MiB
#        64       512×512        512 MiB   1263 MiB  1268 MiB
#        64       768×512        511 MiB   1639 MiB  1636 MiB
#        64     1536×1024        529 MiB   4955 MiB  4955 MiB
#        32       512×512        339 MiB    813 MiB   808 MiB
#        32       768×512        329 MiB    989 MiB   992 MiB
#        16       768×512        278 MiB    689 MiB   690 MiB
#
# Check outside the fit: 3840×2160 under the 4 GiB default budget runs in
# 960-pixel tiles and peaked at 3.31 GB (benchmark D).
#
# Least squares gives the constants below (within 0.6% on every row): the
# activation cost per pixel is proportional to filters (46 B per filter: 2.9 KB
# per pixel for the released width); a constant term fitted as -66 B, so it is
# left out. The process before the forward is the torch runtime plus about
# the weights' bytes. Flow filters other than the default change the per-pixel
# cost; the estimate does not model them.
RUNTIME_BYTES = 395 * 2**20
WEIGHT_FACTOR = 1.03
PER_PIXEL_BASE_BYTES = 0.0
PER_PIXEL_PER_FILTER_BYTES = 46.1

# choose_tile_size's allowance for full-frame buffers, in float32 values per
# pixel: both inputs (3 + 3), the accumulator (3), the weight sum (1), the
# result (3), and two more RGB copies for the caller (decoding, padding).
FRAME_BUFFER_VALUES_PER_PIXEL = 19
# Headroom on the fitted estimate for allocator fragmentation and platforms
# other than the one it was calibrated on.
ESTIMATE_HEADROOM = 1.1


def parameter_count(filters: int = 64) -> int:
    """Parameters of ``Interpolator(filters=filters)`` with the other settings at their defaults.

    Every conv's parameter count is quadratic in ``filters``; the coefficients
    come from counting the built networks (exact for 4, 16, 32, 48 and 64).
    """
    return 6591 * filters * filters + 91055 * filters + 1612411


def estimate_peak_memory(height: int, width: int, filters: int = 64, dtype_bytes: int = 4) -> int:
    """Peak resident memory, in bytes, of a process running one untiled forward.

    For ``Interpolator(filters=filters)`` with default flow filters, on the CPU
    under ``torch.no_grad()``; ``dtype_bytes`` is 4 for float32, 2 for half
    precision. The formula and its calibration data are in the comment above.
    """
    for name, value in (("height", height), ("width", width), ("filters", filters), ("dtype_bytes", dtype_bytes)):
        _require_positive_int(name, value)
    weights = WEIGHT_FACTOR * parameter_count(filters) * dtype_bytes
    activations = height * width * (PER_PIXEL_BASE_BYTES + PER_PIXEL_PER_FILTER_BYTES * filters) * dtype_bytes / 4
    return int(RUNTIME_BYTES + weights + activations)


def required_memory(height: int, width: int, tile_height: int, tile_width: int, filters: int = 64,
                    dtype_bytes: int = 4) -> float:
    """Bytes a height x width frame needs when run in tiles of tile_height x tile_width (the frame itself: untiled).

    One forward on a tile (``estimate_peak_memory``) plus 10% headroom, plus
    the full-frame buffers (``FRAME_BUFFER_VALUES_PER_PIXEL`` float32 values
    per pixel).
    """
    forward = estimate_peak_memory(tile_height, tile_width, filters, dtype_bytes)
    return ESTIMATE_HEADROOM * forward + FRAME_BUFFER_VALUES_PER_PIXEL * 4 * height * width


def choose_tile_size(height: int, width: int, max_memory_bytes: int, filters: int = 64,
                     dtype_bytes: int = 4) -> Optional[int]:
    """None if an untiled forward fits in ``max_memory_bytes``, else the largest tile that does.

    The requirement of a run is ``required_memory``. Tile sizes are multiples
    of 64. Raises ValueError when even a 64-pixel tile does not fit.
    """
    for name, value in (("height", height), ("width", width), ("max_memory_bytes", max_memory_bytes),
                        ("filters", filters), ("dtype_bytes", dtype_bytes)):
        _require_positive_int(name, value)

    def required(tile_height: int, tile_width: int) -> float:
        return required_memory(height, width, tile_height, tile_width, filters, dtype_bytes)

    if required(height, width) <= max_memory_bytes:
        return None
    # Tiles at least as large as the frame in both dimensions are the untiled run.
    largest = _round_up(max(height, width), TILE_MULTIPLE) - TILE_MULTIPLE
    for tile in range(largest, TILE_MULTIPLE - 1, -TILE_MULTIPLE):
        if required(min(tile, height), min(tile, width)) <= max_memory_bytes:
            return tile
    smallest = required(min(TILE_MULTIPLE, height), min(TILE_MULTIPLE, width))
    raise ValueError(f"max_memory_bytes={max_memory_bytes} ({max_memory_bytes / 2**30:.2f} GiB) is too small "
                     f"for a {height}x{width} frame: even {TILE_MULTIPLE}-pixel tiles need about "
                     f"{smallest / 2**30:.2f} GiB")


def default_overlap(tile_size: int) -> int:
    """``min(128, tile_size // 4)``: the module docstring explains the choice."""
    _check_tile_size(tile_size)
    return min(MAX_DEFAULT_OVERLAP, tile_size // 4)


def tile_starts(length: int, tile_size: int, overlap: int) -> List[int]:
    """Start offsets of the tiles along one dimension of ``length`` pixels.

    One tile at 0 when ``length <= tile_size`` (it then spans ``length``).
    Otherwise as few full-size tiles as keep neighbours ``overlap`` pixels
    apart or closer, ``ceil((length - overlap) / (tile_size - overlap))``,
    spread evenly from 0 to ``length - tile_size``: the tiles a fixed stride
    would leave hanging over the border are shifted inward, and the slack is
    shared by every seam instead of piling up at the last one.
    """
    _require_positive_int("length", length)
    _check_tile_size(tile_size)
    overlap = _check_overlap(overlap, tile_size)
    if length <= tile_size:
        return [0]
    stride = tile_size - overlap
    gaps = -(-(length - tile_size) // stride)  # ceil: no gap longer than the stride
    # Rounded to the nearest pixel; no gap exceeds ceil((length - tile) / gaps) <= stride.
    return [(index * (length - tile_size) + gaps // 2) // gaps for index in range(gaps + 1)]


def ramp(width: int) -> Tensor:
    """Raised-cosine weights rising over ``width`` pixels; ``ramp(n) + ramp(n).flip(0) == 1``."""
    positions = (torch.arange(width, dtype=torch.float64) + 0.5) / width
    return 0.5 - 0.5 * torch.cos(torch.pi * positions)


def blend_windows(length: int, tile_size: int, overlap: int) -> List[Tuple[int, Tensor]]:
    """(start, 1-D float32 window) of each tile along one dimension of ``length`` pixels.

    Neighbouring tiles ``i`` and ``i + 1`` hand over across a band that begins
    where tile ``i + 1`` begins and ends where tile ``i`` ends, or where tile
    ``i + 2`` begins if that is sooner (tiles spread over a length just above
    a multiple of the stride can be closer than half a tile). Across its band
    tile ``i`` falls as a raised cosine and tile ``i + 1`` rises as its mirror
    image; past the band tile ``i`` has weight 0, before it tile ``i + 1`` does
    not exist. So the windows form a partition of unity: they sum to 1 at every
    pixel, and a pixel outside the bands is one tile's output unchanged.
    """
    starts = tile_starts(length, tile_size, overlap)
    span = min(length, tile_size)
    ends = [start + span for start in starts]
    band_ends = [min(ends[i], starts[i + 2]) if i + 2 < len(starts) else ends[i]
                 for i in range(len(starts) - 1)]
    windows = []
    for index, start in enumerate(starts):
        window = torch.ones(span, dtype=torch.float64)
        if index > 0:  # rising across the band shared with the previous tile, which begins here
            band = band_ends[index - 1] - start
            window[:band] = ramp(band)
        if index + 1 < len(starts):  # falling across the band shared with the next tile, then 0
            band_start, band_end = starts[index + 1] - start, band_ends[index] - start
            window[band_start:band_end] = ramp(band_end - band_start).flip(0)
            window[band_end:] = 0.0
        windows.append((start, window.to(torch.float32)))
    return windows


def interpolate_tiled(model: Callable[[Tensor, Tensor, Tensor], Tensor], x0: Tensor, x1: Tensor, dt: Tensor,
                      tile_size: int, overlap: Optional[int] = None) -> Tensor:
    """``model(x0, x1, dt)`` computed tile by tile and blended; (B, 3, H, W) like the untiled call.

    ``tile_size``: a multiple of 64, at least 64. ``overlap``: pixels shared by
    neighbouring tiles, ``0 <= overlap < tile_size / 2``; None gives
    ``default_overlap(tile_size)``. A frame no larger than one tile is passed
    to ``model`` whole, so the result is then exactly the untiled one. The
    result has the model output's dtype (accumulated in float32 or wider).
    """
    _check_tile_size(tile_size)
    overlap = default_overlap(tile_size) if overlap is None else _check_overlap(overlap, tile_size)
    if not (isinstance(x0, Tensor) and isinstance(x1, Tensor)) or x0.dim() != 4 or x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must be (B, C, H, W) tensors of one shape, got "
                         f"{_shape_of(x0)} and {_shape_of(x1)}")
    height, width = x0.shape[-2], x0.shape[-1]
    if height <= tile_size and width <= tile_size:
        return model(x0, x1, dt)

    row_windows = blend_windows(height, tile_size, overlap)
    column_windows = blend_windows(width, tile_size, overlap)
    accumulated: Optional[Tensor] = None
    weight_sum = torch.zeros(1, 1, height, width, dtype=torch.float32, device=x0.device)
    for top, row_window in row_windows:
        for left, column_window in column_windows:
            rows = slice(top, top + row_window.numel())
            columns = slice(left, left + column_window.numel())
            tile = model(x0[:, :, rows, columns].contiguous(), x1[:, :, rows, columns].contiguous(), dt)
            expected = (x0.shape[0], row_window.numel(), column_window.numel())
            if tile.dim() != 4 or (tile.shape[0], tile.shape[2], tile.shape[3]) != expected:
                raise ValueError(f"the model returned {list(tile.shape)} for a tile of {expected[1]}x{expected[2]} "
                                 f"pixels and batch {expected[0]}: tiling needs an output of the input size")
            if accumulated is None:
                output_dtype = tile.dtype
                accumulated = torch.zeros(tile.shape[0], tile.shape[1], height, width, device=tile.device,
                                          dtype=torch.promote_types(tile.dtype, torch.float32))
            weight = (row_window[:, None] * column_window[None, :]).to(weight_sum.device)
            accumulated[:, :, rows, columns] += tile * weight
            weight_sum[:, :, rows, columns] += weight
            del tile  # the tile's output is folded in: let the next forward reuse its memory
    return accumulated.div_(weight_sum).to(output_dtype)


class TiledInterpolator:
    """``model`` run through ``interpolate_tiled``, callable like the model itself.

    Has only ``forward`` (and ``__call__``), deliberately: it does not pass on
    the model's ``encode``/``estimate_flows``/``synthesize``, which would run
    on whole frames, so inference code that prefers them falls back to
    forward calls and every call is tiled.
    """

    def __init__(self, model: Callable[[Tensor, Tensor, Tensor], Tensor], tile_size: int,
                 overlap: Optional[int] = None):
        if not callable(model):
            raise ValueError(f"model must be callable as model(x0, x1, dt), got {type(model).__name__}")
        _check_tile_size(tile_size)
        self.model = model
        self.tile_size = int(tile_size)
        self.overlap = default_overlap(tile_size) if overlap is None else _check_overlap(overlap, tile_size)

    def forward(self, x0: Tensor, x1: Tensor, dt: Tensor) -> Tensor:
        return interpolate_tiled(self.model, x0, x1, dt, self.tile_size, self.overlap)

    __call__ = forward

    def __repr__(self) -> str:
        return f"TiledInterpolator(tile_size={self.tile_size}, overlap={self.overlap})"


# --------------------------------------------------------------------------- checks

def _is_integer(value) -> bool:
    # numpy integers count; True and False do not.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _require_positive_int(name: str, value) -> None:
    if not _is_integer(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_tile_size(tile_size) -> None:
    if not _is_integer(tile_size) or tile_size < TILE_MULTIPLE or tile_size % TILE_MULTIPLE:
        suggestion = ""
        if _is_integer(tile_size) and tile_size > TILE_MULTIPLE:
            suggestion = f", e.g. {tile_size - tile_size % TILE_MULTIPLE}"
        raise ValueError(f"tile_size must be a multiple of {TILE_MULTIPLE} and at least {TILE_MULTIPLE} "
                         f"(the model halves the frame 6 times), got {tile_size!r}{suggestion}")


def _check_overlap(overlap, tile_size: int) -> int:
    if not _is_integer(overlap) or not 0 <= 2 * overlap < tile_size:
        raise ValueError(f"overlap must be an integer with 0 <= overlap < tile_size / 2 = {tile_size / 2:g} "
                         f"(so that no pixel is in more than two tiles per dimension), got {overlap!r}")
    return int(overlap)


def _shape_of(value) -> str:
    return str(list(value.shape)) if isinstance(value, Tensor) else type(value).__name__


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple
