"""bpy operators: segment, generate, cancel, backend set-up; the job runner (worker process + queues)."""

import bpy

from . import job_runner
from .artist_operators import classes as artist_classes
from .backend_setup import classes as backend_setup_classes
from .check_packages import IMAGE_TO_3D_OT_check_packages
from .job_operators import IMAGE_TO_3D_OT_cancel, IMAGE_TO_3D_OT_generate, IMAGE_TO_3D_OT_segment
from .model_manager import classes as model_manager_classes
from .panel_helpers import classes as panel_helper_classes
from .sam3_instances import IMAGE_TO_3D_OT_choose_instance

classes = (IMAGE_TO_3D_OT_segment, IMAGE_TO_3D_OT_generate, IMAGE_TO_3D_OT_cancel, IMAGE_TO_3D_OT_check_packages,
           *artist_classes, IMAGE_TO_3D_OT_choose_instance, *backend_setup_classes, *model_manager_classes,
           *panel_helper_classes)


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
