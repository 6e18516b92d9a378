"""The Models section of the add-on preferences: each model the chosen settings need, its size, licence and
state, with Download (through the worker, with progress), Delete and Use a local folder."""

from __future__ import annotations

import bpy

from ..backend.models.cache_state import CACHED, LOCAL_FOLDER, MISSING, model_state
from ..backend.models.catalog import models_needed
from .text_fit import BOX_BORDER_PX, PREFERENCES_TEXT_PX, draw_wrapped

STATE_ICONS = {CACHED: "CHECKMARK", MISSING: "ERROR", LOCAL_FOLDER: "FILE_FOLDER"}
FOLDER_PROPERTIES = {"clipseg": "clipseg_dir", "sam": "sam_dir", "zero123": "zero123_dir", "triposr": "triposr_dir"}


def size_text(size_mb: int) -> str:
    return f"{size_mb / 1000:.1f} GB" if size_mb >= 1000 else f"{size_mb} MB"


def local_folder_of(prefs, family: str) -> str:
    """The folder standing in for ``family``, where local folders are chosen; "" otherwise."""
    name = FOLDER_PROPERTIES.get(family)
    if prefs.model_source != "local" or name is None:
        return ""
    value = getattr(prefs, name)
    return bpy.path.abspath(value) if value else ""


def needed_cards(context):
    settings = context.scene.image_to_3d if context.scene is not None else None
    method = settings.method if settings is not None else "dreamgaussian"
    segmenter = settings.segmenter if settings is not None else "clipseg-sam"
    prefs = context.preferences.addons[__package__.rpartition(".")[0]].preferences
    return models_needed(method, segmenter, prefs.sam_variant)


def draw_models(layout, prefs, context) -> None:
    from ..operators import job_runner

    box = layout.box()
    box.label(text="Models", icon="PACKAGE")
    online = bool(getattr(bpy.app, "online_access", True))
    if not online:
        draw_wrapped(box, "Online access is off (Preferences → System → Network): Download is unavailable; "
                     "use local folders or models already cached.", icon="INTERNET_OFFLINE",
                     width_px=PREFERENCES_TEXT_PX - BOX_BORDER_PX)
    job = job_runner.current_job()
    download = job.download_key if job is not None else None
    for card in needed_cards(context):
        state = model_state(card, local_folder_of(prefs, card.family))
        col = box.column(align=True)
        col.label(text=card.label, icon=STATE_ICONS[state])
        row = col.row()
        row.label(text=f"{size_text(card.size_mb)} · {card.licence} · {state}", icon="BLANK1")
        sub = row.row(align=True)
        sub.enabled = online and state == MISSING and job_runner.current_job() is None
        sub.operator("image_to_3d.model_download", text="", icon="IMPORT").key = card.key
        sub = row.row(align=True)
        sub.enabled = state == CACHED and job_runner.current_job() is None
        sub.operator("image_to_3d.model_delete", text="", icon="TRASH").key = card.key
        sub = row.row(align=True)
        sub.enabled = card.family in FOLDER_PROPERTIES
        sub.operator("image_to_3d.model_use_folder", text="", icon="FILE_FOLDER").key = card.key
        if download == card.key:
            progress = context.scene.image_to_3d.progress
            if hasattr(box, "progress"):
                box.progress(factor=progress, type="BAR", text=job.message or "Starting")
            else:
                box.label(text=job.message or "Starting", icon="IMPORT")
    box.label(text="Buttons: Download, Delete, Use a local folder (hover for details)", icon="INFO")
