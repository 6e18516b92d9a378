"""The N-panel (View3D sidebar, tab "Image to 3D") and add-on preferences."""

import bpy

from .game_ready_panel import IMAGE_TO_3D_PT_game_ready
from .main_panel import IMAGE_TO_3D_PT_history, IMAGE_TO_3D_PT_main, IMAGE_TO_3D_PT_mask_correction
from .preferences import ImageTo3DPreferences
from .sam3_panel import IMAGE_TO_3D_PT_sam3_instances

classes = (ImageTo3DPreferences, IMAGE_TO_3D_PT_main, IMAGE_TO_3D_PT_sam3_instances, IMAGE_TO_3D_PT_mask_correction,
           IMAGE_TO_3D_PT_game_ready, IMAGE_TO_3D_PT_history)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
