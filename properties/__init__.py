"""Scene properties ``scene.image_to_3d`` (docs/design.md §5) and their one ``to_config()``."""

import bpy

from .artist_items import ImageTo3DHistoryItem, ImageTo3DMaskPoint
from .game_ready_settings import ImageTo3DGameReady
from .sam3_items import ImageTo3DInstanceItem
from .scene_settings import ImageTo3DSettings
from .session_state import ImageTo3DSession, register_handlers, unregister_handlers

classes = (ImageTo3DMaskPoint, ImageTo3DHistoryItem, ImageTo3DInstanceItem, ImageTo3DGameReady, ImageTo3DSession,
           ImageTo3DSettings)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.image_to_3d = bpy.props.PointerProperty(type=ImageTo3DSettings)
    bpy.types.WindowManager.image_to_3d_session = bpy.props.PointerProperty(type=ImageTo3DSession)
    register_handlers()


def unregister() -> None:
    unregister_handlers()
    del bpy.types.WindowManager.image_to_3d_session
    del bpy.types.Scene.image_to_3d
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
