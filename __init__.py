# SPDX-License-Identifier: GPL-3.0-or-later
"""Image to 3D: a Blender extension that turns a photo and a text prompt into a textured mesh.

This file only registers classes. Nothing is imported at module level: the Blender-side modules load in
register(), and the backend (torch and friends) only when a job starts, so enabling the extension is
instant and the package can be imported where bpy is absent (the GPU test machine).
"""


def _modules():
    from . import operators, panels, properties

    return (properties, operators, panels)


def register() -> None:
    for module in _modules():
        module.register()


def unregister() -> None:
    for module in reversed(_modules()):
        module.unregister()
