"""export.py end to end on real SavedModels written by a TF FILM (tests/tf_film.py).

The SavedModel is built with tf-keras (Keras 2) and ``model.save(dir)``, like
Google's released files, from the reference weights; its own outputs are
first checked against the original implementation's reference vectors, so the
chain original → SavedModel → export.py → PyTorch file is tested as a whole.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import export
from conftest import ROOT, reference_case, reference_config, reference_weights
from test_reference import RELATIVE_TOLERANCE, nchw, relative_errors

tf = pytest.importorskip('tensorflow')
tf_film = pytest.importorskip('tf_film')

# fp16 storage rounds every weight by up to 2^-11 relative; measured on these
# weights: ~1e-3 of max|tf| on image and flows. 1e-2 leaves room and still
# catches a wrong tensor (errors of order 1).
FP16_TOLERANCE = 1e-2


@pytest.fixture(scope='module')
def saved_model(tmp_path_factory):
    directory = tmp_path_factory.mktemp('film') / 'saved_model'
    config = reference_config('small')['config']
    model = tf_film.make_film_savedmodel(directory, config, reference_weights('small'))
    # The fixture must itself be the original network: check it against the reference.
    case = reference_case('small', 'photos_192x256')
    outputs = model({'x0': case['x0'], 'x1': case['x1'], 'time': case['time']}, training=False)
    image = np.asarray(outputs['image'])
    assert np.abs(image - case['image']).max() <= RELATIVE_TOLERANCE * np.abs(case['image']).max()
    return directory


def run_export(capsys, *args):
    """export.py in this process (TensorFlow is imported once for all tests)."""
    capsys.readouterr()
    returncode = export.main([str(a) for a in args])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, returncode, captured.out, captured.err)


def load_exported(path, statedict):
    if statedict:
        import convert
        state_dict = torch.load(path, map_location='cpu', weights_only=True)
        return convert.interpolator_from_state_dict({k: v.float() if v.is_floating_point() else v
                                                     for k, v in state_dict.items()}).eval(), state_dict
    model = torch.jit.load(path, map_location='cpu').eval()
    dtype = next(model.parameters()).dtype
    return model.to(dtype=torch.float32), {'dtype': torch.zeros((), dtype=dtype)}


@pytest.mark.parametrize('statedict', [False, True], ids=['torchscript', 'statedict'])
@pytest.mark.parametrize('fp32', [True, False], ids=['fp32', 'fp16'])
def test_export_matches_reference(saved_model, tmp_path, capsys, statedict, fp32):
    save_path = tmp_path / 'sub' / 'film.pt'
    flags = (['--statedict'] if statedict else []) + (['--fp32'] if fp32 else [])
    result = run_export(capsys, saved_model, save_path, *flags)
    assert result.returncode == 0, result.stderr
    assert 'Self-test' in result.stdout and 'image' in result.stdout
    assert sorted(os.listdir(save_path.parent)) == ['film.pt']  # no temp file left behind
    model, stored = load_exported(save_path, statedict)
    stored_dtype = next(v for v in stored.values() if v.is_floating_point()).dtype
    assert stored_dtype == (torch.float32 if fp32 else torch.float16)
    tolerance = RELATIVE_TOLERANCE if fp32 else FP16_TOLERANCE
    for case_name in ('photos_192x256', 'random_64x128'):
        case = reference_case('small', case_name)
        with torch.no_grad():
            outputs = model.debug_forward(nchw(case['x0']), nchw(case['x1']), torch.from_numpy(case['time']))
        errors = relative_errors(outputs, case)
        for key in ('x0_warped', 'x1_warped'):
            errors.pop(key)
        worst = max(errors, key=errors.get)
        assert errors[worst] <= tolerance, (case_name, worst, errors[worst])


def test_exported_file_is_usable_as_documented(saved_model, tmp_path, capsys):
    """The README's snippet: torch.jit.load(...).eval().to(device, dtype), then model(x0, x1, dt)."""
    save_path = tmp_path / 'film.pt'
    assert run_export(capsys, saved_model, save_path, '--skiptest').returncode == 0
    model = torch.jit.load(str(save_path), map_location='cpu').eval().to(device='cpu', dtype=torch.float32)
    x0 = torch.rand(2, 3, 90, 135)
    x1 = torch.roll(x0, 3, dims=3)
    with torch.no_grad():
        out = model(x0, x1, x0.new_tensor([[0.5], [0.3]]))
    assert out.shape == (2, 3, 90, 135) and torch.isfinite(out).all()


def write_variables_savedmodel(directory, variables):
    """A SavedModel holding just these named variables (for the refusal tests)."""
    module = tf.Module()
    module.vars = [tf.Variable(value, name=name.rsplit(':', 1)[0]) for name, value in variables.items()]
    tf.saved_model.save(module, str(directory))
    return directory


def assert_refused(result, save_path, *fragments):
    assert result.returncode != 0
    assert not os.path.exists(save_path)
    assert not [f for f in os.listdir(os.path.dirname(save_path)) if f.endswith('.tmp')]
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith('export.py: error:'), result.stderr
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize('damage, expected', [
    ('missing', 'missing: predict_flow/flow_predictor_2/conv_1/kernel:0'),
    ('shape', 'fusion/conv2d_7/kernel:0 has shape [3, 3, 155, 32], expected [3, 3, 154, 32]'),
    ('extra', 'unexpected: fusion/conv2d_13/bias:0, fusion/conv2d_13/kernel:0'),
])
def test_bad_variables_are_refused(tmp_path, capsys, damage, expected):
    variables = reference_weights('small')
    if damage == 'missing':
        del variables['predict_flow/flow_predictor_2/conv_1/kernel:0']
    elif damage == 'shape':
        assert variables['fusion/conv2d_7/kernel:0'].shape == (3, 3, 154, 32)
        variables['fusion/conv2d_7/kernel:0'] = np.zeros((3, 3, 155, 32), np.float32)
    else:
        variables['fusion/conv2d_13/kernel:0'] = np.zeros((1, 1, 3, 3), np.float32)
        variables['fusion/conv2d_13/bias:0'] = np.zeros((3,), np.float32)
    model_path = write_variables_savedmodel(tmp_path / 'bad', variables)
    save_path = tmp_path / 'film.pt'
    assert_refused(run_export(capsys, model_path, save_path), save_path, expected)


def test_not_a_savedmodel_is_refused_by_the_cli(tmp_path):
    """Through the command line: one line on stderr, exit code 1."""
    (tmp_path / 'empty').mkdir()
    save_path = tmp_path / 'film.pt'
    for model_path, expected in ((tmp_path / 'empty', 'not a TF SavedModel'), (tmp_path / 'nowhere', 'not a folder')):
        result = subprocess.run([sys.executable, str(ROOT / 'export.py'), str(model_path), str(save_path)],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 1
        assert len(result.stderr.strip().splitlines()) == 1
        assert_refused(result, save_path, expected)


def test_failed_self_test_writes_nothing(saved_model, tmp_path, capsys):
    """A tolerance no float32 computation can meet makes the self-test fail: nothing is written."""
    save_path = tmp_path / 'film.pt'
    result = run_export(capsys, saved_model, save_path, '--fp32', '--tolerance', '1e-12')
    assert_refused(result, save_path, 'self-test failed')
