"""The PyTorch network against the ORIGINAL TensorFlow implementation's outputs.

The reference data (tests/data, a copy of ../shared/reference; see conftest.py)
holds inputs, weights keyed by TF variable name, and what the original computed
with them (NHWC). Tolerance: max|pt - tf| <= 2e-5 * max|tf| for every output,
flow level included. Float32 reimplementations land near 1e-5 of the output's
largest magnitude (different summation order in the convolutions); a real
mistake (a wrong padding side, flow channel order, resize mode) shows up far
above 1e-3.
"""
import io

import numpy as np
import pytest
import torch

import convert
from conftest import REFERENCE_CASES, REFERENCE_CONFIGS, reference_case, reference_config, reference_weights
from interpolator import Interpolator

RELATIVE_TOLERANCE = 2e-5
# The warped input frames (aux outputs) get a looser bound: the flows' own
# rounding (~6e-6 relative) moves sample positions, which the sharp edges of
# the photos turn into larger intensity errors. Measured 1.5e-5 worst with
# the CPU warp (pixel-unit taps); grid_sample's normalised coordinates (the
# GPU path) add about as much again (3.0e-5 measured with it).
WARPED_IMAGE_TOLERANCE = 5e-5


def nchw(array):
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()


def build_reference_model(name):
    config, state_dict = convert.convert_tf_variables(reference_weights(name),
                                                      reference_config(name)["config"]["pyramid_levels"])
    model = Interpolator(**config)
    model.load_state_dict(state_dict)
    return model.eval()


def scripted_roundtrip(model):
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)


def relative_errors(outputs, case):
    """{output name: max|pt - tf| / max|tf|} over every output the original returned."""
    errors = {}
    for key, expected in case.items():
        if key in ("x0", "x1", "time"):
            continue
        actual = outputs[key].permute(0, 2, 3, 1).numpy()
        assert actual.shape == expected.shape, key
        errors[key] = float(np.abs(actual - expected).max() / np.abs(expected).max())
    return errors


@pytest.fixture(scope="module", params=REFERENCE_CONFIGS)
def reference_model(request):
    return request.param, build_reference_model(request.param)


@pytest.mark.parametrize("scripted", [False, True], ids=["eager", "torchscript"])
@pytest.mark.parametrize("case_name", REFERENCE_CASES)
def test_matches_original_tensorflow(reference_model, case_name, scripted):
    config_name, model = reference_model
    case = reference_case(config_name, case_name)
    if scripted:
        model = scripted_roundtrip(model)
    with torch.no_grad():
        outputs = model.debug_forward(nchw(case["x0"]), nchw(case["x1"]), torch.from_numpy(case["time"]))
        image = model(nchw(case["x0"]), nchw(case["x1"]), torch.from_numpy(case["time"]))
    errors = relative_errors(outputs, case)
    # Every flow level is compared, not only the image: 2 × (L residual + F flow) levels.
    levels = reference_config(config_name)["config"]
    assert len(errors) == 3 + 2 * (levels["pyramid_levels"] + levels["fusion_pyramid_levels"])
    warped = {key: errors.pop(key) for key in ("x0_warped", "x1_warped")}
    worst = max(errors, key=errors.get)
    print(f'{config_name}/{case_name} {"scripted" if scripted else "eager"}: image {errors["image"]:.2e}, '
          f'worst flow level {worst} {errors[worst]:.2e}, warped frames {max(warped.values()):.2e}')
    assert errors[worst] <= RELATIVE_TOLERANCE, (worst, errors[worst])
    assert max(warped.values()) <= WARPED_IMAGE_TOLERANCE, warped
    # forward() is the same computation as debug_forward()'s image.
    torch.testing.assert_close(image, outputs["image"], rtol=0, atol=0)
