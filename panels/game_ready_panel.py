"""The "Game-Ready Output" sub-panel: what Generate does to the object after import (operators/game_ready.py)."""

import bpy

from .text_fit import draw_wrapped


class IMAGE_TO_3D_PT_game_ready(bpy.types.Panel):
    bl_label = "Game-Ready Output"
    bl_idname = "IMAGE_TO_3D_PT_game_ready"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Image to 3D"
    bl_parent_id = "IMAGE_TO_3D_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw_header(self, context):
        self.layout.prop(context.scene.image_to_3d.game_ready, "enabled", text="")

    def draw(self, context):
        game_ready = context.scene.image_to_3d.game_ready
        layout = self.layout
        layout.enabled = game_ready.enabled
        layout.prop(game_ready, "face_budget")
        layout.prop(game_ready, "quad_remesh")
        layout.prop(game_ready, "height_m")
        layout.prop(game_ready, "origin_at_base")
        col = layout.column(align=True)
        col.label(text="Up axis")
        col.prop(game_ready, "up_axis", text="")
        if game_ready.quad_remesh:
            draw_wrapped(layout, "Quads replace the mesh: its texture layout is lost", icon="INFO")
