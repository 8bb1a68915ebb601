"""export.py end to end, first of all on the SavedModel that the ORIGINAL FILM code wrote.

``original_savedmodel`` (tests/data, see conftest) is the closest thing here to
Google's released folders: same files, variable names, serving signature and
output structure (the four flow pyramids come back as Python lists). Every
test that can use it does. The TF fixture (benchmarks/tf_film.py, checked against
that SavedModel in test_tf_fixture.py) covers what it cannot give: another
configuration, and broken models.
"""
import os
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import convert
import export
from conftest import ROOT, reference_case, reference_config, reference_weights
from test_reference import RELATIVE_TOLERANCE, nchw, relative_errors

tf = pytest.importorskip("tensorflow")
tf_savedmodel = pytest.importorskip("tf_savedmodel")

# fp16 storage rounds every weight by up to 2^-11 relative; measured on these
# weights: ~1e-3 (up to 5e-3 on the finest residual flow) of max|tf|. 1e-2
# leaves room and still catches a wrong tensor (errors of order 1).
FP16_TOLERANCE = 1e-2
PYRAMIDS = ("forward_residual_flow_pyramid", "backward_residual_flow_pyramid", "forward_flow_pyramid",
            "backward_flow_pyramid")


def run_export(capsys, *args):
    """export.py in this process (TensorFlow is imported once for all tests)."""
    capsys.readouterr()
    returncode = export.main([str(a) for a in args])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, returncode, captured.out, captured.err)


def load_exported(path, statedict):
    """(float32 model, dtype stored in the file)."""
    if statedict:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        stored = next(v for v in state_dict.values() if v.is_floating_point()).dtype
        model = convert.interpolator_from_state_dict({k: v.float() if v.is_floating_point() else v
                                                      for k, v in state_dict.items()})
        return model.eval(), stored
    model = torch.jit.load(path, map_location="cpu").eval()
    stored = next(model.parameters()).dtype
    return model.to(dtype=torch.float32), stored


def tensorflow_outputs(saved_model, x0, x1):
    """The SavedModel's own outputs (lists flattened to name/level), NHWC arrays."""
    loaded = tf.saved_model.load(str(saved_model))
    outputs = loaded({"x0": tf.constant(x0), "x1": tf.constant(x1), "time": tf.constant([[0.5]] * len(x0))},
                     training=False)
    return export.flatten_outputs(outputs)


def frames_not_a_multiple_of_64():
    """A 90x150 crop of the photos (averaged 4x4), and the same crop of the second photo."""
    from conftest import photo_pair
    x0, x1 = photo_pair()
    return x0[:, 20:110, 30:180], x1[:, 20:110, 30:180]


@pytest.mark.parametrize("statedict", [False, True], ids=["torchscript", "statedict"])
@pytest.mark.parametrize("fp32", [True, False], ids=["fp32", "fp16"])
def test_export_of_the_originals_savedmodel(original_savedmodel, tmp_path, capsys, statedict, fp32):
    save_path = tmp_path / "sub" / "film.pt"
    flags = (["--statedict"] if statedict else []) + (["--fp32"] if fp32 else [])
    result = run_export(capsys, original_savedmodel, save_path, *flags)
    assert result.returncode == 0, result.stderr
    # The self-test ran on the original's list outputs: one line per output, every level.
    lines = result.stdout.splitlines()
    assert "Self-test on 480x270 frames" in result.stdout and "passed" in result.stdout
    for name, levels in [("image", 1)] + [(name, 7 if "residual" in name else 5) for name in PYRAMIDS]:
        row = next(line for line in lines if line.split()[:1] == [name])
        assert len(row.split()) == 1 + levels, row
    assert ("float16 weights" in result.stdout) == (not fp32)
    # The closing line sums up every check that ran, the fp16 weights' too.
    passed = next(line for line in lines if line.strip().startswith("passed:"))
    assert "fp32 worst" in passed and ("float16 weights worst" in passed) == (not fp32)
    assert result.stderr == ""  # TensorFlow's native log lines are hidden
    assert os.listdir(save_path.parent) == ["film.pt"]  # no temporary file left behind
    mode = stat.S_IMODE(os.stat(save_path).st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # a normal new file, not mkstemp's 0600
    model, stored = load_exported(save_path, statedict)
    assert stored == (torch.float32 if fp32 else torch.float16)
    # The exported network against the original SavedModel itself, at a size
    # that is not a multiple of 64, batch of two.
    x0, x1 = frames_not_a_multiple_of_64()
    x0, x1 = np.concatenate([x0, x1]), np.concatenate([x1, x0])
    expected = tensorflow_outputs(original_savedmodel, x0, x1)
    with torch.no_grad():
        actual = model.debug_forward(nchw(x0), nchw(x1), torch.full((2, 1), 0.5))
    errors = relative_errors(actual, expected)
    tolerance = RELATIVE_TOLERANCE if fp32 else FP16_TOLERANCE
    worst = max((key for key in errors if "warped" not in key), key=errors.get)
    assert errors[worst] <= tolerance, (worst, errors[worst])


def test_the_readmes_export_command_as_a_program(original_savedmodel, tmp_path):
    """`python export.py SAVEDMODEL x.pt`, default flags, as the README has it: its own lines only."""
    result = subprocess.run([sys.executable, str(ROOT / "export.py"), str(original_savedmodel), "x.pt"],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines()[0].startswith("Read 82 variables (347,845 parameters)")
    assert result.stdout.splitlines()[-1].startswith("Wrote TorchScript (float16) to x.pt")
    assert os.listdir(tmp_path) == ["x.pt"]


def test_verbose_shows_tensorflows_lines(original_savedmodel, tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "export.py"), str(original_savedmodel), "x.pt",
                             "--skiptest", "--verbose"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr != ""


def test_exported_file_is_usable_as_documented(original_savedmodel, tmp_path, capsys):
    """The README's snippet: torch.jit.load(...).eval().to(device, dtype), then model(x0, x1, dt)."""
    save_path = tmp_path / "film.pt"
    assert run_export(capsys, original_savedmodel, save_path, "--skiptest").returncode == 0
    model = torch.jit.load(str(save_path), map_location="cpu").eval().to(device="cpu", dtype=torch.float32)
    x0 = torch.rand(2, 3, 90, 135)
    x1 = torch.roll(x0, 3, dims=3)
    with torch.no_grad():
        out = model(x0, x1, x0.new_tensor([[0.5], [0.3]]))
    assert out.shape == (2, 3, 90, 135) and torch.isfinite(out).all()


def test_another_configuration_through_the_fixture(tmp_path, capsys):
    """The alt configuration (5 levels, 2 specialised): only the fixture can write it."""
    saved_model = tmp_path / "alt"
    tf_savedmodel.make_film_savedmodel(saved_model, reference_config("alt")["config"], reference_weights("alt"))
    save_path = tmp_path / "alt.pt"
    result = run_export(capsys, saved_model, save_path, "--fp32", "--pyramid_levels", 5)
    assert result.returncode == 0, result.stderr
    model, _ = load_exported(save_path, statedict=False)
    for case_name in ("photos_192x256", "random_64x128"):
        case = reference_case("alt", case_name)
        with torch.no_grad():
            outputs = model.debug_forward(nchw(case["x0"]), nchw(case["x1"]), torch.from_numpy(case["time"]))
        errors = relative_errors(outputs, case)
        worst = max((key for key in errors if "warped" not in key), key=errors.get)
        assert errors[worst] <= RELATIVE_TOLERANCE, (case_name, worst, errors[worst])


def write_variables_savedmodel(directory, variables):
    """A SavedModel holding just these named variables (for the refusal tests)."""
    module = tf.Module()
    module.vars = [tf.Variable(value, name=name.rsplit(":", 1)[0]) for name, value in variables.items()]
    tf.saved_model.save(module, str(directory))
    return directory


def assert_refused(result, save_path, *fragments, status=1):
    """One line on stderr, the exit status, nothing at save_path and no temporary file."""
    assert result.returncode == status, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not os.path.exists(save_path)
    if os.path.isdir(os.path.dirname(save_path)):
        assert not [f for f in os.listdir(os.path.dirname(save_path)) if f.endswith((".partial", ".tmp"))]


@pytest.mark.parametrize("damage, expected", [
    ("missing", "missing: predict_flow/flow_predictor_2/conv_1/kernel:0"),
    ("shape", "fusion/conv2d_7/kernel:0 has shape [3, 3, 155, 32], expected [3, 3, 154, 32]"),
    ("extra", "unexpected: fusion/conv2d_13/bias:0, fusion/conv2d_13/kernel:0"),
])
def test_bad_variables_are_refused(tmp_path, capsys, damage, expected):
    variables = reference_weights("small")
    if damage == "missing":
        del variables["predict_flow/flow_predictor_2/conv_1/kernel:0"]
    elif damage == "shape":
        assert variables["fusion/conv2d_7/kernel:0"].shape == (3, 3, 154, 32)
        variables["fusion/conv2d_7/kernel:0"] = np.zeros((3, 3, 155, 32), np.float32)
    else:
        variables["fusion/conv2d_13/kernel:0"] = np.zeros((1, 1, 3, 3), np.float32)
        variables["fusion/conv2d_13/bias:0"] = np.zeros((3,), np.float32)
    model_path = write_variables_savedmodel(tmp_path / "bad", variables)
    save_path = tmp_path / "film.pt"
    assert_refused(run_export(capsys, model_path, save_path), save_path, "error: ", expected)


def test_not_a_savedmodel_is_refused_by_the_cli(tmp_path):
    """Through the command line: one line on stderr, exit code 1."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    save_path = tmp_path / "film.pt"
    for model_path, expected in ((tmp_path / "empty", "not a TF SavedModel"), (tmp_path / "nowhere", "not a folder"),
                                 (tmp_path / "file.txt", "not a weight file")):
        result = subprocess.run([sys.executable, str(ROOT / "export.py"), str(model_path), str(save_path)],
                                capture_output=True, text=True, timeout=300)
        assert_refused(result, save_path, "error: ", expected)


def test_failed_self_test_writes_nothing(original_savedmodel, tmp_path, capsys):
    """A tolerance no float32 computation can meet makes the self-test fail: nothing is written."""
    save_path = tmp_path / "new" / "film.pt"
    result = run_export(capsys, original_savedmodel, save_path, "--fp32", "--tolerance", "1e-12")
    assert_refused(result, save_path, "self-test failed")
    assert os.listdir(tmp_path) == []  # the folder it created is gone too


@pytest.mark.parametrize("save_path, expected", [
    ("out/", "names a folder: give a file name"),
    (".", "names a folder: give a file name"),
    ("file.txt/film.pt", "is a file"),
])
def test_bad_save_paths_fail_before_tensorflow_loads(original_savedmodel, tmp_path, capsys, monkeypatch,
                                                     save_path, expected):
    (tmp_path / "file.txt").write_text("x")
    before = sorted(os.listdir(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(export, "load_saved_model", lambda path: pytest.fail("TensorFlow was loaded first"))
    result = run_export(capsys, original_savedmodel, save_path)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize("tolerance", ["0", "-1e-4", "small"])
def test_bad_tolerance_is_a_usage_error(original_savedmodel, tmp_path, capsys, tolerance):
    with pytest.raises(SystemExit) as exit_info:
        export.main([str(original_savedmodel), str(tmp_path / "x.pt"), "--tolerance", tolerance])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "--tolerance" in lines[0]
    assert os.listdir(tmp_path) == []


def test_ctrl_c_writes_nothing(original_savedmodel, tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(export, "self_test", interrupted)
    save_path = tmp_path / "new" / "film.pt"
    result = run_export(capsys, original_savedmodel, save_path)
    assert result.returncode == 130
    assert result.stderr.splitlines() == ["interrupted: nothing was written"]
    assert os.listdir(tmp_path) == []


def test_sigterm_writes_nothing(original_savedmodel, tmp_path):
    save_path = tmp_path / "film.pt"
    process = subprocess.Popen([sys.executable, str(ROOT / "export.py"), str(original_savedmodel), str(save_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        # The temporary file is made before TensorFlow loads; the export takes seconds after.
        while not any(name.endswith(".partial") for name in os.listdir(tmp_path)):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.02)
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 143, err
    assert err.splitlines()[-1] == "interrupted: nothing was written"
    assert os.listdir(tmp_path) == []


def test_the_self_test_size_is_not_a_multiple_of_64():
    height, width = export.TEST_SIZE
    assert height % 64 and width % 64
