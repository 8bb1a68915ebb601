"""Running a FILM model file: device, precision, threads, loading, tiling, and frames in and out.

What both command-line tools, the benchmark and video workers share to run a
model, with no command line involved:

- ``choose_device`` / ``choose_dtype``: CUDA or MPS when asked for and there;
  a reduced precision only where the hardware runs it natively. CPU threads
  and the allocator: ``cpu_threads``.
- ``load_model``: any accepted model file, i.e. TorchScript from our
  ``export.py`` or from the original PyTorch port, or a state dict in our,
  ComfyUI's or that port's names (``checkpoints``); ``supports_reuse`` tells whether its stages
  (encode / estimate_flows / synthesize) can be called separately.
- ``apply_tiling``: the model, or a tiled wrapper when a frame would not fit
  the memory budget (``tiling``).
- ``ModelRuntime``: a loaded model with its device and dtype, and the frame
  conversions: pixels (H, W, 3) float32 RGB in [0, 1] become (1, 3, H, W)
  tensors padded to a multiple of ``PAD_MULTIPLE`` by repeating edge pixels
  (split evenly between the sides); results are cropped back and quantized
  to uint8 or uint16 (``tensor_to_samples``, by ``media.samples``).
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

import cpu_threads
import media.samples
import tiling
from cpu_threads import keep_freed_memory, set_threads

log = logging.getLogger("film")

PAD_MULTIPLE = 64


class SetupError(Exception):
    """A model file or a setting that cannot be run as asked, explained in one line."""


class ModelLoadError(SetupError):
    """The model file is missing or is not a model this program can run."""


# --------------------------------------------------------------------------- device and precision

def choose_device(want_gpu: bool) -> torch.device:
    """CUDA, else Apple MPS, when asked for and present; otherwise the CPU."""
    if not want_gpu:
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    log.warning("--gpu: no CUDA or MPS device is available, running on the CPU")
    return torch.device("cpu")


PRECISIONS = ("fp32", "bf16", "fp16")
PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# Measured against fp32 with the Style network (random weights: the released
# ones cannot be downloaded here) on the photos at 512x384, on the CPU with
# emulated kernels (fp32 accumulation, as native ones); see README.
PRECISION_ERRORS = {"bf16": "max 1.0e-2, mean 1.7e-3", "fp16": "max 1.5e-3, mean 2.7e-4"}


def native_precision_support(device: torch.device, precision: str) -> bool:
    """Whether ``device`` has fast kernels for the precision's convolutions."""
    if precision == "fp32":
        return True
    if device.type == "cpu":
        if not torch.backends.mkldnn.is_available():
            return False
        if precision == "bf16" and _is_x86():
            # oneDNN calls bf16 supported on any AVX-512 CPU, where it emulates
            # it: 3-7x slower than fp32 measured on a Xeon without AVX-512 BF16.
            return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
        # oneDNN's own test: AVX-512 FP16 / AMX-FP16 (fp16), other CPUs' bf16.
        check = {"bf16": "_is_mkldnn_bf16_supported", "fp16": "_is_mkldnn_fp16_supported"}[precision]
        return bool(getattr(torch.ops.mkldnn, check)())
    if device.type == "cuda" and precision == "bf16":
        # torch.cuda.is_bf16_supported() also counts emulated bf16 (pre-Ampere).
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "mps" and precision == "bf16":
        return _macos_major() >= 14  # MPS has bf16 from macOS 14 (Sonoma)
    return True


def _macos_major() -> int:
    import platform
    release = platform.mac_ver()[0]
    return int(release.split(".")[0]) if release else 0


def _is_x86() -> bool:
    import platform
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def choose_dtype(device: torch.device, precision: str) -> torch.dtype:
    if not native_precision_support(device, precision):
        where = "this CPU" if device.type == "cpu" else f"this {device.type} device"
        log.warning(f"--precision {precision}: {where} has no native {precision} arithmetic (it would run "
                    f"several times slower than fp32): running in fp32")
        return torch.float32
    return PRECISION_DTYPES[precision]


# --------------------------------------------------------------------------- model files

def load_model(path: str, device: torch.device = torch.device("cpu"),
               dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """Load a TorchScript file, or a state dict (.safetensors, .pt, .pth) of FILM weights
    in our, ComfyUI's or the original port's names (``checkpoints``)."""
    if not os.path.exists(path):
        raise ModelLoadError(f"model file not found: {path}")
    if os.path.isdir(path):
        raise ModelLoadError(f"expected a model file, found a folder: {path}")
    try:
        model = _eager_if_ours(torch.jit.load(path, map_location="cpu"))
    except ModelLoadError:
        raise
    except Exception:
        model = _model_from_state_dict(path)
    # The original port exports fp16 weights by default: always convert to the
    # precision we compute in.
    return model.eval().to(device=device, dtype=dtype)


def _eager_if_ours(scripted: torch.nn.Module) -> torch.nn.Module:
    """Our TorchScript file rebuilt as the eager network with its weights; other files as they are.

    The exported file names only aten/prim ops, so that every torch build
    loads it; the eager network picks oneDNN's fused CPU kernels at run time
    where this torch has them (``util.fused_cpu_kernels``), which a scripted
    file cannot do without naming those ops.
    """
    if not supports_reuse(scripted):
        return scripted  # e.g. the original PyTorch port's file: its own code
    import convert

    try:
        return convert.interpolator_from_state_dict(scripted.state_dict())
    except Exception:  # a file of ours from another version: run its own code
        return scripted


def _model_from_state_dict(path: str) -> torch.nn.Module:
    """Our network from a state dict in any layout ``checkpoints`` reads (ours, ComfyUI's, the original port's)."""
    import checkpoints  # only needed for state dicts; TorchScript files carry their code

    try:
        return checkpoints.interpolator_from_file(path)
    except checkpoints.CheckpointError as error:
        raise ModelLoadError(checkpoints.message(path, error)) from None


def supports_reuse(model: torch.nn.Module) -> bool:
    """Whether the model exposes the stages of ``forward`` separately."""
    return all(hasattr(model, name) for name in ("encode", "estimate_flows", "synthesize"))


def model_filters(model: torch.nn.Module) -> int:
    """The network's base width, for the memory estimate (64, the released models', if unknown)."""
    try:
        return int(model.state_dict()["feature_extractor.sub_extractor.convs.0.weight"].shape[0])
    except (KeyError, AttributeError, RuntimeError):
        return 64


# --------------------------------------------------------------------------- tiling

def default_memory_budget_gb(device: torch.device) -> float:
    """60% of the device's memory: room for the rest of the process and the system.

    CUDA: the GPU's memory; MPS: what Metal recommends for one process (unified
    memory shared with the system); CPU: the machine's memory.
    """
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
    elif device.type == "mps":
        total = torch.mps.recommended_max_memory()
    else:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return 0.6 * total / 2 ** 30


def apply_tiling(model: torch.nn.Module, height: int, width: int, tile: Optional[int],
                 max_memory_gb: Optional[float], dtype: torch.dtype,
                 device: torch.device = torch.device("cpu")) -> torch.nn.Module:
    """The model, or a tiled wrapper of it when asked for or when a frame would not fit the budget.

    ``height`` and ``width`` are the padded frame size the model will see.
    """
    if max_memory_gb is None:
        max_memory_gb = default_memory_budget_gb(device)
    if tile is None:
        dtype_bytes = torch.empty((), dtype=dtype).element_size()
        # tiling's estimate is calibrated with the default allocator.
        kept = cpu_threads.KEPT_MEMORY_FACTOR if device.type == "cpu" and cpu_threads.memory_kept() else 1.0
        try:
            tile = tiling.choose_tile_size(height, width, max(1, int(max_memory_gb * 2 ** 30 / kept)),
                                           filters=model_filters(model), dtype_bytes=dtype_bytes)
        except ValueError:
            smallest = kept * tiling.required_memory(height, width, min(height, tiling.TILE_MULTIPLE),
                                                     min(width, tiling.TILE_MULTIPLE), model_filters(model),
                                                     dtype_bytes)
            raise SetupError(f"--max_memory {max_memory_gb:g} GB is too small for a {width}x{height} frame: "
                             f"even {tiling.TILE_MULTIPLE} px tiles need about {smallest / 2 ** 30:.2f} GB") from None
        if tile is None:
            return model
        log.info(f"a {width}x{height} frame needs more than --max_memory {max_memory_gb:.1f} GB: "
                 f"processing it in {tile} px tiles")
    if tile >= height and tile >= width:
        return model
    return tiling.TiledInterpolator(model, tile)


def padded_size(height: int, width: int) -> Tuple[int, int]:
    """The frame size the model sees for a height x width frame."""
    return height + (-height % PAD_MULTIPLE), width + (-width % PAD_MULTIPLE)


# --------------------------------------------------------------------------- tensors

class CropBox(NamedTuple):
    """Where the original image lies inside its padded copy."""

    top: int
    left: int
    height: int
    width: int


def image_to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """(H, W, 3) float32 array -> (1, 3, H, W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).unsqueeze(0).contiguous()


def pad_to_multiple(image: torch.Tensor, multiple: int = PAD_MULTIPLE) -> Tuple[torch.Tensor, CropBox]:
    """Pad H and W up to a multiple by repeating edge pixels, half on each side.

    Repeated edges rather than the original port's black borders: a black frame
    edge is a strong static feature that the flow estimator can latch onto, while
    repeated pixels move with the content next to them.
    """
    height, width = image.shape[-2:]
    pad_height = -height % multiple
    pad_width = -width % multiple
    top, left = pad_height // 2, pad_width // 2
    crop = CropBox(top, left, height, width)
    if pad_height == 0 and pad_width == 0:
        return image, crop
    padded = F.pad(image, (left, pad_width - left, top, pad_height - top), mode="replicate")
    return padded, crop


def tensor_to_samples(frame: torch.Tensor, crop: CropBox, dtype: type = np.uint8) -> np.ndarray:
    """Crop a (1, 3, H, W) frame back to the input size; (H, W, 3) of ``dtype``, rounded to nearest.

    uint8: 0-255; uint16: the full 16-bit scale, 0-65535. The crop, in
    float32, comes to the CPU and is quantized there by ``media.samples``.
    """
    top, left, height, width = crop
    region = frame[0, :, top:top + height, left:left + width].float()
    return media.samples.to_samples(region.detach().permute(1, 2, 0).cpu().numpy(), dtype)


# --------------------------------------------------------------------------- a model ready to run

class ModelRuntime(NamedTuple):
    """A loaded model (possibly tiled) with the device and dtype it runs in."""

    model: torch.nn.Module
    device: torch.device
    dtype: torch.dtype

    @property
    def reuse(self) -> bool:
        """Whether frames' pyramids and pairs' flows can be computed once and reused."""
        return supports_reuse(self.model)

    def to_model(self, pixels: np.ndarray) -> Tuple[torch.Tensor, CropBox]:
        """(H, W, 3) float32 pixels -> the padded (1, 3, H', W') tensor the model sees, and its crop."""
        padded, crop = pad_to_multiple(image_to_tensor(pixels))
        return padded.to(device=self.device, dtype=self.dtype), crop


# --------------------------------------------------------------------------- calling the model

Pyramids = Tuple[List[torch.Tensor], List[torch.Tensor]]  # (image pyramid, feature pyramid)
Flows = Tuple[List[torch.Tensor], List[torch.Tensor]]     # (forward, backward) flow pyramids


def _takes_float32_time(model: torch.nn.Module) -> bool:
    """Our networks (also tiled) scale flows by ``dt`` in float32 whatever their precision."""
    inner = model.model if isinstance(model, tiling.TiledInterpolator) else model
    return supports_reuse(inner)


def time_input(model: torch.nn.Module, like: torch.Tensor, dt: float) -> torch.Tensor:
    """``dt`` as the (B, 1) tensor ``model`` takes, for frames like ``like``.

    float32 for our networks in every precision (in bfloat16, 1/3 would be
    0.33398); files with only ``forward`` (the original port's) compute with
    ``dt`` in their frames' dtype, so they get it in that dtype.
    """
    dtype = torch.float32 if _takes_float32_time(model) else like.dtype
    return torch.full((like.shape[0], 1), float(dt), dtype=dtype, device=like.device)


class ModelFrame:
    """A frame as the model sees it: a padded (B, 3, H, W) tensor, and its pyramids once computed."""

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor
        self._pyramids: Optional[Pyramids] = None

    def pyramids(self, model: torch.nn.Module) -> Pyramids:
        if self._pyramids is None:
            with torch.no_grad():
                self._pyramids = model.encode(self.tensor)
        return self._pyramids


# TorchScript's optimizing executor re-profiles and recompiles during the first
# calls (seconds each, per input size) for no measurable gain here; every model
# call below runs with it off.
def _executor_settings():
    return torch.jit.optimized_execution(False)


def run_schedule(model: torch.nn.Module, first: ModelFrame, second: ModelFrame, schedule,
                 reuse: Optional[bool] = None) -> Iterator[Tuple[int, torch.Tensor]]:
    """Make a ``frame_schedule.Schedule``'s frames; yields (slot, frame) in the schedule's step order.

    The one place where frames are made from a model, for images and videos.
    ``first`` and ``second`` are slots 0 and last, on the model's device and
    dtype. Frames are clamped to [0, 1] (also before serving as inputs of later
    steps, as in the original port) and must not be modified in place: a frame
    may still be needed as an input. With ``reuse`` (default: when the model
    supports it) a frame's pyramids are computed once (kept on its
    ``ModelFrame``) and a pair's flows once; what this call made is dropped
    after the last step that needs it, so only the frames along the current
    branch of the schedule hold pyramids. Without, ``forward`` runs whole.
    """
    if reuse is None:
        reuse = supports_reuse(model)
    slot_last_use = schedule.last_use_of_slots()
    pair_last_use = schedule.last_use_of_pairs()
    frames: Dict[int, ModelFrame] = {0: first, schedule.last_slot: second}
    del first, second  # held only in frames, so that what the caller does not hold is freed at last use
    flows: Dict[Tuple[int, int], Flows] = {}

    # A function of its own, so that its local references to pyramids end with
    # the step and freed pyramids are really freed before the next encode.
    @torch.no_grad()
    def make_frame(step) -> torch.Tensor:
        left, right = frames[step.left], frames[step.right]
        dt = time_input(model, left.tensor, step.dt)
        if not reuse:
            return model(left.tensor, right.tensor, dt).clamp(0, 1)
        left_images, left_features = left.pyramids(model)
        right_images, right_features = right.pyramids(model)
        pair = (step.left, step.right)
        if pair not in flows:
            flows[pair] = model.estimate_flows(left_features, right_features)
        forward_flows, backward_flows = flows[pair]
        return model.synthesize(left_images, left_features, right_images, right_features,
                                forward_flows, backward_flows, dt).clamp(0, 1)

    for index, step in enumerate(schedule.steps):
        with _executor_settings():
            frame = make_frame(step)
        pair = (step.left, step.right)
        if step.new in slot_last_use:
            frames[step.new] = ModelFrame(frame)
        if pair_last_use[pair] == index:
            flows.pop(pair, None)
        for slot in pair:
            if slot_last_use[slot] == index:
                frames.pop(slot, None)
        yield step.new, frame


@dataclasses.dataclass(frozen=True)
class RuntimeOptions:
    """How a model file is run: the CLIs' --gpu, --precision, --tile, --max_memory and --threads."""

    gpu: bool = False
    precision: str = "fp32"
    tile: Optional[int] = None              # tile size in pixels (None: only when a frame would not fit)
    max_memory_gb: Optional[float] = None   # the tiling budget (None: default_memory_budget_gb)
    threads: Optional[int] = None           # CPU threads (None: the cores this process may use)

    def with_threads(self, threads: Optional[int]) -> "RuntimeOptions":
        return dataclasses.replace(self, threads=threads)


def open_model(path: str, options: RuntimeOptions = RuntimeOptions(), *,
               frame_size: Tuple[int, int], native_only: bool = True) -> ModelRuntime:
    """Load ``path`` as ``options`` say, tiled if ``frame_size`` (H, W) needs it.

    ``native_only=False`` runs the precision asked for even where the hardware
    would emulate it (slowly): for measuring what a precision does to quality.
    """
    threads, gpu, precision = options.threads, options.gpu, options.precision
    tile, max_memory_gb = options.tile, options.max_memory_gb
    set_threads(threads)
    device = choose_device(gpu)
    if device.type == "cpu":
        keep_freed_memory()
    dtype = choose_dtype(device, precision) if native_only else PRECISION_DTYPES[precision]
    model = load_model(path, device, dtype)
    tiled = apply_tiling(model, *padded_size(*frame_size), tile, max_memory_gb, dtype, device)
    runtime = ModelRuntime(tiled, device, dtype)
    if tiled is not model:
        log.info("tiled frames run the whole network for each tile (frames' features are not reused)")
    elif not runtime.reuse:
        log.info("the model only has forward(): each new frame runs the whole network")
    return runtime
