"""Add-on preferences: which Python runs the backend worker, device, where the models come from, precision,
memory, output folder."""

import sys

import bpy

from ..backend import choices
from ..backend.models.catalog import MODEL_REPOS, SAM3_LICENSE, SAM3_MODEL_PAGE, SAM3_REPO_ID
from ..properties.job_config import ADDON_PACKAGE, AddonOptions
from .models_panel import draw_models
from .text_fit import PREFERENCES_TEXT_PX, draw_wrapped


class ImageTo3DPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    device: bpy.props.EnumProperty(
        name="Device",
        items=[("auto", "Auto", "CUDA when torch sees a GPU, else CPU"), ("cpu", "CPU", "Slow but always there"),
               ("cuda", "CUDA", "An NVIDIA GPU")],
        default="auto",
    )
    model_source: bpy.props.EnumProperty(
        name="Models from",
        items=[("hf_cache", "Hugging Face cache", "Downloaded once into the Hugging Face cache"),
               ("local", "Local folders", "One folder per model, already on this computer")],
        default="hf_cache",
    )
    clipseg_dir: bpy.props.StringProperty(name="CLIPSeg folder", subtype="DIR_PATH",
                                          description=f"Files of {MODEL_REPOS['clipseg']}")
    sam_dir: bpy.props.StringProperty(name="SAM folder", subtype="DIR_PATH",
                                      description="Segment Anything checkpoint(s)")
    zero123_dir: bpy.props.StringProperty(name="Zero123 folder", subtype="DIR_PATH",
                                          description=f"Files of {MODEL_REPOS['zero123']} (diffusers layout)")
    triposr_dir: bpy.props.StringProperty(name="TripoSR folder", subtype="DIR_PATH",
                                          description=f"Files of {MODEL_REPOS['triposr']} (the Quick methods)")
    sam_variant: bpy.props.EnumProperty(
        name="SAM variant",
        items=choices.enum_items(choices.SAM_VARIANT_CHOICES),
        default=choices.DEFAULT_SAM,
    )
    half_precision: bpy.props.BoolProperty(name="Half precision", default=True,
                                           description="fp16 on CUDA: half the GPU memory (no effect on CPU)")
    keep_models_loaded: bpy.props.BoolProperty(name="Keep models loaded", default=True,
                                               description="Faster next job; frees memory only when off")
    output_dir: bpy.props.StringProperty(name="Output folder", subtype="DIR_PATH",
                                         description="Where jobs write their files (empty: jobs/ in your per-user data folder)")
    python_packages_dir: bpy.props.StringProperty(
        name="Python packages folder", subtype="DIR_PATH",
        description="site-packages of an environment with torch (CUDA) and friends, for Blender's Python as the "
                    "backend (added after Blender's own packages); for the extension build without torch")
    accept_sam3_license: bpy.props.BoolProperty(
        name="I accept the SAM License for SAM 3",
        description=f"SAM 3's weights ({SAM3_REPO_ID}) are under Meta's {SAM3_LICENSE}, not an open-source "
                    f"licence; read it on {SAM3_MODEL_PAGE}. Tick once to allow their download",
        default=False)
    hf_token: bpy.props.StringProperty(
        name="Hugging Face token", subtype="PASSWORD",
        description="For SAM 3's gated weights (request access on the model page first); empty: the token of "
                    "`hf auth login` or $HF_TOKEN. Passed to the download only, never written to job files")
    package_report: bpy.props.StringProperty(name="Package check", description="What Check Python packages found")
    worker_python: bpy.props.EnumProperty(
        name="Backend Python",
        description="Which Python runs the backend worker process (torch never loads into Blender itself)",
        items=[("managed", "Managed environment", "Created by 'Set up backend' with Blender's Python and pip "
                                                   "(needs online access once)"),
               ("existing", "An existing Python", "A Python interpreter that already has torch and the backend's "
                                                  "packages (requirements-worker.txt)"),
               ("blender", "Blender's Python", "Blender's own Python with the packages the extension bundles "
                                               "(the offline builds)")],
        default="managed",
    )
    existing_python: bpy.props.StringProperty(name="Python interpreter", subtype="FILE_PATH",
                                              description="e.g. C:\\envs\\img3d\\python.exe or ~/envs/img3d/bin/python")
    extra_index_url: bpy.props.StringProperty(
        name="Extra package index",
        description="Where 'Set up backend' also looks for packages: on Windows the PyTorch CUDA index (PyPI's "
                    "Windows torch is CPU-only); empty on Linux (PyPI's torch is CUDA) and macOS",
        default="https://download.pytorch.org/whl/cu130" if sys.platform == "win32" else "",
    )
    setup_report: bpy.props.StringProperty(name="Set-up", description="What Set up backend is doing or did")
    check_report: bpy.props.StringProperty(name="Backend check", description="What Check backend found")
    frame_new_objects: bpy.props.BoolProperty(
        name="Frame new objects", default=True,
        description="After Generate, the 3D view you worked in zooms to the new object")
    debug_in_process_jobs: bpy.props.BoolProperty(
        name="Run jobs inside Blender (debugging)", default=False,
        description="The old in-process thread instead of the worker process: torch loads into Blender, the "
                    "interface slows down and a crash takes Blender with it. For debugging only")

    def to_options(self, online_access: bool) -> AddonOptions:
        dirs = {"clipseg": self.clipseg_dir, "sam": self.sam_dir, "zero123": self.zero123_dir,
                "triposr": self.triposr_dir}
        return AddonOptions(
            device=self.device,
            model_source=self.model_source,
            local_model_dirs={k: bpy.path.abspath(v) for k, v in dirs.items() if v} if self.model_source == "local"
            else {},
            sam_variant=self.sam_variant,
            half_precision=self.half_precision,
            keep_models_loaded=self.keep_models_loaded,
            output_dir=bpy.path.abspath(self.output_dir) if self.output_dir else "",
            online_access=online_access,
            python_packages_dir=bpy.path.abspath(self.python_packages_dir) if self.python_packages_dir else "",
            accept_sam3_license=self.accept_sam3_license,
            hf_token=self.hf_token.strip(),
        )

    def draw(self, context):
        layout = self.layout
        self.draw_backend(layout.box())
        layout.prop(self, "device")
        layout.prop(self, "sam_variant")
        row = layout.row()
        row.prop(self, "half_precision")
        row.prop(self, "keep_models_loaded")
        layout.prop(self, "output_dir")
        layout.prop(self, "frame_new_objects")
        layout.prop(self, "model_source")
        if self.model_source == "local":
            for name in ("clipseg_dir", "sam_dir", "zero123_dir", "triposr_dir"):
                layout.prop(self, name)
        for line in model_access_hint(self.model_source).split("\n"):
            draw_wrapped(layout, line, icon="INFO", width_px=PREFERENCES_TEXT_PX)
        draw_models(layout, self, context)
        draw_sam3_access(layout, self)
        if self.worker_python == "blender" or self.debug_in_process_jobs:
            layout.prop(self, "python_packages_dir")
            layout.operator("image_to_3d.check_packages")
            for line in self.package_report.split("\n") if self.package_report else ():
                draw_wrapped(layout, line, icon="ERROR" if line.startswith("Missing") else "CHECKMARK",
                             width_px=PREFERENCES_TEXT_PX)
        layout.prop(self, "debug_in_process_jobs")

    def draw_backend(self, layout) -> None:
        layout.prop(self, "worker_python")
        if self.worker_python == "managed":
            layout.prop(self, "extra_index_url")
            row = layout.row()
            row.operator("image_to_3d.setup_backend", icon="IMPORT")
            if not getattr(bpy.app, "online_access", True):
                draw_wrapped(layout, "Online access is off: allow it in Preferences > System > Network to set up, "
                             "or choose 'An existing Python' that already has the packages.", icon="INFO",
                             width_px=PREFERENCES_TEXT_PX)
            if self.setup_report:
                draw_wrapped(layout, self.setup_report, icon="CHECKMARK" if "ready" in self.setup_report else "TIME",
                             width_px=PREFERENCES_TEXT_PX)
        elif self.worker_python == "existing":
            layout.prop(self, "existing_python")
        layout.operator("image_to_3d.check_backend", icon="CONSOLE")
        if self.check_report:
            draw_wrapped(layout, self.check_report, icon="ERROR" if "problem" in self.check_report
                         or "not" in self.check_report else "CHECKMARK", width_px=PREFERENCES_TEXT_PX)


SAM3_NOTICE = (f"SAM 3 (the \"SAM 3 concepts\" segmenter) uses {SAM3_REPO_ID}, under Meta's {SAM3_LICENSE}.\n"
               "The repository is gated: request access on its page, then log in or give a token.\n"
               "Nothing is downloaded until you accept the licence below.")


def draw_sam3_access(layout, prefs) -> None:
    """The licence notice, the model page, the one-time consent and the token."""
    box = layout.box()
    box.label(text="SAM 3 (optional segmenter)", icon="INFO")
    for line in SAM3_NOTICE.split("\n"):
        draw_wrapped(box, line, width_px=PREFERENCES_TEXT_PX)
    box.operator("wm.url_open", text="Open the SAM 3 model page and licence", icon="URL").url = SAM3_MODEL_PAGE
    box.prop(prefs, "accept_sam3_license")
    box.prop(prefs, "hf_token")


def model_access_hint(model_source: str) -> str:
    """What the user should know about where weights come from, given Blender's online-access setting."""
    online = bool(getattr(bpy.app, "online_access", True))
    if model_source == "local":
        return "Models are read from the folders above; nothing is downloaded."
    if online:
        return "Missing models are downloaded once into the Hugging Face cache."
    return ("Online access is off: models must already be in the Hugging Face cache.\n"
            "Enable Preferences > System > Network > Allow Online Access, or choose local folders.")
