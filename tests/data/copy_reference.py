"""Makes tests/data from a reference folder laid out like ../shared/reference.

    python tests/data/copy_reference.py [REFERENCE_DIR]   (default ../shared/reference)

What it writes, and why, is in README.md beside this file. Nothing is
recomputed or rounded: files are copied, arrays are copied bit for bit, and
the SavedModel folder is packed unchanged. tests/test_reference_data.py checks
the result against the reference folder whenever one is there.
"""
import hashlib
import io
import json
import os
import pathlib
import shutil
import sys
import tarfile
import zipfile

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
COPIED = ('small_config.json', 'alt_config.json', 'film_style_variables.json',
          'small_weights.npz', 'alt_weights.npz')
CASES = ('small_photos_192x256', 'small_random_64x128', 'alt_photos_192x256', 'alt_random_64x128')
PHOTO_INPUTS = ('x0', 'x1')  # regenerated from photos/ by conftest.photo_pair()
SAVEDMODEL = 'original_small_savedmodel'
# The training reference (training/ of the reference folder), byte-identical copies.
TRAINING_COPIED = ('losses_cases.npz',)


def write_npz_lzma(path, arrays):
    """Like np.savez_compressed, with LZMA instead of deflate (np.load reads both)."""
    with zipfile.ZipFile(path, 'w', compression=zipfile.ZIP_LZMA) as archive:
        for key, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            archive.writestr(key + '.npy', buffer.getvalue())


def normalized(member):
    """Same bytes; owner, permissions and times that do not depend on who packed it."""
    member.uid = member.gid = 0
    member.uname = member.gname = ''
    member.mode = 0o755 if member.isdir() else 0o644
    member.mtime = 0
    return member


def main(argv):
    source = pathlib.Path(argv[0] if argv else ROOT.parent / 'shared' / 'reference')
    for name in COPIED:
        shutil.copyfile(source / name, HERE / name)
    (HERE / 'training').mkdir(exist_ok=True)
    for name in TRAINING_COPIED:
        shutil.copyfile(source / 'training' / name, HERE / 'training' / name)
    inputs = None
    for case in CASES:
        with np.load(source / f'{case}.npz') as data:
            arrays = {key: data[key] for key in data.files}
        if 'photos' in case:
            photo = {key: arrays.pop(key) for key in PHOTO_INPUTS}
            if inputs is None:
                inputs = photo
            assert all(np.array_equal(photo[k], inputs[k]) for k in PHOTO_INPUTS), 'photo inputs differ'
        write_npz_lzma(HERE / f'{case}.npz', arrays)
    with tarfile.open(HERE / f'{SAVEDMODEL}.tar.xz', 'w:xz', preset=9) as archive:
        for path in sorted((source / SAVEDMODEL).rglob('*')):
            archive.add(path, arcname=str(path.relative_to(source)), recursive=False, filter=normalized)
    manifest = {
        'about': 'x0 and x1 of the photos_192x256 cases (the same in small and alt), which '
                 'conftest.photo_pair() regenerates from photos/one.png and photos/two.png',
        **{key: {'shape': list(array.shape), 'dtype': str(array.dtype),
                 'sha256': hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()}
           for key, array in inputs.items()},
    }
    (HERE / 'photos_inputs.json').write_text(json.dumps(manifest, indent=1) + '\n')
    total = sum(p.stat().st_size for p in HERE.rglob('*') if p.is_file())
    print(f'wrote {HERE} ({total / 1e6:.2f} MB)')


if __name__ == '__main__':
    main(sys.argv[1:])
