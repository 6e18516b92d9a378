import bpy


class IMAGE_TO_3D_PT_main(bpy.types.Panel):
    bl_label = "Image to 3D"
    bl_idname = "IMAGE_TO_3D_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Image to 3D"

    def draw(self, context):
        settings = context.scene.image_to_3d
        layout = self.layout
        layout.prop(settings, "image_path")
        layout.prop(settings, "prompt")
        layout.prop(settings, "mode")
        layout.prop(settings, "preset")
        layout.prop(settings, "seed")
