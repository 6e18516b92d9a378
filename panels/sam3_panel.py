"""The "SAM 3 Instances" sub-panel: what a SAM 3 Segment found for the first prompt, numbered with scores; each
button makes that instance the object (the mask Generate uses), "All of them" takes their union."""

import bpy

from ..operators import job_runner
from ..operators.sam3_instances import ALL_INSTANCES
from ..properties.job_config import ADDON_PACKAGE


class IMAGE_TO_3D_PT_sam3_instances(bpy.types.Panel):
    bl_label = "SAM 3 Instances"
    bl_idname = "IMAGE_TO_3D_PT_sam3_instances"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Image to 3D"
    bl_parent_id = "IMAGE_TO_3D_PT_main"

    @classmethod
    def poll(cls, context):
        settings = context.scene.image_to_3d
        return settings.segmenter == "sam3" or len(settings.sam3_instances) > 0

    def draw(self, context):
        settings = context.scene.image_to_3d
        layout = self.layout
        entry = context.preferences.addons.get(ADDON_PACKAGE)
        if entry is not None and entry.preferences is not None and not entry.preferences.accept_sam3_license:
            layout.label(text="Accept SAM 3's licence in the add-on preferences", icon="ERROR")
        if not settings.sam3_instances:
            layout.label(text="Segment to list the instances SAM 3 finds")
            return
        col = layout.column(align=True)
        col.enabled = job_runner.current_job() is None
        chosen = settings.sam3_instance_chosen
        for item in settings.sam3_instances:
            col.operator("image_to_3d.choose_instance", text=f"{item.rank}.  score {item.score:.2f}",
                         depress=item.rank == chosen).rank = item.rank
        col.operator("image_to_3d.choose_instance", text="All of them",
                     depress=chosen == ALL_INSTANCES).rank = ALL_INSTANCES
