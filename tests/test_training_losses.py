"""training.losses and training.vgg19 against the ORIGINAL code's values and gradients (losses_cases.npz).

The reference (REFERENCE/training, see tests/data/README.md) was made by the original's
losses/losses.py and losses/vgg19_loss.py with vgg19_narrow.mat, a narrow random VGG-19 in
the layout of MatConvNet's imagenet-vgg-verydeep-19.mat. Two cases have odd sides, where
the 'SAME' average pools differ from floor pooling. Targets: values within 1e-5 relative,
gradients with respect to the prediction within 1e-4 norm-relative, fp32.
"""
import numpy as np
import pytest
import torch

from conftest import REFERENCE
from training import losses, matlab, vgg19

TRAINING = REFERENCE / "training"
CASES = ("a_1x67x93", "b_2x64x96", "c_1x130x77")
LOSSES = ("l1", "l2", "vgg", "style")


@pytest.fixture(scope="module")
def vgg():
    return vgg19.VGG19Features.from_file(str(TRAINING / "vgg19_narrow.mat"))


@pytest.fixture(scope="module")
def cases():
    with np.load(TRAINING / "losses_cases.npz") as data:
        return dict(data)


def nchw(array):
    return torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))


def relative(got, want):
    return float(np.linalg.norm(np.ravel(got) - np.ravel(want)) / np.linalg.norm(np.ravel(want)))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", LOSSES)
def test_loss_and_gradient_equal_the_originals(vgg, cases, case, name, one_thread):
    prediction = nchw(cases[f"{case}/prediction"]).requires_grad_(True)
    target = nchw(cases[f"{case}/y"])
    value = losses.compute_losses([name], prediction, target, vgg)[name]
    (gradient,) = torch.autograd.grad(value, prediction)
    assert relative(value.item(), cases[f"{case}/{name}"]) <= 1e-5
    assert relative(gradient.numpy(), cases[f"{case}/grad_{name}"].transpose(0, 3, 1, 2)) <= 1e-4


def test_the_single_functions_equal_compute_losses(vgg, cases, one_thread):
    prediction, target = nchw(cases["c_1x130x77/prediction"]), nchw(cases["c_1x130x77/y"])
    both = losses.compute_losses(["vgg", "style"], prediction, target, vgg)
    assert losses.vgg_loss(prediction, target, vgg).item() == both["vgg"].item()
    assert losses.style_loss(prediction, target, vgg).item() == both["style"].item()
    assert losses.l1_loss(prediction, target).item() == pytest.approx(float(cases["c_1x130x77/l1"]), rel=1e-6)


def test_odd_sizes_pool_like_tf_same_padding():
    """A 3x3 map pools to 2x2; the edge windows average only the pixels that exist."""
    x = torch.arange(9.0).view(1, 1, 3, 3)
    pooled = vgg19.same_avg_pool(x)
    assert pooled.tolist() == [[[[2.0, 3.5], [6.5, 8.0]]]]


def test_vgg_file_fields_are_found_by_name(tmp_path):
    layers = matlab.load(str(TRAINING / "vgg19_narrow.mat"))["layers"]
    first = layers.ravel()[0].ravel()[0]
    assert first["name"] == "conv1_1" and first["weights"].ravel()[0].shape == (3, 3, 3, 8)
    weights = vgg19.read_conv_weights(str(TRAINING / "vgg19_narrow.mat"))
    assert [weights[name][0].shape[3] for name in ("conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2")] == [
        8, 8, 12, 16, 16]


def test_bad_vgg_files_are_refused_in_one_line(tmp_path):
    not_mat = tmp_path / "x.mat"
    not_mat.write_bytes(b"hello" * 40)
    for path, words in ((not_mat, "not a MATLAB level-5"), (tmp_path / "missing.mat", "cannot read")):
        with pytest.raises(vgg19.VGGFileError) as error:
            vgg19.VGG19Features.from_file(str(path))
        assert words in str(error.value) and "\n" not in str(error.value)


def test_compressed_mat_files_read_the_same(tmp_path):
    """MATLAB's default -v7 files hold each variable zlib-compressed (miCOMPRESSED): same arrays."""
    import struct
    import zlib
    raw = (TRAINING / "vgg19_narrow.mat").read_bytes()
    header, body = raw[:128], raw[128:]
    packed = zlib.compress(body)  # the file's one variable, as one compressed element
    (tmp_path / "compressed.mat").write_bytes(header + struct.pack("<II", 15, len(packed)) + packed)
    plain = vgg19.read_conv_weights(str(TRAINING / "vgg19_narrow.mat"))
    compressed = vgg19.read_conv_weights(str(tmp_path / "compressed.mat"))
    assert sorted(plain) == sorted(compressed)
    for name in plain:
        assert all(np.array_equal(a, b) for a, b in zip(plain[name], compressed[name]))


def test_mat_files_written_here_read_back(tmp_path):
    """training.matlab.save (the benchmark's real-width VGG-19) writes what the reader and vgg19 read: the
    reference file's network, written again plainly and compressed, gives the same weights."""
    reference = vgg19.read_conv_weights(str(TRAINING / "vgg19_narrow.mat"))
    layers = []
    for entry in matlab.load(str(TRAINING / "vgg19_narrow.mat"))["layers"].ravel():
        layer = entry.ravel()[0]
        weights = layer["weights"].ravel() if layer["weights"].dtype == object else None
        layers.append({"name": layer["name"], "type": layer["type"],
                       "weights": matlab.Cell(weights) if weights is not None and weights.size else None})
    for compress in (False, True):
        path = tmp_path / f"again_{compress}.mat"
        matlab.save(str(path), {"layers": matlab.Cell(layers)}, compress=compress)
        again = vgg19.read_conv_weights(str(path))
        assert sorted(again) == sorted(reference)
        for name in reference:
            assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(reference[name], again[name]))
