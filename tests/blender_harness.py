"""Loading the extension from the checkout into the bpy module, as Blender would load the package."""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from pathlib import Path

PACKAGE = "image_to_3d"


def import_addon_from_checkout(repo_root: Path):
    """Import the repository root as the package ``image_to_3d`` (through a symlink in a temp folder)."""
    if PACKAGE in sys.modules:
        return sys.modules[PACKAGE]
    link_dir = Path(tempfile.mkdtemp(prefix="image_to_3d_addon_"))
    os.symlink(repo_root, link_dir / PACKAGE, target_is_directory=True)
    sys.path.insert(0, str(link_dir))
    return importlib.import_module(PACKAGE)


def registered_class_names() -> set[str]:
    """Names of every bpy class this add-on could register, as found on ``bpy.types``."""
    import bpy

    return {name for name in dir(bpy.types) if name.upper().startswith("IMAGE_TO_3D")}
