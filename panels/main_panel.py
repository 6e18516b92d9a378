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
        col.prop(settings, "mode")
        col.prop(settings, "preset")
        col.prop(settings, "seed")
        col.prop(settings, "make_preview_plane")

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
