"""Atomic output folders (docs/design.md §4): a failed run leaves no partial files behind, and the output
contract of docs/reliability.md ("What a run may do to --out") holds.

Usage::

    with AtomicOutputDir(out_dir, names=GENERATE_OUTPUTS) as staging:
        (staging / "model.glb").write_bytes(data)
    # on success every entry of ``staging`` is moved into ``out_dir``;
    # on any exception (Ctrl-C and SIGTERM included) ``out_dir`` is left exactly as it was.

The contract, in the order the code keeps it:

1. Only documented names: ``names`` (when given) lists every entry a run may put into ``out_dir``; staging
   anything else is a bug. The run also keeps one hidden file, :data:`MANIFEST_NAME`, recording what it wrote.
2. Nothing of the user's is replaced: an existing entry of an output's name is replaced only when the manifest
   says this tool wrote it and its bytes are unchanged since (or with ``overwrite``); otherwise exit 2 naming it.
   A folder where a file goes (or the reverse) is never replaced. :func:`check_output_location` checks this
   before any heavy work; the commit checks again.
3. All or nothing: the commit first writes a journal (which names, which existed), moves each original aside
   into the staging folder, then moves the new entry in. Any exception puts every original back and removes
   what was moved in. A run killed outright (SIGKILL, power loss) leaves its staging folder with the journal;
   the next run in that folder finds it (its lock is free), puts the originals back and removes it.
4. Errors: a full disk or an unwritable folder becomes :class:`~backend.errors.BadInputError` (exit 2).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from .errors import BadInputError

MANIFEST_NAME = ".image_to_3d-outputs.json"  # name → digest of each entry this tool wrote into the folder
STAGING_PREFIX = ".partial-"
_LOCK = "owner.lock"  # held (OS file lock) while the run that made the staging folder is alive
_JOURNAL = "journal.json"  # written before the first move of a commit
_NEW = "new"  # what the caller writes
_PREVIOUS = "previous"  # originals moved aside during a commit
_UNLOCKED_GRACE_S = 60.0  # a staging folder younger than this without a lock file may still be starting
_STALE_TEMP_FILE_S = 3600.0  # a single-file write takes well under this: an older temp file's writer is gone


def output_path(path: str | os.PathLike) -> Path:
    """``path`` (an output folder or file the user named) as a Path; exit 2 when it is empty, which ``Path``
    would silently turn into the current folder (``--out ""`` from a script whose variable was unset)."""
    if not os.fspath(path):
        raise BadInputError("no output path given (it is empty)")
    return Path(path)


def _check_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"cannot create output folder {out_dir}: {exc.strerror or exc}") from exc
    if not out_dir.is_dir():
        raise BadInputError(f"output path is not a folder: {out_dir}")
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise BadInputError(f"output folder is not writable: {out_dir}")


def check_output_location(out_dir: str | os.PathLike, names: Iterable[str] = (), overwrite: bool = False) -> None:
    """Fail early (exit 2), creating nothing, when ``out_dir`` could never be written: the path or one of its
    parents is a file, the nearest existing parent is not writable, or an entry of one of ``names`` is there
    and was not written by this tool (unless ``overwrite``). Jobs call this before any heavy work."""
    out_dir = Path(out_dir).absolute()
    try:
        existing = out_dir
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        is_dir = existing.is_dir()
    except OSError as exc:  # ENAMETOOLONG, ELOOP, …: a path no run could write
        raise BadInputError(f"cannot use output folder {out_dir}: {exc.strerror or exc}") from None
    if not is_dir:
        where = "output path" if existing == out_dir else "a parent of the output folder"
        raise BadInputError(f"cannot create output folder {out_dir}: {where} is a file ({existing})")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadInputError(f"output folder is not writable: {existing}")
    if existing == out_dir:
        check_replaceable(out_dir, {name: False for name in names}, overwrite)


# --- 2. what may be replaced -------------------------------------------------------------------------------

def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _describe(path: Path) -> dict:
    """The manifest's record of one entry: a folder is recorded as such, a file by its size and SHA-256."""
    if path.is_dir() and not path.is_symlink():
        return {"kind": "folder"}
    return {"kind": "file", "size": path.stat().st_size, "sha256": _digest(path)}


def read_manifest(out_dir: Path) -> dict[str, dict]:
    """The entries this tool wrote into ``out_dir`` ({} when there is no readable manifest)."""
    path = out_dir / MANIFEST_NAME
    try:
        if path.is_symlink():
            return {}
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    entries = raw.get("entries") if isinstance(raw, dict) else None
    return {k: v for k, v in entries.items() if isinstance(v, dict)} if isinstance(entries, dict) else {}


def _written_by_us(path: Path, record: dict | None) -> bool:
    if record is None or path.is_symlink():
        return False
    if record.get("kind") == "folder":
        return path.is_dir()
    try:
        return (path.is_file() and path.stat().st_size == record.get("size")
                and _digest(path) == record.get("sha256"))
    except OSError:
        return False


def check_replaceable(out_dir: Path, names: dict[str, bool], overwrite: bool) -> None:
    """BadInputError (exit 2) naming the first entry of ``names`` (name → will be a folder) that exists in
    ``out_dir`` and may not be replaced: not written by this tool (or changed since) without ``overwrite``, or
    a folder where a file goes / a file where a folder goes."""
    manifest = None
    for name, new_is_folder in sorted(names.items()):
        target = out_dir / name
        if not (target.exists() or target.is_symlink()):
            continue
        if target.is_dir() != new_is_folder and not target.is_symlink():
            kind = "a folder" if target.is_dir() else "a file"
            raise BadInputError(f"output name is taken by {kind}: {target} (move it away or choose another --out)")
        if overwrite:
            continue
        manifest = read_manifest(out_dir) if manifest is None else manifest
        if not _written_by_us(target, manifest.get(name)):
            raise BadInputError(f"{target} exists and was not written by this tool (or was changed since): move it "
                                "away, choose another --out, or pass --overwrite")


# --- 3. staging folders, their locks, and recovery ------------------------------------------------------------

def _lock(fh) -> bool:
    """Take the OS lock on an open file without waiting; False when another process (or handle) holds it."""
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _restore_from_journal(staging: Path, out_dir: Path) -> None:
    """Undo a commit that did not finish: originals back, entries it moved in (that had none) removed."""
    journal = staging / _JOURNAL
    if not journal.is_file():
        return  # the commit never started: out_dir was never touched
    record = json.loads(journal.read_text(encoding="utf-8"))
    previous = staging / _PREVIOUS
    for name in record["names"]:
        target = out_dir / name
        if (previous / name).exists() or (previous / name).is_symlink():
            _remove(target)
            os.replace(previous / name, target)
        elif name not in record["existed"]:
            _remove(target)  # moved in by the unfinished commit (or never: then there is nothing to remove)
    journal.unlink()


def clean_stale_staging(out_dir: Path) -> list[Path]:
    """Recover and remove the staging folders that runs killed outright left in ``out_dir``; returns them.

    A staging folder is stale when its lock is free (its run is gone) — or, without a lock file, when it is
    older than a minute. A live run's folder is left alone."""
    cleaned = []
    try:
        candidates = [p for p in out_dir.iterdir() if p.name.startswith(STAGING_PREFIX) and p.is_dir()
                      and not p.is_symlink()]
    except OSError:
        return cleaned
    for staging in candidates:
        lock_path = staging / _LOCK
        try:
            if lock_path.is_file():
                with open(lock_path, "a+b") as fh:
                    if not _lock(fh):
                        continue  # its run is alive
                    _restore_from_journal(staging, out_dir)
            elif time.time() - staging.stat().st_mtime < _UNLOCKED_GRACE_S:
                continue
            else:
                _restore_from_journal(staging, out_dir)
            shutil.rmtree(staging)
            cleaned.append(staging)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable: leave it rather than guess (it never holds anything of ours)
    return cleaned


def _disk_error(exc: OSError, target: Path) -> BadInputError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return BadInputError(f"disk full while writing {target}")
    return BadInputError(f"cannot write to {target}: {exc.strerror or exc}")


class AtomicOutputDir:
    """Stage outputs in a hidden sibling folder and move them into place only on success (module docstring).

    names:     every entry a run may put into ``out_dir`` (None: any; callers with a fixed set pass it)
    overwrite: replace existing entries of those names even when this tool did not write them
    """

    def __init__(self, out_dir: str | os.PathLike, names: Iterable[str] | None = None, overwrite: bool = False):
        self.out_dir = Path(out_dir)
        self.names = frozenset(names) if names is not None else None
        self.overwrite = overwrite
        self.root: Path | None = None  # the hidden staging folder
        self.staging: Path | None = None  # root/new: what the caller fills
        self.created = False  # we made out_dir: a failed run removes it again (when still empty)
        self._lock_file = None

    def __enter__(self) -> Path:
        self.created = not self.out_dir.exists()
        _check_writable(self.out_dir)
        clean_stale_staging(self.out_dir)
        try:
            self.root = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.out_dir))
            self._lock_file = open(self.root / _LOCK, "a+b")  # noqa: SIM115 - held until __exit__
            _lock(self._lock_file)
            self.staging = self.root / _NEW
            self.staging.mkdir()
        except OSError as exc:
            self._discard()
            raise BadInputError(f"cannot write to output folder {self.out_dir}: {exc.strerror or exc}") from exc
        return self.staging

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                self._commit()
        finally:
            self._discard()
        if exc_type is not None and issubclass(exc_type, OSError):
            raise _disk_error(exc, self.out_dir) from exc  # e.g. the disk filled up while staging
        return False

    def _discard(self) -> None:
        """Remove the staging folder (unless a commit could not be undone: the next run recovers it)."""
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        if self.root is not None and not (self.root / _JOURNAL).exists():
            shutil.rmtree(self.root, ignore_errors=True)
        if self.created:
            with contextlib.suppress(OSError):
                self.out_dir.rmdir()  # only if empty (a failed first run): never removes anything else

    def _staged(self) -> dict[str, bool]:
        """name → is a folder, for every staged entry (the manifest a nested run left is rewritten here)."""
        assert self.staging is not None
        entries = {p.name: p.is_dir() for p in self.staging.iterdir() if p.name != MANIFEST_NAME}
        if self.names is not None and set(entries) - self.names:
            raise RuntimeError(f"undocumented output names staged for {self.out_dir}: "
                               f"{sorted(set(entries) - self.names)}")
        return entries

    def _commit(self) -> None:
        """Move every staged entry into place; on any failure (any exception) put back what was there."""
        assert self.root is not None and self.staging is not None
        entries = self._staged()
        check_replaceable(self.out_dir, entries, self.overwrite)
        manifest = {k: v for k, v in read_manifest(self.out_dir).items()
                    if k not in entries and (self.out_dir / k).exists()}
        manifest.update({name: _describe(self.staging / name) for name in entries})
        (self.staging / MANIFEST_NAME).write_text(json.dumps({"entries": manifest}, indent=1, sort_keys=True),
                                                  encoding="utf-8")
        names = [*sorted(entries), MANIFEST_NAME]  # the manifest last: it speaks for files already in place
        existed = [n for n in names if (self.out_dir / n).exists() or (self.out_dir / n).is_symlink()]
        previous = self.root / _PREVIOUS
        previous.mkdir()
        try:
            (self.root / _JOURNAL).write_text(json.dumps({"names": names, "existed": existed}), encoding="utf-8")
            for name in names:
                target = self.out_dir / name
                if name in existed:
                    os.replace(target, previous / name)
                os.replace(self.staging / name, target)
        except BaseException as exc:
            try:
                _restore_from_journal(self.root, self.out_dir)
            except BaseException:  # noqa: BLE001 - the journal stays: the next run in this folder finishes the undo
                pass
            if isinstance(exc, OSError):
                raise _disk_error(exc, self.out_dir) from exc
            raise
        (self.root / _JOURNAL).unlink()


def _remove_stale_temp_files(folder: Path) -> None:
    """Temporary files of single-file writes that a killed run left (an hour old: no live write takes that)."""
    now = time.time()
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            if entry.name.startswith(STAGING_PREFIX) and entry.is_file() and not entry.is_symlink() \
                    and now - entry.stat().st_mtime > _STALE_TEMP_FILE_S:
                entry.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write one file through a temporary name in the same folder, then rename it into place."""
    path = Path(path)
    _check_writable(path.parent)
    _remove_stale_temp_files(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=STAGING_PREFIX, dir=path.parent)
    except OSError as exc:
        raise _disk_error(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _disk_error(exc, path) from exc
        raise
