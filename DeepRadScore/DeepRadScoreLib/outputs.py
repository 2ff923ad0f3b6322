"""Atomic outputs: a command either writes its whole result or leaves nothing behind.

Write into the temporary path these context managers yield; it is renamed onto the real path
only when the block finishes without an exception.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


def _default_mode(mode: int) -> int:
    """The permissions open()/mkdir() would give; mkstemp/mkdtemp make private (0600/0700) ones."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path in ``path``'s folder; move it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the real suffix (e.g. ".nii.gz") so writers that pick a format by name still work.
    suffix = "".join(path.suffixes)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, _default_mode(0o666))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, _default_mode(0o777))
    try:
        yield tmp
        # Writers inside may make private files (safetensors: 0600): give everything the
        # permissions open()/mkdir() would, so a copied or shared output stays readable.
        for item in tmp.rglob("*"):
            os.chmod(item, _default_mode(0o777 if item.is_dir() else 0o666))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


# --- output pre-checks: refuse a path that cannot be written before any work is done -----------

def check_output_file(path: str | Path) -> None:
    """Raise :class:`InputError` unless :func:`atomic_file` could write ``path``.

    Checked before any computation, so that a bad ``-o`` costs the user nothing and leaves
    nothing: ``path`` is not a folder, its folder is a folder (or can be created) and a file can
    be created in it. The check creates and removes a probe file and any folders it had to make.

    :param path: the output file a command will write.
    :raises InputError: ``PATH: <reason>``.
    """
    path = Path(path)
    if path.is_dir():
        raise _output_error(path, "is a folder; give a file name")
    _check_folder(path)


def check_output_dir(path: str | Path) -> None:
    """Raise :class:`InputError` unless a folder (e.g. a cache) can be made at ``path``."""
    path = Path(path)
    if (path.exists() or path.is_symlink()) and not path.is_dir():
        raise _output_error(path, "exists and is not a folder")
    _check_folder(path)


def _output_error(path: Path, reason: str):
    from DeepRadScoreLib.errors import InputError

    return InputError(f"{path}: {reason}")


def _check_folder(path: Path) -> None:
    folder = Path(os.path.abspath(path)).parent
    missing = []
    existing = folder
    while not (existing.exists() or existing.is_symlink()):
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        raise _output_error(path, f"{existing} is not a folder")
    made: list[Path] = []
    try:
        for new in reversed(missing):
            try:
                new.mkdir()
            except OSError as err:
                raise _output_error(path, f"cannot create the folder {new} ({err.strerror or err})") from None
            made.append(new)
        try:
            fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
        except OSError as err:
            raise _output_error(path, f"cannot write in the folder {folder} ({err.strerror or err})") from None
        os.close(fd)
        os.unlink(probe)
    finally:
        for new in reversed(made):
            with contextlib.suppress(OSError):
                new.rmdir()
