"""The Models section's buttons: Download (a worker job with byte progress), Delete, Use a local folder."""

from __future__ import annotations

import bpy

from ..properties.job_config import ADDON_PACKAGE


def _card(key: str):
    from ..backend.models.catalog import MODEL_CARDS

    return MODEL_CARDS.get(key)


def _prefs(context):
    entry = context.preferences.addons.get(ADDON_PACKAGE)
    return entry.preferences if entry is not None else None


class IMAGE_TO_3D_OT_model_delete(bpy.types.Operator):
    """Delete this model's files from the Hugging Face cache (a later job or Download fetches them again)"""

    bl_idname = "image_to_3d.model_delete"
    bl_label = "Delete Model"
    bl_options = {"REGISTER", "INTERNAL"}

    key: bpy.props.StringProperty()

    def invoke(self, context, event):
        return context.window_manager.invoke_confirm(self, event)

    def execute(self, context):
        from ..backend.models.cache_state import delete_cached_model

        card = _card(self.key)
        if card is None:
            self.report({"ERROR"}, f"unknown model {self.key!r}")
            return {"CANCELLED"}
        freed = delete_cached_model(card)
        self.report({"INFO"}, f"Deleted {card.label} ({freed / 1e9:.2f} GB freed)" if freed
                    else f"{card.label} was not in the cache")
        return {"FINISHED"}


class IMAGE_TO_3D_OT_model_use_folder(bpy.types.Operator):
    """Use a folder on this computer that holds this model's files (nothing is downloaded for it)"""

    bl_idname = "image_to_3d.model_use_folder"
    bl_label = "Use a Local Folder"
    bl_options = {"REGISTER", "INTERNAL"}

    key: bpy.props.StringProperty()
    directory: bpy.props.StringProperty(subtype="DIR_PATH")

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        from ..panels.models_panel import FOLDER_PROPERTIES

        card, prefs = _card(self.key), _prefs(context)
        if card is None or prefs is None or card.family not in FOLDER_PROPERTIES:
            self.report({"ERROR"}, f"no local folder can stand in for {self.key!r}")
            return {"CANCELLED"}
        setattr(prefs, FOLDER_PROPERTIES[card.family], self.directory)
        prefs.model_source = "local"
        return {"FINISHED"}


class IMAGE_TO_3D_OT_model_download(bpy.types.Operator):
    """Download this model into the Hugging Face cache now, in the backend worker, with progress"""

    bl_idname = "image_to_3d.model_download"
    bl_label = "Download Model"
    bl_options = {"REGISTER", "INTERNAL"}

    key: bpy.props.StringProperty()

    def execute(self, context):
        from .model_download import start_model_download

        card = _card(self.key)
        if card is None:
            self.report({"ERROR"}, f"unknown model {self.key!r}")
            return {"CANCELLED"}
        if not getattr(bpy.app, "online_access", True):
            self.report({"ERROR"}, "Online access is off: allow it in Preferences → System → Network")
            return {"CANCELLED"}
        try:
            start_model_download(card, context)
        except RuntimeError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


classes = (IMAGE_TO_3D_OT_model_delete, IMAGE_TO_3D_OT_model_use_folder, IMAGE_TO_3D_OT_model_download)
