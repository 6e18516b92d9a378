"""The sidebar tab "Image to 3D": photo, prompts, options, Segment / Generate, progress, mask preview."""

import bpy

from ..operators import job_runner


class IMAGE_TO_3D_PT_main(bpy.types.Panel):
    bl_label = "Image to 3D"
    bl_idname = "IMAGE_TO_3D_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Image to 3D"

    def draw(self, context):
        settings = context.scene.image_to_3d
        layout = self.layout
        job = job_runner.current_job()

        col = layout.column(align=True)
        col.label(text="Photo")
        col.template_ID(settings, "image", open="image.open")
        if settings.image is None:
            col.prop(settings, "image_path", text="")

        col = layout.column(align=True)
        col.label(text="Prompt (one per line)")
        col.prop(settings, "prompt", text="")
        col.prop(settings, "prompt_text", text="Text")

        col = layout.column()
        col.prop(settings, "segmenter")
        col.prop(settings, "mode")
        col.prop(settings, "preset")
        col.prop(settings, "seed")
        col.prop(settings, "make_preview_plane")
        col.prop(settings, "photo_match")

        row = layout.row(align=True)
        row.enabled = job is None
        row.operator("image_to_3d.segment", icon="SELECT_SUBTRACT")
        row.operator("image_to_3d.generate", icon="MESH_MONKEY")

        if job is not None:
            draw_progress(layout, settings)
            layout.operator("image_to_3d.cancel", icon="CANCEL")
        elif settings.last_message:
            layout.label(text=settings.last_message, icon="INFO")
        if settings.last_error:
            box = layout.box()
            for index, line in enumerate(wrap(settings.last_error, 48)):
                box.label(text=line, icon="ERROR" if index == 0 else "BLANK1")
        if not getattr(bpy.app, "online_access", True):
            layout.label(text="Online access is off: models must be cached", icon="INTERNET_OFFLINE")

        preview = settings.preview_image
        if preview is not None:
            box = layout.box()
            box.label(text=preview.name, icon="IMAGE_DATA")
            icon = preview.preview or preview.preview_ensure()  # generated once, then cached by Blender
            if icon is not None:
                box.template_icon(icon_value=icon.icon_id, scale=8.0)
            else:
                box.template_ID_preview(settings, "preview_image", hide_buttons=True)


def draw_progress(layout, settings) -> None:
    """A progress bar with the stage's name (a slider on Blenders without ``layout.progress``)."""
    text = f"{settings.stage} {settings.progress:.0%}"
    if hasattr(layout, "progress"):
        layout.progress(factor=settings.progress, type="BAR", text=text)
    else:
        layout.prop(settings, "progress", text=settings.stage, slider=True)


def wrap(text: str, width: int) -> list[str]:
    """Split a one-line error into label-sized lines at spaces."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines


class IMAGE_TO_3D_PT_mask_correction(bpy.types.Panel):
    """Positive / negative points on the photo that refine the first prompt's mask (SAM, with the mask as prompt)."""

    bl_label = "Mask Correction"
    bl_idname = "IMAGE_TO_3D_PT_mask_correction"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Image to 3D"
    bl_parent_id = "IMAGE_TO_3D_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        settings = context.scene.image_to_3d
        layout = self.layout
        layout.label(text="Pixels from the photo's top-left corner")
        for index, point in enumerate(settings.mask_points):
            row = layout.row(align=True)
            row.prop(point, "positive", text="", icon="ADD" if point.positive else "REMOVE", toggle=True)
            row.prop(point, "x")
            row.prop(point, "y")
            row.operator("image_to_3d.mask_point_remove", text="", icon="X").index = index
        row = layout.row(align=True)
        row.operator("image_to_3d.mask_point_add", text="Object", icon="ADD").positive = True
        row.operator("image_to_3d.mask_point_add", text="Not Object", icon="REMOVE").positive = False
        row.operator("image_to_3d.mask_point_remove", text="", icon="TRASH").index = -1
        layout.label(text="Or click them: Image Editor > Image > Click Mask Points", icon="INFO")
        row = layout.row()
        row.enabled = job_runner.current_job() is None and len(settings.mask_points) > 0
        row.operator("image_to_3d.correct_mask", icon="BRUSH_DATA")
        if settings.corrected_mask_path:
            layout.label(text="Generate uses the corrected mask", icon="CHECKMARK")


class IMAGE_TO_3D_PT_history(bpy.types.Panel):
    """The last jobs (from history.json in the output folder): thumbnail, prompt, time, status, actions."""

    bl_label = "History"
    bl_idname = "IMAGE_TO_3D_PT_history"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Image to 3D"
    bl_parent_id = "IMAGE_TO_3D_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw_header(self, context):
        self.layout.operator("image_to_3d.history_refresh", text="", icon="FILE_REFRESH", emboss=False)

    def draw(self, context):
        settings = context.scene.image_to_3d
        layout = self.layout
        if not settings.history:
            layout.label(text="No jobs yet (or press refresh)")
        idle = job_runner.current_job() is None
        for index, item in enumerate(settings.history):
            box = layout.box()
            row = box.row()
            thumbnail = item.thumbnail.preview if item.thumbnail is not None else None
            if thumbnail is not None:
                row.template_icon(icon_value=thumbnail.icon_id, scale=3.0)
            col = row.column(align=True)
            col.label(text=item.prompt or "(cut-out)")
            col.label(text=f"{item.finished_at}  seed {item.seed}")
            icon = {"done": "CHECKMARK", "cancelled": "CANCEL"}.get(item.status, "ERROR")
            col.label(text=item.status, icon=icon)
            row = box.row(align=True)
            row.operator("image_to_3d.history_reimport", text="Re-import", icon="IMPORT").index = index
            sub = row.row(align=True)
            sub.enabled = idle
            sub.operator("image_to_3d.history_rerun", text="New Seed", icon="FILE_REFRESH").index = index
            row.operator("image_to_3d.history_open_folder", text="", icon="FILE_FOLDER").index = index
