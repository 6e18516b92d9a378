"""Add-on preferences: device, where the models come from, precision, memory, output folder, Python packages."""

import bpy

from ..backend import choices
from ..backend.models.catalog import MODEL_REPOS, SAM3_LICENSE, SAM3_MODEL_PAGE, SAM3_REPO_ID
from ..properties.job_config import ADDON_PACKAGE, AddonOptions


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
        description="site-packages of a Python 3.11 environment with torch (CUDA) and friends, added to "
                    "Python's search path when a job starts; for the extension build without torch")
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

    def to_options(self, online_access: bool) -> AddonOptions:
        dirs = {"clipseg": self.clipseg_dir, "sam": self.sam_dir, "zero123": self.zero123_dir}
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
        layout.prop(self, "device")
        layout.prop(self, "sam_variant")
        row = layout.row()
        row.prop(self, "half_precision")
        row.prop(self, "keep_models_loaded")
        layout.prop(self, "output_dir")
        layout.prop(self, "model_source")
        if self.model_source == "local":
            for name in ("clipseg_dir", "sam_dir", "zero123_dir"):
                layout.prop(self, name)
        for line in model_access_hint(self.model_source).split("\n"):
            layout.label(text=line, icon="INFO")
        draw_sam3_access(layout, self)
        layout.prop(self, "python_packages_dir")
        layout.operator("image_to_3d.check_packages")
        for line in self.package_report.split("\n") if self.package_report else ():
            layout.label(text=line, icon="ERROR" if line.startswith("Missing") else "CHECKMARK")


SAM3_NOTICE = (f"SAM 3 (the \"SAM 3 concepts\" segmenter) uses {SAM3_REPO_ID}, under Meta's {SAM3_LICENSE}.\n"
               "The repository is gated: request access on its page, then log in or give a token.\n"
               "Nothing is downloaded until you accept the licence below.")


def draw_sam3_access(layout, prefs) -> None:
    """The licence notice, the model page, the one-time consent and the token."""
    box = layout.box()
    box.label(text="SAM 3 (optional segmenter)", icon="INFO")
    for line in SAM3_NOTICE.split("\n"):
        box.label(text=line)
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
