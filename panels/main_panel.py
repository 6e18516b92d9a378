"""The sidebar tab "Image to 3D": photo, prompts, options, Segment / Generate, progress, mask preview."""

import bpy

from ..backend.stage_labels import stage_label, step_text, time_text
from ..operators import job_runner
from ..operators.job_history import FINISHED_STATUS
from .job_messages import short_line
from .text_fit import BOX_BORDER_PX, SIDEBAR_TEXT_PX, draw_wrapped, text_width, wrap_to_width


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
        draw_photo(layout, settings)
        draw_prompts(layout, settings)
        draw_options(layout, settings)
        row = layout.row(align=True)
        row.scale_y = 1.3
        row.enabled = job is None
        row.operator("image_to_3d.segment", icon="SELECT_SUBTRACT")
        row.operator("image_to_3d.generate", icon="MESH_MONKEY")
        draw_status(layout, settings, job)
        draw_mask_preview(layout, settings)


def draw_photo(layout, settings) -> None:
    """One labelled photo input: an image datablock (Open loads a file); a path set by a script shows too."""
    col = layout.column(align=True)
    col.label(text="Photo", icon="IMAGE_DATA")
    col.template_ID(settings, "image", open="image.open")
    if settings.image is None and settings.image_path:
        col.prop(settings, "image_path", text="File")


def draw_prompts(layout, settings) -> None:
    """One prompt in a field, or several (one object per line) in a Text datablock made on demand."""
    col = layout.column(align=True)
    if settings.prompt_text is None:
        col.label(text="What to take out", icon="OUTLINER_OB_FONT")
        col.prop(settings, "prompt", text="")
        col.operator("image_to_3d.edit_prompts", icon="TEXT")
        return
    count = len(settings.prompt_lines())
    col.label(text=f"Objects, one per line: {count}", icon="TEXT")
    row = col.row(align=True)
    row.prop(settings, "prompt_text", text="")
    row.operator("image_to_3d.edit_prompts", text="", icon="GREASEPENCIL")
    row.operator("image_to_3d.single_prompt", text="", icon="X")


def draw_options(layout, settings) -> None:
    """Each menu under its own label, full width: the sidebar is too narrow for label and value side by side."""
    col = layout.column(align=True)
    col.label(text="Finder")
    col.prop(settings, "segmenter", text="")
    if settings.segmenter == "clipseg-sam":
        col.label(text="Cut-out")
        col.prop(settings, "mode", text="")
    col.label(text="Method")
    col.prop(settings, "method", text="")
    col.label(text="Preset")
    col.prop(settings, "preset", text="")
    col = layout.column()
    col.prop(settings, "seed")
    col.prop(settings, "make_preview_plane")
    col.prop(settings, "photo_match")
    if settings.preset == "preview" and settings.method != "quick":
        draw_wrapped(layout, "Preview: a rough shape to try the workflow. With Best on a CPU it still takes "
                     "minutes; Quick is faster", icon="INFO")


def draw_status(layout, settings, job) -> None:
    """While a job runs: its stage in plain words, step i of n, elapsed and time left, Cancel. After it:
    the short error with Details, or the last message; what photo match and game-ready changed."""
    if job is not None:
        draw_progress(layout, settings, job)
        layout.operator("image_to_3d.cancel", icon="CANCEL")
        return
    if settings.last_error:
        col = layout.column(align=True)
        col.alert = True
        col.label(text=short_line(settings.last_exit_code, settings.last_error), icon="ERROR")
        col.operator("image_to_3d.error_details", text="Details", icon="QUESTION")
    elif settings.last_message:
        draw_wrapped(layout, settings.last_message, icon="INFO")
    if settings.result_note:
        draw_wrapped(layout, settings.result_note, icon="MOD_DECIM")
    if settings.photo_match_note:
        draw_wrapped(layout, settings.photo_match_note, icon="CAMERA_DATA")
    if not getattr(bpy.app, "online_access", True):
        draw_wrapped(layout, "Online access is off: only models already on this computer are used",
                     icon="INTERNET_OFFLINE")


def draw_progress(layout, settings, job) -> None:
    """A progress bar named by the stage (backend/stage_labels.py), and step i of n, elapsed, time left."""
    label = job.label or stage_label(settings.stage)
    if job.cancelled:
        label = "Cancelling…"
    if hasattr(layout, "progress"):
        layout.progress(factor=settings.progress, type="BAR", text=fit_text(label, SIDEBAR_TEXT_PX - 16))
    else:
        layout.prop(settings, "progress", text=fit_text(label, SIDEBAR_TEXT_PX - 60), slider=True)
    col = layout.column(align=True)
    if step_text(job.step, job.steps):
        col.label(text=step_text(job.step, job.steps), icon="SEQUENCE")
    col.label(text=time_text(job.elapsed_s, job.eta_s), icon="TIME")
    if job.download_key and job.message:
        draw_wrapped(layout, job.message, icon="IMPORT")


def draw_mask_preview(layout, settings) -> None:
    preview = settings.preview_image
    if preview is None:
        return
    box = layout.box()
    draw_wrapped(box, preview.name, icon="IMAGE_DATA", width_px=SIDEBAR_TEXT_PX - BOX_BORDER_PX)
    icon = preview.preview or preview.preview_ensure()  # generated once, then cached by Blender
    if icon is not None:
        box.template_icon(icon_value=icon.icon_id, scale=8.0)
    else:
        box.template_ID_preview(settings, "preview_image", hide_buttons=True)
    box.operator("image_to_3d.open_mask", icon="WINDOW")


def fit_text(text: str, width_px: float) -> str:
    """``text`` cut with "…" to fit ``width_px`` (a progress bar's text cannot wrap)."""
    if text_width(text) <= width_px:
        return text
    return wrap_to_width(text, width_px - text_width("…"))[0].rstrip("…") + "…"


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
        draw_wrapped(layout, "Pixels from the photo's top-left corner")
        for index, point in enumerate(settings.mask_points):
            row = layout.row(align=True)
            row.prop(point, "positive", text="", icon="ADD" if point.positive else "REMOVE", toggle=True)
            row.prop(point, "x")
            row.prop(point, "y")
            row.operator("image_to_3d.mask_point_remove", text="", icon="X").index = index
        col = layout.column(align=True)  # stacked: side by side, "Not Object" would not fit the sidebar
        col.operator("image_to_3d.mask_point_add", text="Add Object Point", icon="ADD").positive = True
        col.operator("image_to_3d.mask_point_add", text="Add Not-Object Point", icon="REMOVE").positive = False
        col.operator("image_to_3d.mask_point_remove", text="Remove All Points", icon="TRASH").index = -1
        draw_wrapped(layout, "Or click them: Image Editor > Image > Click Mask Points", icon="INFO")
        row = layout.row()
        row.enabled = job_runner.current_job() is None and len(settings.mask_points) > 0
        row.operator("image_to_3d.correct_mask", icon="BRUSH_DATA")
        if settings.corrected_mask_path:
            draw_wrapped(layout, "Generate uses the corrected mask", icon="CHECKMARK")


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
            text_px = HISTORY_TEXT_PX
            if thumbnail is not None:
                row.template_icon(icon_value=thumbnail.icon_id, scale=3.0)
                text_px -= HISTORY_THUMBNAIL_PX
            col = row.column(align=True)
            col.label(text=fit_text(item.prompt or "(cut-out)", text_px))
            col.label(text=fit_text(f"{item.finished_at[5:16]} · seed {item.seed}", text_px))
            icon = {FINISHED_STATUS: "CHECKMARK", "cancelled": "CANCEL"}.get(item.status, "ERROR")
            col.label(text=STATUS_WORDS.get(item.status, item.status), icon=icon)
            row = box.row(align=True)
            sub = row.row(align=True)
            sub.enabled = item.status == FINISHED_STATUS  # a failed or cancelled job left no model to import
            sub.operator("image_to_3d.history_reimport", text="Re-import").index = index  # no icon: fits
            sub = row.row(align=True)
            sub.enabled = idle
            sub.operator("image_to_3d.history_rerun", text="New Seed").index = index
            row.operator("image_to_3d.history_open_folder", text="", icon="FILE_FOLDER").index = index


STATUS_WORDS = {FINISHED_STATUS: "Finished", "failed": "Failed", "cancelled": "Cancelled"}
HISTORY_THUMBNAIL_PX = 64  # template_icon at scale 3 (20 px a unit) and its gap
HISTORY_TEXT_PX = SIDEBAR_TEXT_PX - BOX_BORDER_PX
