"""The TensorFlow FILM fixture (benchmarks/tf_film.py) against the ORIGINAL code's outputs.

Two kinds of evidence, both from the original google-research/frame-interpolation
code (see tests/data/README.md):

* its reference vectors (inputs, weights, outputs) for two configurations;
* a SavedModel it wrote: the fixture's own SavedModel must have exactly its
  structure (outputs, call signature, serving signature, variables), and the
  fixture with that SavedModel's weights must compute what it computes.

Run with `-s` to see the table of measured errors at the end of the module.
"""
import os
import re

import numpy as np
import pytest

from conftest import (REFERENCE, REFERENCE_CASES, REFERENCE_CONFIGS, photo_pair, reference_case,
                      reference_config, reference_weights)

tf = pytest.importorskip("tensorflow")
import tf_savedmodel  # noqa: E402  (after the skip: needs TensorFlow)
from benchmarks import tf_film, tf_film_weights  # noqa: E402

# max|tf - ref| <= RTOL * max|ref| per output and per pyramid level. Float32
# reimplementations land near 1e-5 relative (the convolutions' summation order
# differs between builds and CPUs; on the reference machine the fixture is
# bit-exact); a real mistake (wrong flow channel order, resize mode, concat
# order, ...) shows up far above 1e-3.
RTOL = 2e-5

STYLE_CONFIG = dict(pyramid_levels=7, fusion_pyramid_levels=5, specialized_levels=3, sub_levels=4, filters=64,
                    flow_convs=[3, 3, 3, 3], flow_filters=[32, 64, 128, 256])
STYLE_PARAMS = 34_436_667
# What the original SavedModel was built with (film_net-Style.gin with filters = 6,
# flow_filters = [8, 16, 16, 32]); test_savedmodel_structure_matches_original checks
# that the fixture built from it has exactly the SavedModel's variables.
ORIGINAL_SAVEDMODEL_CONFIG = dict(STYLE_CONFIG, filters=6, flow_filters=[8, 16, 16, 32])
# The offset the 'alt' model's fusion convs are numbered from (conv2d_14 ...).
ALT_FUSION_OFFSET = 14

_ERRORS = {}  # label -> {output key: relative error}


def _rel_err(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def _inputs(case):
    return {key: tf.constant(case[key]) for key in ("x0", "x1", "time")}


def _check_outputs(outputs, expected, keys, label):
    """Every flat output within RTOL of `expected` (a dict with the flat keys)."""
    flat = tf_film.flatten_outputs(outputs)
    assert sorted(flat) == sorted(keys)
    errors = {key: _rel_err(flat[key], expected[key]) for key in keys}
    _ERRORS[label] = errors
    bad = {key: error for key, error in errors.items() if not error <= RTOL}
    assert not bad, f"{label}: relative errors above {RTOL}: {bad}"


@pytest.fixture(scope="module", autouse=True)
def _error_summary():
    yield
    if _ERRORS:
        lines = ["", "tf_film fixture vs original FILM: max|tf-ref|/max|ref|"]
        for label, errors in _ERRORS.items():
            worst = max(errors, key=errors.get)
            lines.append(f'  {label:<42} worst {errors[worst]:.2e} ({worst}); image {errors["image"]:.2e}')
        print("\n".join(lines))


@pytest.fixture(scope="module")
def reference():
    return {name: dict(reference_config(name), weights=reference_weights(name)) for name in REFERENCE_CONFIGS}


@pytest.fixture(scope="module")
def models(reference):
    """One model per config. 'alt' numbers its fusion convs from an offset, as Keras
    does in a process that made other convs before: set_weights_by_name must map them
    by the rank of their number."""
    built = {}
    for name, offset in (("small", 0), ("alt", ALT_FUSION_OFFSET)):
        model = tf_film.FilmModel(reference[name]["config"], fusion_conv_offset=offset)
        tf_film_weights.set_weights_by_name(model, reference[name]["weights"])
        built[name] = model
    return built


@pytest.mark.parametrize("case_name", REFERENCE_CASES)
@pytest.mark.parametrize("config_name", REFERENCE_CONFIGS)
def test_outputs_match_original(models, reference, config_name, case_name):
    case = reference_case(config_name, case_name)
    outputs = models[config_name](_inputs(case), training=False)
    _check_outputs(outputs, case, tf_film.output_keys(reference[config_name]["config"]),
                   f"{config_name}/{case_name}")


def test_variable_names_shapes_order(models, reference):
    small = [(v.name, v.shape.as_list()) for v in models["small"].variables]
    assert small == [(v["name"], v["shape"]) for v in reference["small"]["variables"]]

    alt_vars = models["alt"].variables
    want = reference["alt"]["variables"]
    assert len(alt_vars) == len(want)
    fusion = [v.name for v in alt_vars if v.name.startswith("fusion/")]
    assert fusion[0] == f"fusion/conv2d_{ALT_FUSION_OFFSET}/kernel:0"
    # Apart from the offset: the same names, order and shapes as the reference.
    canon_got = tf_film_weights._canonical_names([v.name for v in alt_vars])  # pylint: disable=protected-access
    canon_want = tf_film_weights._canonical_names([v["name"] for v in want])  # pylint: disable=protected-access
    assert canon_got == canon_want
    assert [v.shape.as_list() for v in alt_vars] == [v["shape"] for v in want]


def test_set_weights_by_name_maps_fusion_by_number(models, reference):
    model = models["small"]
    weights = reference["small"]["weights"]
    try:
        # Rename the reference fusion convs conv2d, conv2d_1 ... conv2d_12 to
        # conv2d_7 ... conv2d_19: as strings conv2d_10 < conv2d_7, so only a
        # mapping by the number's rank assigns them correctly.
        shifted = {}
        for name, value in weights.items():
            match = re.fullmatch(r"fusion/conv2d(?:_(\d+))?/(.*)", name)
            if match:
                name = f"fusion/conv2d_{int(match.group(1) or 0) + 7}/{match.group(2)}"
            shifted[name] = value
        assert "fusion/conv2d_19/bias:0" in shifted
        for var in model.variables:
            var.assign(tf.zeros_like(var))
        tf_film_weights.set_weights_by_name(model, shifted)
        for var in model.variables:
            np.testing.assert_array_equal(var.numpy(), weights[var.name], err_msg=var.name)

        # Mismatches raise one clear error and assign nothing.
        bad = dict(weights)
        del bad["fusion/conv2d_3/bias:0"]
        bad["feat_net/sub_extractor/cfeat_conv_0/kernel:0"] = np.zeros((3, 3, 3, 9), np.float32)
        bad["unknown/dense/kernel:0"] = np.zeros((2, 2), np.float32)
        before = [v.numpy() for v in model.variables]
        with pytest.raises(ValueError) as err:
            tf_film_weights.set_weights_by_name(model, bad)
        message = str(err.value)
        assert "fusion/conv2d_3/bias:0" in message
        assert "cfeat_conv_0/kernel:0" in message and "[3, 3, 3, 9]" in message
        assert "unknown/dense/kernel:0" in message
        for var, old in zip(model.variables, before):
            np.testing.assert_array_equal(var.numpy(), old)
    finally:
        tf_film_weights.set_weights_by_name(model, weights)


def test_style_config_builds_released_variables():
    import json
    want = [(v["name"], v["shape"]) for v in json.loads((REFERENCE / "film_style_variables.json").read_text())]
    model = tf_film.FilmModel(STYLE_CONFIG)
    got = [(v.name, v.shape.as_list()) for v in model.variables]
    assert len(got) == 82
    assert got == want
    assert sum(int(np.prod(v.shape)) for v in model.variables) == STYLE_PARAMS


# --------------------------------------------------------------------------------------------
# The fixture's SavedModel against the SavedModel the original code wrote.
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def original(original_savedmodel):
    return tf.saved_model.load(str(original_savedmodel))


@pytest.fixture(scope="module")
def fixture_savedmodel(original, tmp_path_factory):
    """(fixture model, its SavedModel folder, that folder reloaded), with the original
    SavedModel's weights."""
    model = tf_film.FilmModel(ORIGINAL_SAVEDMODEL_CONFIG)
    tf_film_weights.set_weights_by_name(model, {v.name: v.numpy() for v in original.variables})
    directory = tmp_path_factory.mktemp("fixture") / "saved_model"
    loaded = tf_savedmodel.save_film(model, directory)
    return model, directory, loaded


@pytest.fixture(scope="module")
def odd_frames():
    """A batch of two real frame pairs of 90x135 (not a multiple of 64: the pyramid
    levels are 90x135, 45x67, 22x33, 11x16, 5x8, 2x4, 1x2, where ports go wrong),
    cut from the two photos at different places."""
    x0, x1 = photo_pair()
    cuts = [(slice(0, 90), slice(0, 135)), (slice(97, 187), slice(111, 246))]
    return {"x0": tf.constant(np.concatenate([x0[:, r, c] for r, c in cuts])),
            "x1": tf.constant(np.concatenate([x1[:, r, c] for r, c in cuts])),
            "time": tf.constant([[0.5], [0.5]], tf.float32)}


def _describe(value):
    """A comparable description: tensor or list, with the shapes and dtypes (of each level)."""
    if isinstance(value, list):
        return ("list", [(tuple(v.shape), v.dtype.name) for v in value])
    return ("tensor", tuple(value.shape), value.dtype.name)


def _plain(structure):
    """A signature's nested structure with TensorSpecs and dicts made comparable."""
    if isinstance(structure, dict):
        return tuple(sorted((key, _plain(value)) for key, value in structure.items()))
    if isinstance(structure, (list, tuple)):
        return tuple(_plain(value) for value in structure)
    if isinstance(structure, tf.TensorSpec):
        return ("TensorSpec", tuple(structure.shape.as_list()), structure.dtype.name, structure.name)
    return structure


def test_savedmodel_structure_matches_original(original, fixture_savedmodel, odd_frames):
    model, directory, loaded = fixture_savedmodel
    # Variables: names, shapes, dtypes and order of `variables` (and trainable_variables).
    def variables(saved, attribute):
        return [(v.name, tuple(v.shape), v.dtype.name) for v in getattr(saved, attribute)]
    for attribute in ("variables", "trainable_variables"):
        assert variables(loaded, attribute) == variables(original, attribute)

    # __call__: the same traced functions (inputs dict, training True or False, mask None),
    # with the same output structure: tensors and lists of the same lengths, same specs.
    def call_functions(saved):
        return sorted((_plain(f.structured_input_signature), _plain(f.structured_outputs))
                      for f in saved.__call__.concrete_functions)
    assert call_functions(loaded) == call_functions(original)
    assert len(call_functions(original)) == 2

    # Outputs on real frames: same keys, tensor vs list, list lengths, shapes and dtypes;
    # `training` defaults to False in both.
    want = {key: _describe(value) for key, value in original(odd_frames, training=False).items()}
    assert len(want) == 7 and want["image"] == ("tensor", (2, 90, 135, 3), "float32")
    assert len(want["forward_residual_flow_pyramid"][1]) == 7 and len(want["forward_flow_pyramid"][1]) == 5
    for outputs in (loaded(odd_frames, training=False), loaded(odd_frames), model(odd_frames, training=False),
                    original(odd_frames)):
        assert isinstance(outputs, dict)
        assert {key: _describe(value) for key, value in outputs.items()} == want

    # serving_default: the same inputs and the same 27 output tensors. Keras named the
    # original's outputs after internal layers ('predict_flow_7', 'tf.__operators__.add_5',
    # ...); the fixture's carry the flat keys, and each must be the output of that name.
    serving, original_serving = loaded.signatures["serving_default"], original.signatures["serving_default"]
    assert list(loaded.signatures) == list(original.signatures) == ["serving_default"]
    assert _plain(serving.structured_input_signature) == _plain(original_serving.structured_input_signature)
    def output_specs(signature):
        return sorted((tuple(s.shape.as_list()), s.dtype.name) for s in signature.structured_outputs.values())
    assert output_specs(serving) == output_specs(original_serving)
    expected = tf_film.flatten_outputs(original(odd_frames, training=False))
    served = serving(**odd_frames)
    assert sorted(served) == sorted(expected)
    errors = {key: _rel_err(served[key], expected[key]) for key in expected}
    assert max(errors.values()) <= RTOL, errors

    # A SavedModel folder without Keras' keras_metadata.pb (the fixture has no Keras).
    assert sorted(os.listdir(directory)) == ["assets", "fingerprint.pb", "saved_model.pb", "variables"]


@pytest.mark.parametrize("which", ["model", "savedmodel"])
def test_original_savedmodel_weights_give_original_outputs(original, fixture_savedmodel, odd_frames, which):
    """The fixture, built with the original's config and the original SavedModel's own weights,
    computes what that SavedModel computes: every output, every pyramid level."""
    model, _, loaded = fixture_savedmodel
    expected = tf_film.flatten_outputs(original(odd_frames, training=False))
    outputs = (model if which == "model" else loaded)(odd_frames, training=False)
    _check_outputs(outputs, {k: np.asarray(v) for k, v in expected.items()},
                   tf_film.output_keys(ORIGINAL_SAVEDMODEL_CONFIG), f"original SavedModel 2x90x135 ({which})")
