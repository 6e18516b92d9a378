"""Load the extension from this checkout as the package ``image_to_3d`` (for scripts run outside Blender's
extension system: ``python scripts/….py`` with the bpy module, or ``blender -b --python scripts/….py``)."""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from pathlib import Path

PACKAGE = "image_to_3d"
REPO_ROOT = Path(__file__).resolve().parents[1]


def import_addon(repo_root: Path = REPO_ROOT):
    """The checkout imported as ``image_to_3d`` (a link in a temp folder, since the checkout may have any name)."""
    if PACKAGE in sys.modules:
        return sys.modules[PACKAGE]
    link_dir = Path(tempfile.mkdtemp(prefix="image_to_3d_addon_"))
    os.symlink(repo_root, link_dir / PACKAGE, target_is_directory=True)
    sys.path.insert(0, str(link_dir))
    return importlib.import_module(PACKAGE)


def ensure_registered() -> None:
    """Register the add-on unless an installed copy (or an earlier call) already did."""
    import bpy

    if hasattr(bpy.types, "IMAGE_TO_3D_OT_generate"):
        return
    import_addon().register()


def script_args(argv: list[str]) -> list[str]:
    """The script's own arguments: those after ``--`` (Blender's convention), else all but the program name."""
    return argv[argv.index("--") + 1:] if "--" in argv else argv[1:]
