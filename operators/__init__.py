"""bpy operators: segment, generate, cancel; the job runner (thread + queue)."""

import bpy

classes = ()


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
