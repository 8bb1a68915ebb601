"""Conversion of the original TensorFlow FILM variables into this port's state dict.

Everything is keyed by NAME, never by the order in which TensorFlow lists the
variables. The original names (Keras 2 layer scopes) are:

    feat_net/sub_extractor/cfeat_conv_{k}/{kernel,bias}:0
    predict_flow/flow_predictor_{i | shared}/conv_{j}/{kernel,bias}:0
    fusion/conv2d[_{n}]/{kernel,bias}:0

The fusion convolutions were never named by the authors: Keras numbered them
in creation order (each level's three convs finest first, the output conv
last), and the count starts wherever that process's Conv2D counter stood. So
they are ordered by their number relative to the smallest one, never by the
string ("conv2d_10" < "conv2d_2") nor by the absolute number.

TF kernels are [kh, kw, in, out]; PyTorch's are [out, in, kh, kw].
The one setting no shape reveals is ``pyramid_levels``: it is passed in.

This port's own state dicts (``export.py --statedict``) carry it as the
buffer ``pyramid_levels_``; ``interpolator_from_state_dict`` rebuilds the
network from one.
"""
import re
from typing import Dict, Mapping, Optional, Tuple

import numpy as np
import torch

from interpolator import Interpolator

_FEATURE = re.compile(r"^feat_net/sub_extractor/cfeat_conv_(\d+)/(kernel|bias):0$")
_FLOW = re.compile(r"^predict_flow/flow_predictor_(\d+|shared)/conv_(\d+)/(kernel|bias):0$")
_FUSION = re.compile(r"^fusion/conv2d(?:_(\d+))?/(kernel|bias):0$")
_TF_PARAM = {"weight": "kernel", "bias": "bias"}
_TORCH_PARAM = {"kernel": "weight", "bias": "bias"}

PYRAMID_LEVELS_KEY = "pyramid_levels_"


class ConversionError(ValueError):
    """The variables do not form a FILM model this port can build."""


def tf_name_for(torch_key: str, fusion_pyramid_levels: int) -> str:
    """The original TF variable name (fusion numbering starting at 0) of a parameter."""
    parts = torch_key.split(".")
    tf_param = _TF_PARAM[parts[-1]]
    if parts[:3] == ["feature_extractor", "sub_extractor", "convs"]:
        return f"feat_net/sub_extractor/cfeat_conv_{parts[3]}/{tf_param}:0"
    if parts[:2] == ["flow_estimator", "predictors"]:
        return f"predict_flow/flow_predictor_{parts[2]}/conv_{parts[4]}/{tf_param}:0"
    if parts[:2] == ["flow_estimator", "shared"]:
        return f"predict_flow/flow_predictor_shared/conv_{parts[3]}/{tf_param}:0"
    if parts[:2] == ["fusion", "levels"]:
        number = 3 * int(parts[2]) + ("up_conv", "conv1", "conv2").index(parts[3])
    elif parts[:2] == ["fusion", "output_conv"]:
        number = 3 * (fusion_pyramid_levels - 1)
    else:
        raise KeyError(f"no TF counterpart for parameter {torch_key!r}")
    return f"fusion/{_fusion_conv_name(number)}/{tf_param}:0"


def _fusion_conv_name(number: int) -> str:
    return "conv2d" if number == 0 else f"conv2d_{number}"


def normalize_fusion_numbering(variables: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Renames fusion/conv2d_{n} so that the numbering starts at 0 (see module docstring)."""
    numbers = {}
    for name in variables:
        match = _FUSION.match(name)
        if match:
            numbers[name] = int(match.group(1) or 0)
    offset = min(numbers.values(), default=0)
    renamed = {}
    for name, value in variables.items():
        if name in numbers:
            name = f"fusion/{_fusion_conv_name(numbers[name] - offset)}/{_FUSION.match(name).group(2)}:0"
        renamed[name] = value
    return renamed


def config_from_tf_variables(shapes: Mapping[str, Tuple[int, ...]], pyramid_levels: int = 7) -> dict:
    """Infers the Interpolator configuration from (normalised) TF variable names and shapes."""
    unknown = sorted(n for n in shapes if not (_FEATURE.match(n) or _FLOW.match(n) or _FUSION.match(n)))
    if unknown:
        raise ConversionError(f'variables that are not part of FILM: {", ".join(unknown)}')
    first = "feat_net/sub_extractor/cfeat_conv_0/kernel:0"
    if first not in shapes or len(shapes[first]) != 4:
        raise ConversionError(f"missing or malformed variable {first}")
    feature_convs = {int(_FEATURE.match(n).group(1)) for n in shapes if _FEATURE.match(n)}
    predictors: Dict[str, set] = {}
    for name in shapes:
        match = _FLOW.match(name)
        if match:
            predictors.setdefault(match.group(1), set()).add(int(match.group(2)))
    specialized = sorted(int(p) for p in predictors if p != "shared")
    if "shared" not in predictors or specialized != list(range(len(specialized))) or not specialized:
        raise ConversionError(f"expected flow_predictor_0 … flow_predictor_N and flow_predictor_shared, "
                              f"found {sorted(predictors)}")
    flow_convs, flow_filters = [], []
    for predictor in [str(i) for i in specialized] + ["shared"]:
        kernel = f"predict_flow/flow_predictor_{predictor}/conv_0/kernel:0"
        if kernel not in shapes or len(shapes[kernel]) != 4:
            raise ConversionError(f"missing or malformed variable {kernel}")
        flow_convs.append(max(predictors[predictor]) + 1 - 2)
        flow_filters.append(int(shapes[kernel][3]))
    # Each fusion level but the coarsest has exactly one 2×2 (upsampling) conv;
    # counting those, rather than all convs, lets an extra conv be named below.
    up_convs = [n for n in shapes if _FUSION.match(n) and n.endswith("/kernel:0") and tuple(shapes[n][:2]) == (2, 2)]
    if not up_convs:
        raise ConversionError("no fusion/conv2d_* 2x2 kernels: not a FILM fusion decoder")
    return dict(pyramid_levels=pyramid_levels, fusion_pyramid_levels=len(up_convs) + 1,
                specialized_levels=len(specialized), sub_levels=(max(feature_convs) + 2) // 2,
                filters=int(shapes[first][3]), flow_convs=tuple(flow_convs), flow_filters=tuple(flow_filters))


def tf_to_torch(array: np.ndarray) -> torch.Tensor:
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 4:
        array = array.transpose(3, 2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array))


def convert_tf_variables(variables: Mapping[str, np.ndarray], pyramid_levels: int = 7,
                         ) -> Tuple[dict, Dict[str, torch.Tensor]]:
    """(config, state dict) from TF variables keyed by name; like timm's checkpoint_filter_fn.

    Raises ConversionError naming every missing, extra or mis-shaped variable.
    """
    variables = normalize_fusion_numbering(variables)
    config = config_from_tf_variables({n: tuple(np.shape(v)) for n, v in variables.items()}, pyramid_levels)
    try:
        template = Interpolator(**config).state_dict()
    except ValueError as error:
        raise ConversionError(f"inferred configuration {config} is invalid: {error}") from None
    state_dict: Dict[str, torch.Tensor] = {}
    missing, mismatched = [], []
    expected = set()
    for key, reference in template.items():
        if key == PYRAMID_LEVELS_KEY:
            state_dict[key] = torch.tensor(pyramid_levels, dtype=torch.int64)
            continue
        name = tf_name_for(key, config["fusion_pyramid_levels"])
        expected.add(name)
        if name not in variables:
            missing.append(name)
            continue
        tensor = tf_to_torch(variables[name])
        if tensor.shape != reference.shape:
            tf_shape = tuple(reference.shape)
            if len(tf_shape) == 4:
                tf_shape = (tf_shape[2], tf_shape[3], tf_shape[1], tf_shape[0])
            mismatched.append(f"{name} has shape {list(np.shape(variables[name]))}, expected {list(tf_shape)}")
            continue
        state_dict[key] = tensor
    extra = sorted(set(variables) - expected)
    problems = []
    if missing:
        problems.append("missing: " + ", ".join(missing))
    if extra:
        problems.append("unexpected: " + ", ".join(extra))
    if mismatched:
        problems.append("wrong shape: " + "; ".join(mismatched))
    if problems:
        raise ConversionError(f"the variables do not match a FILM model ({config}): " + " | ".join(problems))
    return config, state_dict


def config_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict:
    """Interpolator configuration from the tensor shapes of one of its state dicts."""
    def shape(key: str) -> Tuple[int, ...]:
        if key not in state_dict:
            raise ConversionError(f"not a FILM state dict: {key} is missing")
        return tuple(state_dict[key].shape)

    pyramid_levels: Optional[torch.Tensor] = state_dict.get(PYRAMID_LEVELS_KEY)
    if pyramid_levels is None:
        raise ConversionError(f"not a FILM state dict written by this port: {PYRAMID_LEVELS_KEY} is missing")
    feature_convs = [k for k in state_dict if re.fullmatch(r"feature_extractor\.sub_extractor\.convs\.\d+\.weight", k)]
    predictors = sorted({int(m.group(1)) for k in state_dict
                         for m in [re.fullmatch(r"flow_estimator\.predictors\.(\d+)\.convs\.0\.weight", k)] if m})
    flow_convs, flow_filters = [], []
    for prefix in [f"flow_estimator.predictors.{i}" for i in predictors] + ["flow_estimator.shared"]:
        convs = [k for k in state_dict if re.fullmatch(re.escape(prefix) + r"\.convs\.\d+\.weight", k)]
        flow_convs.append(len(convs) - 2)
        flow_filters.append(shape(prefix + ".convs.0.weight")[0])
    fusion_levels = [k for k in state_dict if re.fullmatch(r"fusion\.levels\.\d+\.up_conv\.weight", k)]
    return dict(pyramid_levels=int(pyramid_levels), fusion_pyramid_levels=len(fusion_levels) + 1,
                specialized_levels=len(predictors), sub_levels=len(feature_convs) // 2,
                filters=shape("feature_extractor.sub_extractor.convs.0.weight")[0],
                flow_convs=tuple(flow_convs), flow_filters=tuple(flow_filters))


def interpolator_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> Interpolator:
    """The network whose configuration the state dict's shapes imply, with the state dict loaded."""
    model = Interpolator(**config_from_state_dict(state_dict))
    model.load_state_dict(state_dict)
    return model
