"""Where an output goes: a final path, written through a hidden temporary sibling that is renamed into place.

Nothing half-written is ever left at a destination: ``Destination``
creates the temporary file or folder (and the missing folders above it),
``commit`` renames it into place, ``discard`` removes it and the folders it
created. The writers (``writers``), the chunk join (``join``) and the model
export write through it. The temporary name holds the writing process's
id, so that a killed worker's leftovers can be told apart.
"""
from __future__ import annotations

import os
import secrets
import shutil
from typing import List

from media.errors import OutputError, log
from media.images import is_frame_name


def create_missing_folders(folder: str) -> List[str]:
    """Creates ``folder`` and its missing parents; returns those created, outermost first."""
    missing: List[str] = []
    while folder and not os.path.exists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    if folder and not os.path.isdir(folder):
        raise OutputError(f"cannot create the output folder: {folder} is a file")
    created: List[str] = []
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except OSError as error:
            remove_empty_folders(created)
            raise OutputError(f"cannot create the output folder {path}: {error.strerror or error}") from None
        created.append(path)
    return created


def remove_empty_folders(created: List[str]) -> None:
    """Undoes ``create_missing_folders``, innermost first, as far as the folders are empty."""
    for path in reversed(created):
        try:
            os.rmdir(path)
        except OSError:
            break  # not empty (someone else wrote there): keep it and its parents


class Destination:
    """A final path, a temporary sibling to write into, and the folders created for it."""

    def __init__(self, path: str, is_folder: bool):
        self.final = os.path.abspath(path.rstrip("/" + os.sep) or path)
        self.is_folder = is_folder
        if not is_folder and os.path.isdir(self.final):
            raise OutputError(f"output path is an existing folder: {path}")
        if not is_folder and os.path.exists(self.final) and not os.access(self.final, os.W_OK):
            raise OutputError(f"output file is not writable: {path}")
        if is_folder and os.path.exists(self.final) and not os.path.isdir(self.final):
            raise OutputError(f"output path for PNG frames is an existing file: {path}")
        parent = os.path.dirname(self.final)
        self.created_folders = self._make_folders(parent)
        name = os.path.basename(self.final)
        # The writing process's id in the name tells whose file it is (a
        # killed worker's is removed by the next run of its job).
        self.temporary = os.path.join(parent, f".{name}.{os.getpid()}-{secrets.token_hex(4)}.partial")
        try:
            if is_folder:
                os.mkdir(self.temporary)
            else:
                # Created with the default mode, so the umask applies as for any new file.
                os.close(os.open(self.temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except OSError as error:
            self._remove_created_folders()
            raise OutputError(f"cannot write the output {path}: {parent} takes no new file "
                              f"({error.strerror or error})") from None

    def _make_folders(self, folder: str) -> List[str]:
        return create_missing_folders(folder)

    def _remove_created_folders(self) -> None:
        remove_empty_folders(self.created_folders)
        self.created_folders = []

    def commit(self) -> None:
        if not self.is_folder:
            os.replace(self.temporary, self.final)
            return
        if not os.path.exists(self.final):
            os.rename(self.temporary, self.final)
            return
        # An existing folder keeps its other files; our frames replace any there,
        # and numbered frames of an earlier, longer run are removed so the folder
        # holds one consistent sequence.
        new_names = set(os.listdir(self.temporary))
        for name in sorted(new_names):
            source = os.path.join(self.temporary, name)
            os.replace(source, os.path.join(self.final, name))
            if os.path.lexists(source):
                # rename() does nothing when both names are links to one file
                # (frames linked from a job's chunks, twice): drop the extra link.
                os.remove(source)
        os.rmdir(self.temporary)
        stale = [name for name in os.listdir(self.final)
                 if is_frame_name(name) and name not in new_names]
        for name in stale:
            os.remove(os.path.join(self.final, name))
        if stale:
            log.warning(f"removed {len(stale)} numbered frames of an earlier run from {self.final}")

    def discard(self) -> None:
        if os.path.isdir(self.temporary):
            shutil.rmtree(self.temporary, ignore_errors=True)
        elif os.path.exists(self.temporary):
            os.remove(self.temporary)
        self._remove_created_folders()


def same_file(a: str, b: str) -> bool:
    """Whether two paths name one file or folder (links followed; either may not exist yet)."""
    return os.path.realpath(a) == os.path.realpath(b)
