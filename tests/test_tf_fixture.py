"""The TensorFlow FILM fixture (tests/tf_film.py) against the ORIGINAL code's outputs.

The evidence: the original google-research/frame-interpolation code's
reference vectors (inputs, weights, outputs) for two configurations (see
tests/data/README.md).

Run with `-s` to see the table of measured errors at the end of the module.
"""
import re

import numpy as np
import pytest

from conftest import REFERENCE, REFERENCE_CASES, REFERENCE_CONFIGS, reference_case, reference_config, reference_weights

tf = pytest.importorskip('tensorflow')
import tf_film  # noqa: E402  (after the skip: needs TensorFlow)

# max|tf - ref| <= RTOL * max|ref| per output and per pyramid level. Float32
# reimplementations land near 1e-5 relative (the convolutions' summation order
# differs between builds and CPUs; on the reference machine the fixture is
# bit-exact); a real mistake (wrong flow channel order, resize mode, concat
# order, ...) shows up far above 1e-3.
RTOL = 2e-5

STYLE_CONFIG = dict(pyramid_levels=7, fusion_pyramid_levels=5, specialized_levels=3, sub_levels=4, filters=64,
                    flow_convs=[3, 3, 3, 3], flow_filters=[32, 64, 128, 256])
STYLE_PARAMS = 34_436_667
# The offset the 'alt' model's fusion convs are numbered from (conv2d_14 ...).
ALT_FUSION_OFFSET = 14

_ERRORS = {}  # label -> {output key: relative error}


def _rel_err(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def _inputs(case):
    return {key: tf.constant(case[key]) for key in ('x0', 'x1', 'time')}


def _check_outputs(outputs, expected, keys, label):
    """Every flat output within RTOL of `expected` (a dict with the flat keys)."""
    flat = tf_film.flatten_outputs(outputs)
    assert sorted(flat) == sorted(keys)
    errors = {key: _rel_err(flat[key], expected[key]) for key in keys}
    _ERRORS[label] = errors
    bad = {key: error for key, error in errors.items() if not error <= RTOL}
    assert not bad, f'{label}: relative errors above {RTOL}: {bad}'


@pytest.fixture(scope='module', autouse=True)
def _error_summary():
    yield
    if _ERRORS:
        lines = ['', 'tf_film fixture vs original FILM: max|tf-ref|/max|ref|']
        for label, errors in _ERRORS.items():
            worst = max(errors, key=errors.get)
            lines.append(f'  {label:<42} worst {errors[worst]:.2e} ({worst}); image {errors["image"]:.2e}')
        print('\n'.join(lines))


@pytest.fixture(scope='module')
def reference():
    return {name: dict(reference_config(name), weights=reference_weights(name)) for name in REFERENCE_CONFIGS}


@pytest.fixture(scope='module')
def models(reference):
    """One model per config. 'alt' numbers its fusion convs from an offset, as Keras
    does in a process that made other convs before: set_weights_by_name must map them
    by the rank of their number."""
    built = {}
    for name, offset in (('small', 0), ('alt', ALT_FUSION_OFFSET)):
        model = tf_film.FilmModel(reference[name]['config'], fusion_conv_offset=offset)
        tf_film.set_weights_by_name(model, reference[name]['weights'])
        built[name] = model
    return built


@pytest.mark.parametrize('case_name', REFERENCE_CASES)
@pytest.mark.parametrize('config_name', REFERENCE_CONFIGS)
def test_outputs_match_original(models, reference, config_name, case_name):
    case = reference_case(config_name, case_name)
    outputs = models[config_name](_inputs(case), training=False)
    _check_outputs(outputs, case, tf_film.output_keys(reference[config_name]['config']),
                   f'{config_name}/{case_name}')


def test_variable_names_shapes_order(models, reference):
    small = [(v.name, v.shape.as_list()) for v in models['small'].variables]
    assert small == [(v['name'], v['shape']) for v in reference['small']['variables']]

    alt_vars = models['alt'].variables
    want = reference['alt']['variables']
    assert len(alt_vars) == len(want)
    fusion = [v.name for v in alt_vars if v.name.startswith('fusion/')]
    assert fusion[0] == f'fusion/conv2d_{ALT_FUSION_OFFSET}/kernel:0'
    # Apart from the offset: the same names, order and shapes as the reference.
    canon_got = tf_film._canonical_names([v.name for v in alt_vars])  # pylint: disable=protected-access
    canon_want = tf_film._canonical_names([v['name'] for v in want])  # pylint: disable=protected-access
    assert canon_got == canon_want
    assert [v.shape.as_list() for v in alt_vars] == [v['shape'] for v in want]


def test_set_weights_by_name_maps_fusion_by_number(models, reference):
    model = models['small']
    weights = reference['small']['weights']
    try:
        # Rename the reference fusion convs conv2d, conv2d_1 ... conv2d_12 to
        # conv2d_7 ... conv2d_19: as strings conv2d_10 < conv2d_7, so only a
        # mapping by the number's rank assigns them correctly.
        shifted = {}
        for name, value in weights.items():
            match = re.fullmatch(r'fusion/conv2d(?:_(\d+))?/(.*)', name)
            if match:
                name = f'fusion/conv2d_{int(match.group(1) or 0) + 7}/{match.group(2)}'
            shifted[name] = value
        assert 'fusion/conv2d_19/bias:0' in shifted
        for var in model.variables:
            var.assign(tf.zeros_like(var))
        tf_film.set_weights_by_name(model, shifted)
        for var in model.variables:
            np.testing.assert_array_equal(var.numpy(), weights[var.name], err_msg=var.name)

        # Mismatches raise one clear error and assign nothing.
        bad = dict(weights)
        del bad['fusion/conv2d_3/bias:0']
        bad['feat_net/sub_extractor/cfeat_conv_0/kernel:0'] = np.zeros((3, 3, 3, 9), np.float32)
        bad['unknown/dense/kernel:0'] = np.zeros((2, 2), np.float32)
        before = [v.numpy() for v in model.variables]
        with pytest.raises(ValueError) as err:
            tf_film.set_weights_by_name(model, bad)
        message = str(err.value)
        assert 'fusion/conv2d_3/bias:0' in message
        assert 'cfeat_conv_0/kernel:0' in message and '[3, 3, 3, 9]' in message
        assert 'unknown/dense/kernel:0' in message
        for var, old in zip(model.variables, before):
            np.testing.assert_array_equal(var.numpy(), old)
    finally:
        tf_film.set_weights_by_name(model, weights)


def test_saved_model_roundtrip(tmp_path, models, reference):
    directory = tmp_path / 'film_small'
    # save_film(verify=True) reloads the folder, checks it against the model and returns it.
    loaded = tf_film.save_film(models['small'], directory)
    for name in ('saved_model.pb', 'variables'):
        assert (directory / name).exists(), name
    want = [(v['name'], v['shape']) for v in reference['small']['variables']]
    assert [(v.name, v.shape.as_list()) for v in loaded.variables] == want
    case = reference_case('small', 'random_64x128')
    outputs = loaded(_inputs(case), training=False)
    assert isinstance(outputs['forward_flow_pyramid'], list)  # like the original's
    _check_outputs(outputs, case, tf_film.output_keys(reference['small']['config']),
                   'small/random_64x128 SavedModel')


def test_style_config_builds_released_variables():
    import json
    want = [(v['name'], v['shape']) for v in json.loads((REFERENCE / 'film_style_variables.json').read_text())]
    model = tf_film.FilmModel(STYLE_CONFIG)
    got = [(v.name, v.shape.as_list()) for v in model.variables]
    assert len(got) == 82
    assert got == want
    assert sum(int(np.prod(v.shape)) for v in model.variables) == STYLE_PARAMS
