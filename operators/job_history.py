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


# what each field must hold (the panel's properties refuse anything else), read off HistoryEntry itself
_FIELD_TYPES = {f.name: {"str": str, "int": int}[f.type] for f in dataclasses.fields(HistoryEntry)}


def _entry_from(item) -> HistoryEntry | None:
    """One entry of the file, or None when it is damaged (not an object, a field missing or of the wrong type):
    the panel's properties would raise on a wrong type, so nothing unchecked gets that far."""
    if not isinstance(item, dict):
        return None
    values = {k: v for k, v in item.items() if k in _FIELD_TYPES}
    for name, kind in _FIELD_TYPES.items():
        value = values.get(name)
        if name not in values:
            continue
        if kind is int and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31):
            return None  # the panel's seed is a 32-bit int property
        if kind is str and (not isinstance(value, str) or "\0" in value):
            return None
    try:
        return HistoryEntry(**values)
    except TypeError:
        return None  # a required field missing (hand-edited file)


def read_history(output_root: str | os.PathLike) -> list[HistoryEntry]:
    """The entries, newest first; an absent or damaged file is an empty history, a damaged entry is skipped
    (the next :func:`record_job` writes the file again without it, so it heals)."""
    try:
        raw = json.loads(history_path(output_root).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return []
    jobs = raw.get("jobs") if isinstance(raw, dict) else None
    entries = [_entry_from(item) for item in jobs] if isinstance(jobs, list) else []
    return [entry for entry in entries if entry is not None]


def record_job(output_root: str | os.PathLike, entry: HistoryEntry, keep: int = HISTORY_LENGTH) -> list[HistoryEntry]:
    """Put ``entry`` first (replacing an older entry of the same folder), keep ``keep``, write atomically."""
    entries = [entry] + [e for e in read_history(output_root) if e.out_dir != entry.out_dir]
    entries = entries[:keep]
    path = history_path(output_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = json.dumps({"jobs": [dataclasses.asdict(e) for e in entries]}, indent=2, ensure_ascii=False)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(blob, encoding="utf-8")
        os.replace(temporary, path)  # replaces a planted link itself, never writes where it points
    except OSError:  # history is a convenience: a job never fails for it (e.g. history.json is a folder)
        temporary.unlink(missing_ok=True)
    return entries


def sync_history_items(settings, entries: list[HistoryEntry], load_thumbnails: bool = True) -> None:
    """Fill ``settings.history`` (the panel's copy) from ``entries``, thumbnails as image previews.

    Only finished jobs have a thumbnail. With ``load_thumbnails`` False (after a failed job) no image is added to
    the file: thumbnails already loaded are reused, the others stay empty until the next refresh."""
    import bpy

    settings.history.clear()
    for entry in entries:
        item = settings.history.add()
        for field in dataclasses.fields(HistoryEntry):
            try:
                setattr(item, field.name, getattr(entry, field.name))
            except (TypeError, ValueError, OverflowError):
                pass  # read_history checked the types; a value the property still refuses is left empty
        if entry.status != "done":
            continue
        image = _loaded_image(str(entry.thumbnail_path))
        if image is None and load_thumbnails and entry.thumbnail_path.is_file():
            try:
                image = bpy.data.images.load(str(entry.thumbnail_path), check_existing=True)
            except RuntimeError:
                continue
        if image is not None:
            image.preview_ensure()
            item.thumbnail = image


def _loaded_image(path: str):
    import bpy

    for image in bpy.data.images:
        if image.filepath and os.path.normpath(bpy.path.abspath(image.filepath)) == os.path.normpath(path):
            return image
    return None
