"""Shared test set-up: the repo root on sys.path, and the reference data of the original FILM.

The reference data (weights, inputs and outputs of the ORIGINAL TensorFlow FILM, and a
SavedModel it wrote) is in tests/data, a copy of ../shared/reference made by
tests/data/copy_reference.py; tests/data/README.md says what is stored how. The
environment variable FILM_REFERENCE_DIR points the tests at another folder laid out like
../shared/reference (or like tests/data) instead.
"""
import functools
import hashlib
import json
import os
import pathlib
import sys
import tarfile

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Tests run small frames, which gain nothing from threads; on a shared 2-core
# machine threads only wait for each other. The CLIs' --threads default
# honours this, in-process and in the subprocesses the tests start.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# TensorFlow's native log lines, for the tests that import it (before they do).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DATA = ROOT / "tests" / "data"
REFERENCE = pathlib.Path(os.environ.get("FILM_REFERENCE_DIR") or DATA)
# The folder the in-repo copy was made from, when it is beside the checkout.
SHARED_REFERENCE = ROOT.parent / "shared" / "reference"
REFERENCE_CONFIGS = ("small", "alt")
REFERENCE_CASES = ("photos_192x256", "random_64x128")
ORIGINAL_SAVEDMODEL = "original_small_savedmodel"


def reference_config(name):
    return json.loads((REFERENCE / f"{name}_config.json").read_text())


def reference_weights(name):
    with np.load(REFERENCE / f"{name}_weights.npz") as weights:
        return dict(weights)


def reference_case(name, case):
    with np.load(REFERENCE / f"{name}_{case}.npz") as data:
        arrays = dict(data)
    if case.startswith("photos_") and "x0" not in arrays:  # tests/data does not store them
        arrays["x0"], arrays["x1"] = photo_pair()
    return arrays


@functools.lru_cache(maxsize=None)
def _photo_pair():
    import cv2
    pair = []
    for name, key in (("one", "x0"), ("two", "x1")):
        pixels = cv2.imread(str(ROOT / "photos" / f"{name}.png"), cv2.IMREAD_COLOR)[:, :, ::-1]
        blocks = (pixels.astype(np.float32) / 255).reshape(192, 4, 256, 4, 3)
        # The mean over each 4x4 block, summed in a fixed order (float32 additions are
        # exactly rounded, so this gives the same bits everywhere; a reordered sum can
        # differ in the last bit). The division by 16 is exact.
        total = np.zeros((192, 256, 3), np.float32)
        for row in range(4):
            for column in range(4):
                total += blocks[:, row, :, column]
        pair.append((total / np.float32(16))[np.newaxis])
    expected = json.loads((DATA / "photos_inputs.json").read_text())
    for key, array in zip(("x0", "x1"), pair):
        digest = hashlib.sha256(array.tobytes()).hexdigest()
        assert digest == expected[key]["sha256"], (
            f"{key} regenerated from photos/ differs from the original's input (sha256 {digest}); "
            "were photos/one.png or two.png changed?")
    return tuple(pair)


def photo_pair():
    """x0, x1 (1, 192, 256, 3) of the photos_192x256 cases, bit-identical to the original's.

    They are photos/one.png and two.png as float32 RGB / 255, averaged over 4x4 blocks;
    checked against the SHA-256 of the original's arrays (tests/data/photos_inputs.json).
    """
    return tuple(array.copy() for array in _photo_pair())


def original_savedmodel_path(scratch):
    """The folder of the SavedModel written by the original code (see tests/data/README.md).

    Used in place when REFERENCE holds it as a folder; otherwise unpacked from
    REFERENCE/original_small_savedmodel.tar.xz into the folder `scratch`.
    """
    folder = REFERENCE / ORIGINAL_SAVEDMODEL
    if folder.is_dir():
        return folder
    with tarfile.open(REFERENCE / f"{ORIGINAL_SAVEDMODEL}.tar.xz") as archive:
        # filter='data' refuses links and paths outside `scratch` (Python >= 3.11.4 / 3.12).
        options = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        archive.extractall(scratch, **options)
    return pathlib.Path(scratch) / ORIGINAL_SAVEDMODEL


@pytest.fixture(scope="session")
def original_savedmodel(tmp_path_factory):
    """Path of the original's SavedModel folder (unpacked once per session if needed)."""
    return original_savedmodel_path(tmp_path_factory.mktemp("reference"))


@pytest.fixture(scope="module")
def one_thread():
    """Small frames gain nothing from intra-op threads; on a busy machine they only wait for each other."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_main(main, capsys, *argv):
    """A CLI's main() in-process: (exit status, stdout, stderr)."""
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def error_lines(stderr):
    """stderr without tqdm's progress bar (which redraws with carriage returns)."""
    return [line for line in stderr.splitlines() if line and "\r" not in line and "Interpolating" not in line]


def tree(folder):
    """Every path below folder, relative and sorted: to check that nothing was written."""
    return sorted(str(path.relative_to(folder)) for path in pathlib.Path(folder).rglob("*"))


def assert_refused_cleanly(main, capsys, folder, argv, words):
    """main(argv) fails with exit 1, one 'error: ' line naming words, and writes nothing in folder."""
    before = tree(folder)
    status, out, err = run_main(main, capsys, *argv)
    assert status == 1
    lines = error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], err
    assert out == ""
    assert tree(folder) == before  # nothing written, no temporary file, no new folder


def random_interpolator(seed=0, **config):
    """``benchmarks.common.random_network``: default initialisation, non-zero biases (no path silently zero)."""
    from benchmarks.common import random_network
    return random_network(config, seed)


# Stand-ins used by the inference tests: a file with forward() only, and call counters.

import weakref  # noqa: E402

import torch  # noqa: E402


def cpu_runtime(model):
    """A model as the video pipeline runs it: on the CPU in float32."""
    import runtime
    return runtime.ModelRuntime(model, torch.device("cpu"), torch.float32)


class ForwardOnly(torch.nn.Module):
    """Like a file from the original PyTorch port: only forward(x0, x1, dt)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x0, x1, dt):
        return self.inner(x0, x1, dt)


class Recorder(torch.nn.Module):
    """Passes forward calls through to a scripted model, counting them."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.calls = {"forward": 0, "encode": 0, "estimate_flows": 0, "synthesize": 0}

    def forward(self, x0, x1, dt):
        self.calls["forward"] += 1
        return self.model(x0, x1, dt)


class StageRecorder(Recorder):
    """Also passes the stages through, counting calls and feature pyramids still alive."""

    def __init__(self, model):
        super().__init__(model)
        self.live = 0
        self.peak_live = 0

    def _released(self):
        self.live -= 1

    def encode(self, image):
        self.calls["encode"] += 1
        images, features = self.model.encode(image)
        self.live += 1
        self.peak_live = max(self.peak_live, self.live)
        weakref.finalize(features[0], self._released)
        return images, features

    def estimate_flows(self, features0, features1):
        self.calls["estimate_flows"] += 1
        return self.model.estimate_flows(features0, features1)

    def synthesize(self, *args):
        self.calls["synthesize"] += 1
        return self.model.synthesize(*args)
