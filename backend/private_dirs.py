"""Per-user folders for what the tool keeps between runs (job folders, the job cache, verified checksums).

Defaults never point at a place other users share (the issue-19 default was ``$TMPDIR/image_to_3d``, where
anyone could plant a symlink and receive our files). A folder we create is private (mode 0700); an existing
one is used only when it is a real folder (not a symlink) owned by the current user.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import BadInputError

APP_NAME = "image_to_3d"


def user_data_dir() -> Path:
    """The platform's per-user data folder for this tool (not created here)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = str(Path.home() / "Library" / "Application Support")
    else:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / APP_NAME


def user_cache_dir() -> Path:
    """The platform's per-user cache folder for this tool (not created here)."""
    if sys.platform == "win32":
        return user_data_dir() / "cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / APP_NAME
    return Path(os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")) / APP_NAME


def private_folder(path: str | os.PathLike) -> Path:
    """``path`` as an existing folder of ours: created (0700) if absent; BadInputError (exit 2) when it is a
    symlink, not a folder, or (POSIX) owned by another user — someone else could read or redirect our files."""
    import stat

    path = Path(path)
    try:
        if not (path.exists() or path.is_symlink()):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.lstat()
    except OSError as exc:
        raise BadInputError(f"cannot create folder {path}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(info.st_mode):
        raise BadInputError(f"{path} is a symbolic link: refusing to follow it (remove it, or choose a folder)")
    if not stat.S_ISDIR(info.st_mode):
        raise BadInputError(f"{path} is not a folder")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise BadInputError(f"{path} belongs to another user: refusing to write there (choose a folder)")
    return path
