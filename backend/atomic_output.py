"""Atomic output folders: a failed run leaves no partial files behind (docs/design.md §4).

Usage::

    with AtomicOutputDir(out_dir) as staging:
        (staging / "model.glb").write_bytes(data)
    # on success every file in ``staging`` is moved into ``out_dir``;
    # on any exception the staging folder is removed and ``out_dir`` is left as it was.

Files the user already had in ``out_dir`` are kept; a file of ours with the same name is replaced
in one ``os.replace`` per file, and put back if a later move fails (a full disk mid-commit loses nothing).
An ``out_dir`` this run created is removed again when the run fails and it is still empty. A full disk or
an unwritable folder becomes :class:`~backend.errors.BadInputError` (exit 2) with a one-line message.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path

from .errors import BadInputError


def _check_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"cannot create output folder {out_dir}: {exc.strerror}") from exc
    if not out_dir.is_dir():
        raise BadInputError(f"output path is not a folder: {out_dir}")
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise BadInputError(f"output folder is not writable: {out_dir}")


def check_output_location(out_dir: str | os.PathLike) -> None:
    """Fail early (exit 2), creating nothing, when ``out_dir`` could never be written: the path or one of its
    parents is a file, or the nearest existing parent is not writable. Jobs call this before any heavy work."""
    out_dir = Path(out_dir).absolute()
    existing = out_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "output path" if existing == out_dir else "a parent of the output folder"
        raise BadInputError(f"cannot create output folder {out_dir}: {where} is a file ({existing})")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadInputError(f"output folder is not writable: {existing}")


def _disk_error(exc: OSError, target: Path) -> BadInputError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return BadInputError(f"disk full while writing {target}")
    return BadInputError(f"cannot write to {target}: {exc.strerror or exc}")


class AtomicOutputDir:
    """Stage outputs in a hidden sibling folder and move them into place only on success."""

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.staging: Path | None = None
        self.created = False  # we made out_dir: a failed run removes it again (when still empty)

    def __enter__(self) -> Path:
        self.created = not self.out_dir.exists()
        _check_writable(self.out_dir)
        try:
            self.staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=self.out_dir))
        except OSError as exc:
            raise BadInputError(f"cannot write to output folder {self.out_dir}: {exc.strerror}") from exc
        return self.staging

    def __exit__(self, exc_type, exc, tb) -> bool:
        assert self.staging is not None
        committed = False
        try:
            if exc_type is None:
                self._commit()
                committed = True
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)
            if not committed and self.created:
                with contextlib.suppress(OSError):
                    self.out_dir.rmdir()  # only if empty: never removes anything else
        if exc_type is not None and issubclass(exc_type, OSError):
            raise _disk_error(exc, self.out_dir) from exc  # e.g. the disk filled up while staging
        return False

    def _commit(self) -> None:
        """Move every staged entry into place; on any failure put back what was there before."""
        assert self.staging is not None
        entries = sorted(self.staging.iterdir())
        previous = self.staging / ".previous"  # the user's earlier files of the same names, until we succeed
        moved: list[Path] = []
        kept: list[Path] = []
        try:
            for src in entries:
                dst = self.out_dir / src.name
                if dst.is_dir() and not src.is_dir():
                    raise BadInputError(f"output name is taken by a folder: {dst}")
                if dst.exists() or dst.is_symlink():
                    previous.mkdir(exist_ok=True)
                    os.replace(dst, previous / src.name)
                    kept.append(dst)
                os.replace(src, dst)
                moved.append(dst)
        except OSError as exc:
            for path in moved:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            for path in kept:
                os.replace(previous / path.name, path)
            raise _disk_error(exc, self.out_dir) from exc


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write one file through a temporary name in the same folder, then rename it into place."""
    path = Path(path)
    _check_writable(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=".partial-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _disk_error(exc, path) from exc
