"""FILM weight files of every PyTorch port: reading them, naming their tensors, configuration from shapes.

A weight file is a state dict (tensors by name), in one of three layouts:

- ``ours``: this port's parameter names (``feature_extractor.sub_extractor.
  convs.0.weight`` ...), as written by ``export.py --statedict``; it also
  holds ``pyramid_levels_``, the one setting no shape reveals.
- ``comfyui``: ComfyUI core's ``FILMNet`` (``comfy_extras/
  frame_interpolation_models/film_net.py``), whose ``film_net_fp16.safetensors``
  (Hugging Face ``Comfy-Org/frame_interpolation``, 82 fp16 tensors) is the
  FILM file most people download.
- ``seed``: the original PyTorch port's modules (the state dict inside its
  TorchScript release ``film_net_fp16.pt``, or one saved with its
  ``--statedict``). ComfyUI's names are the seed's with each wrapped
  convolution's ``.0.`` (an ``nn.Sequential`` index) spelt ``.conv.``.

Both foreign layouts mirror the TF module tree (``extract`` = ``feat_net``,
``predict_flow``, ``fuse`` = ``fusion``), with two orders reversed: the
specialised flow predictors are stored coarsest first (``_predictors.0`` is
TF's ``flow_predictor_{S-1}``), and so are the fusion levels (``fuse.convs.0``
is the coarsest level, TF's ``conv2d_{3(F-2)}`` ...). The feature convs are
grouped per sub-level (``convs.{i}.{0,1}`` = TF ``cfeat_conv_{2i}``,
``cfeat_conv_{2i+1}``). ``file_key`` is that table, rule by rule; the tests
hold it to the shapes of the released Style file.

Files are recognised by content, not by extension: safetensors (no pickle),
``torch.save`` archives (read with ``weights_only=True``) and TorchScript
archives (their state dict). Every refusal is one line (``CheckpointError``).
"""
from __future__ import annotations

import json
import os
import re
import struct
import zipfile
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import torch

import convert
from interpolator import Interpolator
from media.errors import first_line

LAYOUTS = ("ours", "comfyui", "seed")
LAYOUT_NAMES = {"ours": "this port's", "comfyui": "ComfyUI core's", "seed": "the original PyTorch port's"}
# What a wrapped convolution's tensors are called under in each foreign layout.
_WRAPPER = {"comfyui": "conv", "seed": "0"}
_FUSION_CONVS = ("up_conv", "conv1", "conv2")
# The released models' pyramid depth; no file of a foreign layout records it.
DEFAULT_PYRAMID_LEVELS = 7


class CheckpointError(ValueError):
    """The file is not FILM weights in a layout this port reads; the message is one line.

    ``detail`` is the message without the file's path.
    """

    def __init__(self, detail: str, path: Optional[str] = None):
        self.detail = detail
        self.path = path
        super().__init__(f"{path}: {detail}" if path else detail)


class UnreadableWeights(CheckpointError):
    """The file holds no state dict that can be read (not a weight file, truncated, corrupt)."""


def message(path: str, error: CheckpointError) -> str:
    """The one line for the user about ``path``."""
    if isinstance(error, UnreadableWeights):
        return f"{path} is neither a TorchScript model nor a state dict ({error.detail})"
    return f"{path} holds tensors that do not fit a FILM interpolator ({error.detail})"


# --------------------------------------------------------------------------- the name table

def file_key(our_key: str, layout: str, specialized_levels: int, fusion_pyramid_levels: int) -> Optional[str]:
    """The name our parameter ``our_key`` has in a ``layout`` file (None: the layout has no such tensor).

    ``specialized_levels`` and ``fusion_pyramid_levels`` fix the two reversed
    orders (see the module docstring).
    """
    if layout == "ours":
        return our_key
    if our_key == convert.PYRAMID_LEVELS_KEY:
        return None
    wrap = _WRAPPER[layout]
    parts = our_key.split(".")
    param = parts[-1]
    if parts[:3] == ["feature_extractor", "sub_extractor", "convs"]:
        k = int(parts[3])
        return f"extract.extract_sublevels.convs.{k // 2}.{k % 2}.{wrap}.{param}"
    if parts[:2] == ["flow_estimator", "predictors"]:
        stored = specialized_levels - 1 - int(parts[2])
        return f"predict_flow._predictors.{stored}._convs.{parts[4]}.{wrap}.{param}"
    if parts[:2] == ["flow_estimator", "shared"]:
        return f"predict_flow._predictor._convs.{parts[3]}.{wrap}.{param}"
    if parts[:2] == ["fusion", "levels"]:
        stored = fusion_pyramid_levels - 2 - int(parts[2])
        return f"fuse.convs.{stored}.{_FUSION_CONVS.index(parts[3])}.{wrap}.{param}"
    if parts[:2] == ["fusion", "output_conv"]:
        return f"fuse.output_conv.{param}"  # a plain Conv2d in both ports
    raise KeyError(f"no {layout} name for parameter {our_key!r}")


def name_table(config: Mapping, layout: str) -> Dict[str, str]:
    """{our parameter name: its name in a ``layout`` file} for a network of ``config``."""
    with torch.device("meta"):
        keys = list(Interpolator(**config).state_dict())
    table = {}
    for key in keys:
        name = file_key(key, layout, config["specialized_levels"], config["fusion_pyramid_levels"])
        if name is not None:
            table[key] = name
    return table


# --------------------------------------------------------------------------- layout and configuration

_OURS_PREFIXES = ("feature_extractor.", "flow_estimator.", "fusion.")
_FOREIGN_PREFIXES = ("extract.", "predict_flow.", "fuse.")


def detect_layout(keys: Iterable[str]) -> str:
    keys = list(keys)
    ours = sum(k.startswith(_OURS_PREFIXES) or k == convert.PYRAMID_LEVELS_KEY for k in keys)
    foreign = [k for k in keys if k.startswith(_FOREIGN_PREFIXES)]
    if foreign and len(foreign) >= ours:
        comfy = sum(".conv." in k for k in foreign)
        return "comfyui" if comfy >= len(foreign) - comfy else "seed"
    if ours:
        return "ours"
    raise CheckpointError(f"no FILM tensor names: expected names like ours (feature_extractor.sub_extractor."
                          f"convs.0.weight), ComfyUI's (extract.extract_sublevels.convs.0.0.conv.weight) or "
                          f"the original port's (extract.extract_sublevels.convs.0.0.0.weight); "
                          f"found {_some(sorted(keys))}")


def _some(names: List[str], limit: int = 3) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _indices(keys: Iterable[str], pattern: str) -> Dict[Tuple[int, ...], str]:
    compiled = re.compile(pattern)
    found = {}
    for key in keys:
        match = compiled.fullmatch(key)
        if match:
            found[tuple(int(g) for g in match.groups())] = key
    return found


def config_from_foreign_shapes(shapes: Mapping[str, Tuple[int, ...]], layout: str,
                               pyramid_levels: int = DEFAULT_PYRAMID_LEVELS) -> dict:
    """The Interpolator configuration a ComfyUI or seed-port file's names and shapes imply.

    sub_levels, specialized_levels and fusion_pyramid_levels count the
    sub-level, predictor and fusion-level groups; filters and flow_filters are
    the output widths of the first convolutions; flow_convs counts each
    predictor's convs less its two 1x1 ones. Whether every tensor is there
    and of the right shape is checked after, against the network this builds.
    """
    wrap = re.escape(_WRAPPER[layout])
    features = _indices(shapes, rf"extract\.extract_sublevels\.convs\.(\d+)\.([01])\.{wrap}\.weight")
    specialised = _indices(shapes, rf"predict_flow\._predictors\.(\d+)\._convs\.(\d+)\.{wrap}\.weight")
    shared = _indices(shapes, rf"predict_flow\._predictor\._convs\.(\d+)\.{wrap}\.weight")
    fusion = _indices(shapes, rf"fuse\.convs\.(\d+)\.([012])\.{wrap}\.weight")
    for what, found in (("extract.extract_sublevels.convs", features), ("predict_flow._predictors", specialised),
                        ("predict_flow._predictor", shared), ("fuse.convs", fusion)):
        if not found:
            raise CheckpointError(f"no {what}.* weights: not a FILM file in {LAYOUT_NAMES[layout]} names")
    first = features.get((0, 0))
    if first is None or len(shapes[first]) != 4:
        raise CheckpointError(f"missing or malformed extract.extract_sublevels.convs.0.0.{_WRAPPER[layout]}.weight")
    specialized_levels = max(i for i, _ in specialised) + 1

    def predictor(convs: Dict[int, str]) -> Tuple[int, int]:
        if 0 not in convs or len(shapes[convs[0]]) != 4:
            raise CheckpointError(f"a flow predictor without its first convolution ({_some(sorted(convs.values()))})")
        return max(convs) + 1 - 2, int(shapes[convs[0]][0])

    flow_convs, flow_filters = [], []
    for level in range(specialized_levels):
        stored = specialized_levels - 1 - level
        convs, filters = predictor({j: key for (i, j), key in specialised.items() if i == stored})
        flow_convs.append(convs)
        flow_filters.append(filters)
    convs, filters = predictor({j: key for (j,), key in shared.items()})
    flow_convs.append(convs)
    flow_filters.append(filters)
    return dict(pyramid_levels=pyramid_levels, fusion_pyramid_levels=max(i for i, _ in fusion) + 2,
                specialized_levels=specialized_levels, sub_levels=max(i for i, _ in features) + 1,
                filters=int(shapes[first][0]), flow_convs=tuple(flow_convs), flow_filters=tuple(flow_filters))


def our_state_dict(tensors: Mapping[str, torch.Tensor],
                   pyramid_levels: Optional[int] = None) -> Tuple[dict, Dict[str, torch.Tensor], str]:
    """(config, state dict in our names, layout) of FILM weights in any layout, checked strictly.

    ``pyramid_levels``: the image pyramid depth for a file that does not
    record it (foreign layouts; default 7, the released models'); a file of
    ours keeps its own unless one is given.
    """
    layout = detect_layout(tensors)
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    if layout == "ours":
        renamed = dict(tensors)
        if pyramid_levels is not None or convert.PYRAMID_LEVELS_KEY not in renamed:
            renamed[convert.PYRAMID_LEVELS_KEY] = torch.tensor(pyramid_levels or DEFAULT_PYRAMID_LEVELS)
        try:
            config = convert.config_from_state_dict(renamed)
        except (convert.ConversionError, IndexError, TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(f"{first_line(error)}") from None
    else:
        config = config_from_foreign_shapes(shapes, layout, pyramid_levels or DEFAULT_PYRAMID_LEVELS)
        renamed = None
    try:
        with torch.device("meta"):
            template = Interpolator(**config).state_dict()
    except ValueError as error:
        raise CheckpointError(f"the shapes imply an invalid configuration {config}: {error}") from None
    table = {key: file_key(key, layout, config["specialized_levels"], config["fusion_pyramid_levels"])
             for key in template}
    if renamed is None:
        renamed = {key: tensors[name] for key, name in table.items() if name is not None and name in tensors}
        renamed[convert.PYRAMID_LEVELS_KEY] = torch.tensor(config["pyramid_levels"])
    expected = {name for name in table.values() if name is not None}
    missing = sorted(name for key, name in table.items() if name is not None and key not in renamed)
    unexpected = sorted(set(shapes) - expected - {convert.PYRAMID_LEVELS_KEY})
    wrong = [f"{table[key]} is {list(renamed[key].shape)}, expected {list(reference.shape)}"
             for key, reference in template.items()
             if key in renamed and key != convert.PYRAMID_LEVELS_KEY and renamed[key].shape != reference.shape]
    not_float = sorted(table[key] for key in template
                       if key in renamed and key != convert.PYRAMID_LEVELS_KEY and not renamed[key].is_floating_point())
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({_some(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({_some(unexpected)})")
    if wrong:
        problems.append(f"{len(wrong)} of the wrong shape ({_some(wrong, 2)})")
    if not_float:
        problems.append(f"{len(not_float)} not floating point ({_some(not_float)})")
    if problems:
        raise CheckpointError(f"{LAYOUT_NAMES[layout]} names, for a network {_describe(config)}: "
                              + "; ".join(problems))
    return config, renamed, layout


def _describe(config: Mapping) -> str:
    return ("(" + ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in config.items()
                            if k != "pyramid_levels") + ")")


# --------------------------------------------------------------------------- reading files

SAFETENSORS_MAX_HEADER = 100_000_000  # the format's own limit


def file_kind(path: str) -> str:
    """'safetensors', 'torchscript', 'torch' (a torch.save archive or legacy pickle), 'onnx' or 'unknown'."""
    with open(path, "rb") as file:
        head = file.read(16)
    if len(head) >= 9 and head[8:9] == b"{" and 2 <= struct.unpack("<Q", head[:8])[0] <= SAFETENSORS_MAX_HEADER:
        return "safetensors"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return "torch"  # torch.load will say what is wrong with it
        # TorchScript archives hold their code; torch.save archives only data.pkl and tensors.
        return "torchscript" if any("/code/" in name or name.endswith("constants.pkl") for name in names) else "torch"
    if head[:1] == b"\x80":
        return "torch"  # a pickle (protocol 2+): torch.save's legacy format
    if head[:1] == b"\x08" or path.lower().endswith(".onnx"):
        return "onnx"  # ONNX ModelProto starts with its ir_version field
    return "unknown"


def check_safetensors(path: str) -> None:
    """One line about a safetensors file whose header or tensor data is incomplete or malformed."""
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        header_length = struct.unpack("<Q", file.read(8))[0]
        if 8 + header_length > size:
            raise UnreadableWeights(f"a truncated safetensors file: its header says {header_length:,} bytes, "
                                  f"the file has {size - 8:,} after the length")
        try:
            header = json.loads(file.read(header_length))
        except (UnicodeDecodeError, ValueError):
            raise UnreadableWeights("a safetensors file whose header is not valid JSON") from None
    if not isinstance(header, dict):
        raise UnreadableWeights("a safetensors file whose header is not a JSON object")
    ends = [entry.get("data_offsets", [0, 0])[1] for name, entry in header.items()
            if name != "__metadata__" and isinstance(entry, dict)]
    data = size - 8 - header_length
    if ends and max(ends) > data:
        raise UnreadableWeights(f"a truncated safetensors file: its tensors need {max(ends):,} bytes of data, "
                              f"the file has {data:,}")


def read_tensors(path: str) -> Dict[str, torch.Tensor]:
    """Every tensor of a weight file by name, in the file's dtype; CheckpointError otherwise."""
    kind = file_kind(path)
    if kind == "safetensors":
        check_safetensors(path)
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise UnreadableWeights("reading .safetensors needs the safetensors package: "
                                    "pip install safetensors") from None
        try:
            return load_file(path, device="cpu")
        except Exception as error:  # SafetensorError and others: the library says what is wrong
            raise UnreadableWeights(f"not a readable safetensors file ({first_line(error)})") from None
    if kind == "torchscript":
        try:
            return dict(torch.jit.load(path, map_location="cpu").state_dict())
        except Exception as error:
            raise UnreadableWeights(f"a TorchScript archive that does not load ({first_line(error)})") from None
    if kind == "torch":
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise UnreadableWeights(f"not a readable torch.save file ({first_line(error)})") from None
        if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
            state = state["state_dict"]  # training checkpoints keep the weights under this key
        if not isinstance(state, Mapping) or not state or \
                not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
            raise UnreadableWeights("a torch.save file that holds no state dict (a mapping of names to tensors)")
        return dict(state)
    if kind == "onnx":
        raise UnreadableWeights("an ONNX model, which ONNX Runtime or TensorRT runs, not this program: "
                                "see docs/formats.md")
    raise UnreadableWeights("not a weight file: its bytes are none of safetensors, torch.save or TorchScript")


def load_weights(path: str, pyramid_levels: Optional[int] = None
                 ) -> Tuple[dict, Dict[str, torch.Tensor], str, torch.dtype]:
    """(config, state dict in our names, layout, stored dtype) of a weight file; every error is one line."""
    try:
        tensors = read_tensors(path)
        config, state_dict, layout = our_state_dict(tensors, pyramid_levels)
    except CheckpointError as error:
        raise type(error)(error.detail, path) from None
    stored = next((v.dtype for k, v in state_dict.items() if v.is_floating_point()), torch.float32)
    return config, state_dict, layout, stored


def interpolator_from_file(path: str, pyramid_levels: Optional[int] = None) -> Interpolator:
    """Our (float32) network with a weight file's weights, whatever its layout or dtype."""
    config, state_dict, _, _ = load_weights(path, pyramid_levels)
    model = Interpolator(**config)
    model.load_state_dict(state_dict)  # copies into our float32 parameters
    return model.eval()


# --------------------------------------------------------------------------- writing

def save_safetensors(state_dict: Mapping[str, torch.Tensor], path: str) -> None:
    """A state dict as safetensors (no pickle: loading it runs no code)."""
    from safetensors.torch import save_file
    save_file({k: v.detach().contiguous() for k, v in state_dict.items()}, path)
