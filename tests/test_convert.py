"""Name-based conversion of TF variables (convert.py), with the reference weights as input."""
import random

import numpy as np
import pytest
import torch

import convert
from conftest import reference_config, reference_weights
from interpolator import STYLE_CONFIG, Interpolator


def test_config_inferred_from_shapes():
    for name in ("small", "alt"):
        expected = reference_config(name)["config"]
        config, _ = convert.convert_tf_variables(reference_weights(name), expected["pyramid_levels"])
        assert config == {**expected, "flow_convs": tuple(expected["flow_convs"]),
                          "flow_filters": tuple(expected["flow_filters"])}


def test_style_variable_list_maps_one_to_one():
    """Our Style network has exactly the 82 variables of Google's SavedModels, shapes included."""
    import json
    from conftest import REFERENCE
    variables = json.loads((REFERENCE / "film_style_variables.json").read_text())
    shapes = {v["name"]: tuple(v["shape"]) for v in variables}
    assert convert.config_from_tf_variables(shapes) == STYLE_CONFIG
    model = Interpolator(**STYLE_CONFIG)
    names = {convert.tf_name_for(key, 5): tuple(p.shape) for key, p in model.named_parameters()}
    assert len(names) == 82 == len(shapes)
    for name, (kh_or_n, *rest) in ((n, s) for n, s in shapes.items()):
        torch_shape = names[name]
        expected = (shapes[name][3], shapes[name][2], shapes[name][0], shapes[name][1]) if len(shapes[name]) == 4 \
            else shapes[name]
        assert torch_shape == expected, name
    assert sum(p.numel() for p in model.parameters()) == 34_436_667


def test_kernel_layout_and_values_land_on_the_right_parameter():
    weights = reference_weights("small")
    _, state_dict = convert.convert_tf_variables(weights)
    kernel = weights["fusion/conv2d_4/kernel:0"]  # level 1, first 3x3 conv: [kh, kw, in, out]
    torch_kernel = state_dict["fusion.levels.1.conv1.weight"]  # [out, in, kh, kw]
    assert torch_kernel[5, 7, 0, 2] == kernel[0, 2, 7, 5]
    np.testing.assert_array_equal(state_dict["fusion.output_conv.bias"].numpy(), weights["fusion/conv2d_12/bias:0"])
    np.testing.assert_array_equal(state_dict["flow_estimator.shared.convs.4.bias"].numpy(),
                                  weights["predict_flow/flow_predictor_shared/conv_4/bias:0"])


def renumber_fusion(weights, offset):
    renamed = {}
    for name, value in weights.items():
        if name.startswith("fusion/conv2d"):
            conv = name.split("/")[1]
            number = int(conv.split("_")[1]) if "_" in conv else 0
            name = name.replace(conv, f"conv2d_{number + offset}")
        renamed[name] = value
    return renamed


@pytest.mark.parametrize("offset", [1, 7, 95])
def test_fusion_numbering_offset_and_order_do_not_matter(offset):
    """Keras may number the fusion convs from any offset, and 'conv2d_10' < 'conv2d_2' as strings."""
    weights = reference_weights("small")
    _, expected = convert.convert_tf_variables(weights)
    shuffled = list(renumber_fusion(weights, offset).items())
    random.Random(offset).shuffle(shuffled)
    _, state_dict = convert.convert_tf_variables(dict(shuffled))
    assert state_dict.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(state_dict[key], expected[key], rtol=0, atol=0)


def test_missing_extra_and_misshaped_variables_are_named():
    weights = reference_weights("small")
    broken = dict(weights)
    del broken["predict_flow/flow_predictor_1/conv_2/bias:0"]
    broken["fusion/conv2d_5/kernel:0"] = np.zeros((3, 3, 16, 17), np.float32)
    broken["predict_flow/extra_layer/kernel:0"] = np.zeros((1,), np.float32)
    with pytest.raises(convert.ConversionError) as error:
        convert.convert_tf_variables(broken)
    assert "predict_flow/extra_layer/kernel:0" in str(error.value)
    del broken["predict_flow/extra_layer/kernel:0"]
    with pytest.raises(convert.ConversionError) as error:
        convert.convert_tf_variables(broken)
    message = str(error.value)
    assert "missing: predict_flow/flow_predictor_1/conv_2/bias:0" in message
    assert "fusion/conv2d_5/kernel:0 has shape [3, 3, 16, 17], expected [3, 3, 16, 16]" in message


def test_state_dict_rebuilds_its_network():
    config = dict(pyramid_levels=5, fusion_pyramid_levels=4, specialized_levels=2, sub_levels=3, filters=6,
                  flow_convs=(2, 2, 2), flow_filters=(8, 12, 16))
    model = Interpolator(**config)
    assert convert.config_from_state_dict(model.state_dict()) == config
    rebuilt = convert.interpolator_from_state_dict(model.state_dict())
    for (key, a), b in zip(model.state_dict().items(), rebuilt.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)
    with pytest.raises(convert.ConversionError, match="pyramid_levels_"):
        convert.config_from_state_dict({k: v for k, v in model.state_dict().items() if k != "pyramid_levels_"})
