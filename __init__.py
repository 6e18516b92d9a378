# SPDX-License-Identifier: GPL-3.0-or-later
"""Image to 3D: a Blender extension that turns a photo and a text prompt into a textured mesh.

This file only registers classes. It imports no torch and no backend: the backend is imported when a
job starts, so enabling the extension is instant.
"""

from . import operators, panels, properties

_modules = (properties, operators, panels)


def register() -> None:
    for module in _modules:
        module.register()


def unregister() -> None:
    for module in reversed(_modules):
        module.unregister()
