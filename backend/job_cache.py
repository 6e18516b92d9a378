"""Resumable jobs: the mask and the stage-1 Gaussians are kept in a folder keyed by a hash of the inputs
and the settings that produced them, so re-running the same job reuses them (``--force`` redoes them).

Layout: ``<cache root>/jobs/<key>/mask.png`` and ``<cache root>/jobs/<key>/gaussians.safetensors``, where the
root is ``$IMAGE_TO_3D_CACHE``, else ``$XDG_CACHE_HOME/image_to_3d``, else ``~/.cache/image_to_3d``.
Entries are written atomically, so an interrupted job never leaves a half entry that a later job trusts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .atomic_output import write_bytes_atomic
from .gaussians import Gaussians

CACHE_ENV = "IMAGE_TO_3D_CACHE"


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "image_to_3d"


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
    """Reads and writes the cached intermediates of one job."""

    def __init__(self, root: Path | None = None):
        self.root = (root or cache_root()) / "jobs"

    def _entry(self, key: str) -> Path:
        return self.root / key

    # Masks: bool [H, W] stored as 8-bit PNG 0/255.
    def load_mask(self, key: str) -> np.ndarray | None:
        path = self._entry(key) / "mask.png"
        if not path.is_file():
            return None
        from PIL import Image

        try:
            with Image.open(path) as img:
                return np.asarray(img.convert("L")) > 127
        except OSError:
            return None  # a damaged entry is ignored and rebuilt

    def save_mask(self, key: str, mask: np.ndarray) -> None:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(mask.astype(np.uint8) * 255).save(buf, format="PNG")
        self._entry(key).mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self._entry(key) / "mask.png", buf.getvalue())

    # Stage-1 Gaussians: safetensors, never pickle.
    def load_gaussians(self, key: str, device) -> Gaussians | None:
        path = self._entry(key) / "gaussians.safetensors"
        if not path.is_file():
            return None
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(path), device=str(device))
            return Gaussians(**{f: tensors[f] for f in ("means", "scales", "quats", "opacities", "colors")})
        except (OSError, KeyError, ValueError, RuntimeError, SafetensorError):
            return None  # a damaged entry is ignored and rebuilt

    def save_gaussians(self, key: str, gaussians: Gaussians) -> None:
        from safetensors.torch import save

        tensors = {f.name: getattr(gaussians, f.name).detach().float().cpu().contiguous()
                   for f in dataclasses.fields(gaussians)}
        self._entry(key).mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self._entry(key) / "gaussians.safetensors", save(tensors))
