"""image_to_3d.check_packages: which Python packages a job would find, shown in the add-on preferences."""

from __future__ import annotations

import bpy

from ..properties.job_config import ADDON_PACKAGE


class IMAGE_TO_3D_OT_check_packages(bpy.types.Operator):
    """Look for torch, CUDA and the other packages jobs need (in Blender and in the Python packages folder)"""

    bl_idname = "image_to_3d.check_packages"
    bl_label = "Check Python packages"
    bl_options = {"REGISTER", "INTERNAL"}

    def execute(self, context):
        from ..backend.environment_check import check_environment

        entry = context.preferences.addons.get(ADDON_PACKAGE)
        if entry is None or entry.preferences is None:
            self.report({"ERROR"}, "the Image to 3D preferences are not available")
            return {"CANCELLED"}
        prefs = entry.preferences
        folder = bpy.path.abspath(prefs.python_packages_dir) if prefs.python_packages_dir else ""
        try:
            report = check_environment(folder)
        except FileNotFoundError as exc:
            prefs.package_report = f"Missing: {exc}"
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        prefs.package_report = report.summary()
        level = {"WARNING"} if report.missing or not report.torch_cuda else {"INFO"}
        self.report(level, prefs.package_report.replace("\n", "; "))
        return {"FINISHED"}
