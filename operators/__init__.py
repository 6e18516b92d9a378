"""bpy operators: segment, generate, cancel; the job runner (thread + queue)."""

import bpy

from . import job_runner
from .artist_operators import classes as artist_classes
from .check_packages import IMAGE_TO_3D_OT_check_packages
from .job_operators import IMAGE_TO_3D_OT_cancel, IMAGE_TO_3D_OT_generate, IMAGE_TO_3D_OT_segment
from .sam3_instances import IMAGE_TO_3D_OT_choose_instance

classes = (IMAGE_TO_3D_OT_segment, IMAGE_TO_3D_OT_generate, IMAGE_TO_3D_OT_cancel, IMAGE_TO_3D_OT_check_packages,
           *artist_classes, IMAGE_TO_3D_OT_choose_instance)


def _image_menu(self, context) -> None:
    self.layout.separator()
    self.layout.operator("image_to_3d.mask_point_click", icon="RESTRICT_SELECT_OFF")


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.IMAGE_MT_image.append(_image_menu)  # Image Editor > Image > Click Mask Points


def unregister() -> None:
    job_runner.unregister()
    bpy.types.IMAGE_MT_image.remove(_image_menu)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
