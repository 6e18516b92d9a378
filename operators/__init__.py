"""bpy operators: segment, generate, cancel; the job runner (thread + queue)."""

import bpy

from . import job_runner
from .check_packages import IMAGE_TO_3D_OT_check_packages
from .job_operators import IMAGE_TO_3D_OT_cancel, IMAGE_TO_3D_OT_generate, IMAGE_TO_3D_OT_segment

classes = (IMAGE_TO_3D_OT_segment, IMAGE_TO_3D_OT_generate, IMAGE_TO_3D_OT_cancel, IMAGE_TO_3D_OT_check_packages)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    job_runner.unregister()
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
