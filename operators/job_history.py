"""The job history: the last generate jobs, kept in ``<output folder>/history.json`` so it outlives the .blend.

The file is the record; ``scene.image_to_3d.history`` is its copy for the panel (``sync_history_items``).
The JSON part imports no bpy, so it can be read and tested anywhere.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..backend.choices import DEFAULT_METHOD, DEFAULT_PRESET

HISTORY_FILE = "history.json"
HISTORY_LENGTH = 10  # entries kept (newest first)
FINISHED_STATUS = "done"  # the only status whose folder holds a model to re-import
THUMBNAIL_FILE = "reference.png"  # written by generate in each job folder: the cut-out the object was made from


@dataclass(frozen=True)
class HistoryEntry:
    out_dir: str  # the job's folder (model.glb, job.json, mask.png, reference.png …)
    prompt: str
    image_path: str
    status: str  # done | failed | cancelled
    finished_at: str  # local time, "YYYY-MM-DD HH:MM:SS"
    seed: int = 0
    preset: str = DEFAULT_PRESET
    mode: str = "fast"
    method: str = DEFAULT_METHOD  # entries written before the method choice existed were DreamGaussian jobs

    @property
    def thumbnail_path(self) -> Path:
        return Path(self.out_dir) / THUMBNAIL_FILE


def now_text() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def history_path(output_root: str | os.PathLike) -> Path:
    return Path(output_root) / HISTORY_FILE


def read_history(output_root: str | os.PathLike) -> list[HistoryEntry]:
    """The entries, newest first; an absent or damaged file is an empty history."""
    try:
        raw = json.loads(history_path(output_root).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    names = {f.name for f in dataclasses.fields(HistoryEntry)}
    entries = []
    for item in raw.get("jobs", []) if isinstance(raw, dict) else []:
        try:
            entries.append(HistoryEntry(**{k: v for k, v in item.items() if k in names}))
        except TypeError:
            continue  # an entry missing fields (hand-edited file): skipped
    return entries


def record_job(output_root: str | os.PathLike, entry: HistoryEntry, keep: int = HISTORY_LENGTH) -> list[HistoryEntry]:
    """Put ``entry`` first (replacing an older entry of the same folder), keep ``keep``, write atomically."""
    entries = [entry] + [e for e in read_history(output_root) if e.out_dir != entry.out_dir]
    entries = entries[:keep]
    path = history_path(output_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = json.dumps({"jobs": [dataclasses.asdict(e) for e in entries]}, indent=2, ensure_ascii=False)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(blob, encoding="utf-8")
    os.replace(temporary, path)
    return entries


def sync_history_items(settings, entries: list[HistoryEntry]) -> None:
    """Fill ``settings.history`` (the panel's copy) from ``entries``, thumbnails loaded as image previews."""
    import bpy

    settings.history.clear()
    for entry in entries:
        item = settings.history.add()
        for field in dataclasses.fields(HistoryEntry):
            setattr(item, field.name, getattr(entry, field.name))
        if entry.thumbnail_path.is_file():
            try:
                image = bpy.data.images.load(str(entry.thumbnail_path), check_existing=True)
            except RuntimeError:
                continue
            image.preview_ensure()
            item.thumbnail = image
