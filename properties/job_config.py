"""Plain data that crosses from Blender into a worker thread: no bpy here, no bpy objects inside."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AddonOptions:
    """The add-on preferences as plain data. Defaults are what a fresh install uses."""

    device: str = "auto"  # auto | cpu | cuda
    model_source: str = "hf_cache"  # hf_cache | local
    local_model_dirs: dict[str, str] = field(default_factory=dict)  # family → folder (backend.models.catalog)
    sam_variant: str = "vit_h"  # vit_h | vit_l | vit_b
    half_precision: bool = True  # fp16 on CUDA only
    keep_models_loaded: bool = True
    output_dir: str = ""  # "" → a fresh folder under the system temp folder per job
    online_access: bool = False  # bpy.app.online_access at the time the job was built
    python_packages_dir: str = ""  # an environment's site-packages added to sys.path at job start ("" → none)


@dataclass(frozen=True)
class JobConfig:
    """Everything one segment or generate job needs, read from ``scene.image_to_3d`` and the preferences."""

    image_path: str  # absolute path of a readable photo
    prompts: tuple[str, ...]  # one per non-empty line of the prompt text; may be empty for RGBA cut-outs
    mode: str  # fast | paper
    preset: str  # draft | standard | high
    seed: int
    make_preview_plane: bool
    options: AddonOptions
    photo_match: bool = True  # generate: add a camera that sees the object as the photo did
    mask_path: str | None = None  # generate: a hand-corrected mask (PNG) of the first prompt, used instead of
    #                               segmenting (one object only)

    @property
    def prompt(self) -> str | None:
        """The first prompt: the one a single-object job uses (several prompts make several objects)."""
        return self.prompts[0] if self.prompts else None


def split_prompts(text: str) -> tuple[str, ...]:
    """One prompt per line; blank lines and surrounding spaces dropped."""
    return tuple(line.strip() for line in text.splitlines() if line.strip())


# The add-on's top-level package: "image_to_3d" from a checkout, "bl_ext.<repo>.image_to_3d" in Blender.
ADDON_PACKAGE = (__package__ or "image_to_3d").rpartition(".")[0] or "image_to_3d"
