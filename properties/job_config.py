"""Plain data that crosses from Blender into a worker thread: no bpy here, no bpy objects inside."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..backend.choices import DEFAULT_DEVICE, DEFAULT_METHOD, DEFAULT_SAM, DEFAULT_SEGMENTER
from ..backend.generate.request import GenerateRequest
from ..backend.segment.sam3_config import Sam3Options


@dataclass(frozen=True)
class AddonOptions:
    """The add-on preferences as plain data. Defaults are what a fresh install uses."""

    device: str = DEFAULT_DEVICE  # backend.choices.DEVICES
    model_source: str = "hf_cache"  # hf_cache | local
    local_model_dirs: dict[str, str] = field(default_factory=dict)  # family → folder (backend.models.catalog)
    sam_variant: str = DEFAULT_SAM  # backend.choices.SAM_VARIANT_CHOICES
    half_precision: bool = True  # fp16 on CUDA only
    keep_models_loaded: bool = True
    output_dir: str = ""  # "" → a fresh folder under the system temp folder per job
    online_access: bool = False  # bpy.app.online_access at the time the job was built
    python_packages_dir: str = ""  # an environment's site-packages added to sys.path at job start ("" → none)
    accept_sam3_license: bool = False  # the one-time consent to SAM 3's licence: its weights may be downloaded
    hf_token: str = field(default="", repr=False, compare=False)  # for gated weights; "" → the stored login


@dataclass(frozen=True)
class JobConfig:
    """Everything one segment or generate job needs, read from ``scene.image_to_3d`` and the preferences.

    The generation settings are the backend's own request (backend.api.GenerateRequest, torch-free); its
    ``out_dir`` is filled in when a job starts. The rest is what only the add-on needs."""

    request: GenerateRequest  # photo, first prompt, method, preset, seed, mode, SAM variant, device, half precision
    prompts: tuple[str, ...]  # one per non-empty line of the prompt text; may be empty for RGBA cut-outs
    make_preview_plane: bool
    options: AddonOptions
    photo_match: bool = True  # generate: add a camera that sees the object as the photo did
    mask_path: str | None = None  # generate: a hand-corrected mask (PNG) of the first prompt, used instead of
    #                               segmenting (one object only)

    @classmethod
    def build(cls, image_path: str, prompts: tuple[str, ...], mode: str, preset: str, seed: int,
              options: AddonOptions, method: str = DEFAULT_METHOD, segmenter: str = DEFAULT_SEGMENTER,
              **addon_only) -> JobConfig:
        """``image_path``: an absolute path of a readable photo. Raises BadInputError for an unusable seed, an
        unknown method (backend.choices.METHODS) or unusable SAM 3 options."""
        request = GenerateRequest(image_path=image_path, prompt=prompts[0] if prompts else None, out_dir="",
                                  preset=preset, seed=seed, mode=mode, method=method, sam_variant=options.sam_variant,
                                  device=options.device, half=options.half_precision, segmenter=segmenter,
                                  sam3=Sam3Options(accept_license=options.accept_sam3_license,
                                                   hf_token=options.hf_token or None))
        return cls(request=request, prompts=tuple(prompts), options=options, **addon_only)

    @property
    def prompt(self) -> str | None:
        """The first prompt: the one a single-object job uses (several prompts make several objects)."""
        return self.request.prompt

    @property
    def image_path(self) -> str:
        return self.request.image_path

    @property
    def mode(self) -> str:
        return self.request.mode

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def preset(self) -> str:
        return self.request.preset

    @property
    def seed(self) -> int:
        return self.request.seed


def split_prompts(text: str) -> tuple[str, ...]:
    """One prompt per line; blank lines and surrounding spaces dropped."""
    return tuple(line.strip() for line in text.splitlines() if line.strip())


# The add-on's top-level package: "image_to_3d" from a checkout, "bl_ext.<repo>.image_to_3d" in Blender.
ADDON_PACKAGE = (__package__ or "image_to_3d").rpartition(".")[0] or "image_to_3d"
