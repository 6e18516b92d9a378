"""Small operators behind the sidebar's wording: the error's Details popup, the prompts' Text datablock and
"Open mask in Image Editor"."""

from __future__ import annotations

import bpy

PROMPTS_TEXT_NAME = "Image to 3D prompts"
DETAILS_WIDTH_PX = 420  # the popup's width at UI scale 1; its text wraps to this less the margins


class IMAGE_TO_3D_OT_error_details(bpy.types.Operator):
    """Show the whole error and what to do about it"""

    bl_idname = "image_to_3d.error_details"
    bl_label = "Details"
    bl_options = {"INTERNAL"}

    def invoke(self, context, event):
        return context.window_manager.invoke_popup(self, width=DETAILS_WIDTH_PX)

    def draw(self, context):
        from ..panels.job_messages import details_text
        from ..panels.text_fit import draw_wrapped

        settings = context.scene.image_to_3d
        self.layout.label(text="What went wrong", icon="ERROR")
        draw_wrapped(self.layout, details_text(settings.last_exit_code, settings.last_error),
                     width_px=DETAILS_WIDTH_PX - 30)

    def execute(self, context):
        return {"FINISHED"}


class IMAGE_TO_3D_OT_edit_prompts(bpy.types.Operator):
    """Type several prompts, one object per line, in a text block (made now, with the current prompt in it)"""

    bl_idname = "image_to_3d.edit_prompts"
    bl_label = "Several Objects…"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        settings = context.scene.image_to_3d
        text = settings.prompt_text or bpy.data.texts.get(PROMPTS_TEXT_NAME)
        if text is None:
            text = bpy.data.texts.new(PROMPTS_TEXT_NAME)
            text.write((settings.prompt.strip() + "\n") if settings.prompt.strip() else "")
        settings.prompt_text = text
        editor = _area_of_type(context, "TEXT_EDITOR")
        if editor is not None:
            editor.spaces.active.text = text
        else:
            self.report({"INFO"}, f"Open '{text.name}' in a Text Editor: one object per line")
        return {"FINISHED"}


class IMAGE_TO_3D_OT_single_prompt(bpy.types.Operator):
    """Back to one prompt (the text block stays in the file)"""

    bl_idname = "image_to_3d.single_prompt"
    bl_label = "One Object"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        settings = context.scene.image_to_3d
        lines = settings.prompt_lines()
        settings.prompt_text = None
        if lines:
            settings.prompt = lines[0]
        return {"FINISHED"}


class IMAGE_TO_3D_OT_open_mask(bpy.types.Operator):
    """Show the mask preview in an Image Editor (the largest one open, else a new window)"""

    bl_idname = "image_to_3d.open_mask"
    bl_label = "Open in Image Editor"
    bl_options = {"REGISTER"}

    def execute(self, context):
        image = context.scene.image_to_3d.preview_image
        if image is None:
            self.report({"ERROR"}, "no mask yet: press Segment first")
            return {"CANCELLED"}
        area = _area_of_type(context, "IMAGE_EDITOR")
        if area is None:
            bpy.ops.wm.window_new()
            area = context.window_manager.windows[-1].screen.areas[0]
            area.type = "IMAGE_EDITOR"
        area.spaces.active.image = image
        return {"FINISHED"}


def _area_of_type(context, kind: str):
    """The largest area of ``kind`` in any window, or None."""
    areas = [area for window in (context.window_manager.windows if context.window_manager else ())
             for area in window.screen.areas if area.type == kind]
    return max(areas, key=lambda area: area.width * area.height) if areas else None


classes = (IMAGE_TO_3D_OT_error_details, IMAGE_TO_3D_OT_edit_prompts, IMAGE_TO_3D_OT_single_prompt,
           IMAGE_TO_3D_OT_open_mask)
