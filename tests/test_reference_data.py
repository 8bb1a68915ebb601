"""tests/data is the original FILM's reference data, unchanged (see tests/data/README.md).

When the folder it was copied from is there (../shared/reference beside the checkout, or
FILM_REFERENCE_DIR), every file, array and SavedModel file of the copy is compared with it
bit for bit, so the copy cannot drift. Without it, the inputs regenerated from photos/ are
still checked against the SHA-256 of the original's arrays.
"""
import hashlib
import json
import os
import pathlib
import tarfile

import numpy as np
import pytest

from conftest import DATA, ORIGINAL_SAVEDMODEL, SHARED_REFERENCE, photo_pair

COPIED_FILES = ("small_config.json", "alt_config.json", "film_style_variables.json",
                "small_weights.npz", "alt_weights.npz")
CASES = ("small_photos_192x256", "small_random_64x128", "alt_photos_192x256", "alt_random_64x128")
# training/ of the reference folder: byte-identical copies.
TRAINING_FILES = ("losses_cases.npz",)
# Everything in tests/data, so that nothing unchecked can be added.
DATA_FILES = sorted(COPIED_FILES + tuple(f"{case}.npz" for case in CASES) + (
    f"{ORIGINAL_SAVEDMODEL}.tar.xz", "photos_inputs.json", "README.md", "copy_reference.py", "training"))


def _sources():
    """Folders laid out like ../shared/reference that the copy can be compared with."""
    candidates = [SHARED_REFERENCE]
    if os.environ.get("FILM_REFERENCE_DIR"):
        candidates.append(pathlib.Path(os.environ["FILM_REFERENCE_DIR"]))
    found = []
    for folder in candidates:
        if (folder / ORIGINAL_SAVEDMODEL).is_dir() and folder.resolve() != DATA.resolve():
            if folder.resolve() not in [f.resolve() for f in found]:
                found.append(folder)
    return found


SOURCES = _sources()
needs_source = pytest.mark.skipif(not SOURCES, reason="no ../shared/reference (or FILM_REFERENCE_DIR) to compare with")


def _arrays(path):
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def _assert_identical_arrays(got, want, label):
    assert sorted(got) == sorted(want), label
    for key in want:
        assert got[key].dtype == want[key].dtype and got[key].shape == want[key].shape, (label, key)
        assert got[key].tobytes() == want[key].tobytes(), (label, key)


def test_data_folder_holds_exactly_the_documented_files():
    assert sorted(p.name for p in DATA.iterdir()) == DATA_FILES
    assert sorted(p.name for p in (DATA / "training").iterdir()) == sorted(TRAINING_FILES)
    # Kept small enough for a repository (see README.md for what is stored how).
    assert sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file()) < 12_500_000


def test_photo_inputs_are_the_originals():
    """photos/ → x0, x1 exactly as the original's inputs (their SHA-256 was taken from them)."""
    expected = json.loads((DATA / "photos_inputs.json").read_text())
    for key, array in zip(("x0", "x1"), photo_pair()):
        assert list(array.shape) == expected[key]["shape"] and str(array.dtype) == expected[key]["dtype"]
        assert hashlib.sha256(array.tobytes()).hexdigest() == expected[key]["sha256"], key


@needs_source
@pytest.mark.parametrize("source", SOURCES, ids=str)
def test_copy_equals_source(source):
    for name in COPIED_FILES:
        assert (DATA / name).read_bytes() == (source / name).read_bytes(), name
    for name in TRAINING_FILES:
        assert (DATA / "training" / name).read_bytes() == (source / "training" / name).read_bytes(), name
    regenerated = dict(zip(("x0", "x1"), photo_pair()))
    for case in CASES:
        want = _arrays(source / f"{case}.npz")
        got = _arrays(DATA / f"{case}.npz")
        if "photos" in case:  # stored without the inputs, which photo_pair() regenerates
            assert not {"x0", "x1"} & set(got)
            got.update(regenerated)
        _assert_identical_arrays(got, want, case)


@needs_source
@pytest.mark.parametrize("source", SOURCES, ids=str)
def test_packed_savedmodel_equals_source(source):
    folder = source / ORIGINAL_SAVEDMODEL
    want = {str(p.relative_to(source)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with tarfile.open(DATA / f"{ORIGINAL_SAVEDMODEL}.tar.xz") as archive:
        got = {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}
        assert all(m.isfile() or m.isdir() for m in archive.getmembers())  # no links
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == want[name], name
