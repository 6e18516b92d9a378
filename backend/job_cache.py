"""Resumable jobs: the mask and the stage-1 Gaussians are kept in a folder keyed by a hash of the inputs
and the settings that produced them, so re-running the same job reuses them (``--force`` redoes them).

Layout: ``<cache root>/jobs/<key>/mask.png`` and ``<cache root>/jobs/<key>/gaussians.safetensors``, where the
root is ``$IMAGE_TO_3D_CACHE``, else the platform's per-user cache folder (``$XDG_CACHE_HOME/image_to_3d``,
``~/.cache/image_to_3d`` on Linux). Entries are written atomically, so an interrupted job never leaves a half
entry that a later job trusts.

The cache is only an optimisation, so it never fails a job: a root that cannot be used (a file, read-only, a
symlink or a folder of another user) is noted once on stderr and the job runs without it; an entry that
reads but makes no sense (an empty mask, NaN or no Gaussians, a decompression bomb) is noted, discarded and
rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .atomic_output import write_bytes_atomic
from .errors import ImageTo3DError, one_line
from .gaussians import Gaussians
from .private_dirs import private_folder, user_cache_dir

CACHE_ENV = "IMAGE_TO_3D_CACHE"


def _note(text: str) -> None:
    """One line on stderr: the job goes on, but the user should know why it is slower than expected."""
    print(f"note: {one_line(text)}", file=sys.stderr)


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return user_cache_dir()


def _canonical(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # fields declared compare=False do not change a result (e.g. a download token): not part of a key
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value) if f.compare}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "value") and not isinstance(value, (int, float, str, bool)):  # enums
        return value.value
    return value


def job_key(*parts: Any) -> str:
    """A short stable hash of plain values and (nested) dataclasses."""
    blob = json.dumps(_canonical(list(parts)), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def file_digest(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class JobCache:
    """Reads and writes the cached intermediates of one job; switches itself off when its folder is unusable."""

    def __init__(self, root: Path | None = None):
        self.root = (root or cache_root()) / "jobs"
        self.enabled = True

    def _entry(self, key: str) -> Path | None:
        """The entry's folder (not created), or None when the cache is off."""
        if self.enabled:
            try:
                private_folder(self.root.parent)
                private_folder(self.root)
            except ImageTo3DError as exc:
                self._disable(str(exc))
        return self.root / key if self.enabled else None

    def _disable(self, reason: str) -> None:
        if self.enabled:
            _note(f"job cache unusable ({reason}); running without it")
        self.enabled = False

    def _discard(self, path: Path, why: str) -> None:
        _note(f"discarded a damaged job-cache entry {path} ({why}); rebuilding it")
        try:
            path.unlink()
        except OSError:
            pass

    def _write(self, key: str, name: str, data: bytes) -> None:
        entry = self._entry(key)
        if entry is None:
            return
        try:
            private_folder(entry)
            write_bytes_atomic(entry / name, data)
        except (OSError, ImageTo3DError) as exc:
            self._disable(str(exc))

    def _existing(self, key: str, name: str) -> Path | None:
        entry = self._entry(key)
        try:
            return entry / name if entry is not None and (entry / name).is_file() else None
        except OSError:
            return None

    # Masks: bool [H, W] stored as 8-bit PNG 0/255.
    def load_mask(self, key: str) -> np.ndarray | None:
        path = self._existing(key, "mask.png")
        if path is None:
            return None
        import warnings

        from PIL import Image

        from .images import MAX_IMAGE_PIXELS

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # bounded below, by our own limit
                with Image.open(path) as img:
                    if img.size[0] * img.size[1] > MAX_IMAGE_PIXELS:  # no photo we accept has such a mask
                        raise ValueError(f"{img.size[0]}x{img.size[1]} px")
                    mask = np.asarray(img.convert("L")) > 127
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            self._discard(path, f"unreadable: {exc}"[:120])
            return None
        if not mask.any():  # segmentation never caches an empty mask: "nothing matched" is exit 3
            self._discard(path, "an empty mask")
            return None
        return mask

    def save_mask(self, key: str, mask: np.ndarray) -> None:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(mask.astype(np.uint8) * 255).save(buf, format="PNG")
        self._write(key, "mask.png", buf.getvalue())

    # Stage-1 Gaussians: safetensors, never pickle.
    def load_gaussians(self, key: str, device) -> Gaussians | None:
        path = self._existing(key, "gaussians.safetensors")
        if path is None:
            return None
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from .numeric_checks import NonFiniteError, require_finite

        try:
            tensors = load_file(str(path), device=str(device))
            gaussians = Gaussians(**{f: tensors[f] for f in ("means", "scales", "quats", "opacities", "colors")})
            if len(gaussians) == 0:
                raise ValueError("no Gaussians")
            require_finite("the cached Gaussians", *tensors.values())
        except (OSError, KeyError, ValueError, RuntimeError, SafetensorError, NonFiniteError) as exc:
            self._discard(path, str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__)
            return None
        return gaussians

    def save_gaussians(self, key: str, gaussians: Gaussians) -> None:
        from safetensors.torch import save

        tensors = {f.name: getattr(gaussians, f.name).detach().float().cpu().contiguous()
                   for f in dataclasses.fields(gaussians)}
        self._write(key, "gaussians.safetensors", save(tensors))
