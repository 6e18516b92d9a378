"""Atomic output folders: a failed run leaves no partial files behind (DESIGN.md §4).

Usage::

    with AtomicOutputDir(out_dir) as staging:
        (staging / "model.glb").write_bytes(data)
    # on success every file in ``staging`` is moved into ``out_dir``;
    # on any exception the staging folder is removed and ``out_dir`` is left as it was.

Files the user already had in ``out_dir`` are kept; a file of ours with the same name is replaced
in one ``os.replace`` per file.
"""

from __future__ import annotations

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


class AtomicOutputDir:
    """Stage outputs in a hidden sibling folder and move them into place only on success."""

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.staging: Path | None = None

    def __enter__(self) -> Path:
        _check_writable(self.out_dir)
        try:
            self.staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=self.out_dir))
        except OSError as exc:
            raise BadInputError(f"cannot write to output folder {self.out_dir}: {exc.strerror}") from exc
        return self.staging

    def __exit__(self, exc_type, exc, tb) -> bool:
        assert self.staging is not None
        try:
            if exc_type is None:
                self._commit()
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)
        return False

    def _commit(self) -> None:
        assert self.staging is not None
        moved: list[Path] = []
        try:
            for src in sorted(self.staging.iterdir()):
                dst = self.out_dir / src.name
                if dst.is_dir() and not src.is_dir():
                    raise BadInputError(f"output name is taken by a folder: {dst}")
                if src.is_dir():
                    if dst.exists():
                        shutil.rmtree(dst)
                os.replace(src, dst)
                moved.append(dst)
        except OSError as exc:
            for path in moved:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            if exc.errno == errno.ENOSPC:
                raise BadInputError(f"disk full while writing {self.out_dir}") from exc
            raise BadInputError(f"cannot write to {self.out_dir}: {exc.strerror}") from exc


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
        if exc.errno == errno.ENOSPC:
            raise BadInputError(f"disk full while writing {path}") from exc
        raise BadInputError(f"cannot write {path}: {exc.strerror}") from exc
