"""Loading the extension from the checkout into the bpy module, as Blender would load the package."""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "image_to_3d"


def import_addon_from_checkout(repo_root: Path):
    """Import the repository root as the package ``image_to_3d``: the scripts' own loader
    (scripts/checkout_addon.py, a symlink in a temp folder, since the checkout may have any name)."""
    scripts = str(repo_root / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    from checkout_addon import import_addon

    return import_addon(repo_root)


def registered_class_names() -> set[str]:
    """Names of every bpy class this add-on could register, as found on ``bpy.types``."""
    import bpy

    return {name for name in dir(bpy.types) if name.upper().startswith("IMAGE_TO_3D")}
