"""``scene.image_to_3d``: what the user chose for the next job, the status the panel shows, and ``to_config()``."""

import os
from pathlib import Path

import bpy

from ..backend import choices
from .artist_items import ImageTo3DMaskPoint
from .game_ready_settings import ImageTo3DGameReady
from .job_config import ADDON_PACKAGE, AddonOptions, JobConfig, split_prompts
from .sam3_items import ImageTo3DInstanceItem
from .session_state import runtime_string, session_of


class ImageTo3DSettings(bpy.types.PropertyGroup):
    """What the user chose for the next job, and the status the panel shows."""

    image_path: bpy.props.StringProperty(name="Photo", subtype="FILE_PATH",
                                         description="Photo file; ignored when an image datablock is picked")
    image: bpy.props.PointerProperty(name="Loaded image", type=bpy.types.Image,
                                     description="Use an image already loaded in Blender instead of a file")
    prompt: bpy.props.StringProperty(
        name="Prompt", description="What to take out of the photo; several prompts one per line")
    prompt_text: bpy.props.PointerProperty(
        name="Prompt text", type=bpy.types.Text,
        description="A text datablock with one prompt per line (overrides the prompt field)")
    mode: bpy.props.EnumProperty(
        name="Mode",
        items=choices.enum_items(choices.SEGMENTATION_MODES),
        default=choices.DEFAULT_SEGMENTATION_MODE,
    )
    segmenter: bpy.props.EnumProperty(
        name="Segmenter", description="Which model turns the prompt into a mask",
        items=choices.enum_items(choices.SEGMENTERS),
        default=choices.DEFAULT_SEGMENTER,
    )
    preset: bpy.props.EnumProperty(
        name="Preset",
        items=choices.enum_items(choices.PRESETS),
        default=choices.DEFAULT_PRESET,
    )
    method: bpy.props.EnumProperty(
        name="Method",
        items=choices.enum_items(choices.METHODS),
        default=choices.DEFAULT_METHOD,
    )
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0)
    make_preview_plane: bpy.props.BoolProperty(
        name="Preview plane", default=False,
        description="After segmenting, add a plane showing the cut-out with its alpha")
    photo_match: bpy.props.BoolProperty(
        name="Photo match camera", default=True,
        description="After Generate, add a camera that sees the object as the photo did, the photo behind it")
    preview_image: bpy.props.PointerProperty(name="Mask preview", type=bpy.types.Image)
    segment_dir: bpy.props.StringProperty(name="Last segmentation", subtype="DIR_PATH",
                                          description="Folder of the last Segment job's masks")
    segment_masks: bpy.props.StringProperty(
        name="Last segmentation's masks", description="JSON: each prompt of the last Segment job → its mask file")
    mask_points: bpy.props.CollectionProperty(type=ImageTo3DMaskPoint, name="Mask points")
    corrected_mask_path: bpy.props.StringProperty(name="Corrected mask", subtype="FILE_PATH")
    corrected_mask_for: bpy.props.StringProperty(
        name="Corrected mask is for", description="Photo path and prompt the corrected mask belongs to")
    sam3_instances: bpy.props.CollectionProperty(
        type=ImageTo3DInstanceItem, name="SAM 3 instances",
        description="What the last SAM 3 Segment found for the first prompt, best first (files saved by the backend)")
    sam3_instances_for: bpy.props.StringProperty(
        name="SAM 3 instances are for", description="Photo path and prompt the SAM 3 instances belong to")
    sam3_instance_chosen: bpy.props.IntProperty(
        name="Chosen instance", default=1, min=0, description="The instance that is the object; 0: all of them")
    game_ready: bpy.props.PointerProperty(type=ImageTo3DGameReady, name="Game-ready")
    stage: bpy.props.StringProperty(name="Stage")
    progress: bpy.props.FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR")
    last_message: runtime_string("last_message", "What the last job said (this session only)", "Message")
    last_error: runtime_string("last_error", "The last job's error, full text (this session only)", "Error")
    photo_match_note: runtime_string(
        "photo_match_note", "What the last photo match changed in the scene (this session only)", "Photo match")
    result_note: runtime_string("result_note", "What game-ready did to the last object (this session only)",
                                "Game-ready")
    last_exit_code: bpy.props.IntProperty(name="Exit code", description="0 done, else the documented exit codes (docs/design.md)")

    @property
    def history(self):
        """The job history: on the window manager, outside undo and the .blend (properties/session_state.py)."""
        return session_of().history

    def prompt_lines(self) -> tuple[str, ...]:
        text = self.prompt_text.as_string() if self.prompt_text is not None else self.prompt
        return split_prompts(text)

    def to_config(self, context=None) -> JobConfig:
        """The one place Blender properties become plain data for a job (raises BadInputError)."""
        context = context or bpy.context
        image_path = resolve_photo_path(self)
        prompts = self.prompt_lines()
        return JobConfig.build(
            image_path,
            prompts,
            mode=self.mode,
            segmenter=self.segmenter,
            preset=self.preset,
            method=self.method,
            seed=int(self.seed),
            make_preview_plane=bool(self.make_preview_plane),
            options=read_addon_options(context),
            photo_match=bool(self.photo_match),
            mask_path=self.corrected_mask_matching(image_path, prompts[0] if prompts else ""),
        )

    def corrected_mask_matching(self, image_path: str, prompt: str) -> str | None:
        """The corrected mask's file if it was made for this photo and prompt, else None."""
        path = self.corrected_mask_path
        if path and self.corrected_mask_for == corrected_mask_key(image_path, prompt) and os.path.isfile(path):
            return path
        return None


def corrected_mask_key(image_path: str, prompt: str) -> str:
    return f"{os.path.abspath(image_path)}\n{prompt}"


def read_addon_options(context) -> AddonOptions:
    """The add-on preferences as data; defaults where the add-on was registered without an entry in them."""
    entry = context.preferences.addons.get(ADDON_PACKAGE)
    online = bool(getattr(bpy.app, "online_access", True))
    if entry is None or entry.preferences is None:
        return AddonOptions(online_access=online)
    return entry.preferences.to_options(online_access=online)


def photo_copies_folder() -> Path:
    """Where copies of images that exist only inside Blender go for the worker to read: ``photo-copies/`` in the
    per-user data folder, private (0700); BadInputError (exit 2) when it cannot be ours (a planted link)."""
    from ..backend.private_dirs import private_folder, user_data_dir

    return private_folder(user_data_dir() / "photo-copies")


def resolve_photo_path(settings: ImageTo3DSettings) -> str:
    """An absolute path the worker can read: the picked image's file, a saved copy of it, or the path field."""
    from ..backend.errors import BadInputError

    image = settings.image
    if image is not None:
        on_disk = bpy.path.abspath(image.filepath) if image.filepath else ""
        if on_disk and os.path.isfile(on_disk):
            return os.path.abspath(on_disk)
        # Packed, generated or edited in memory: the worker gets a copy (written here, on the main thread), one
        # file per image in one private folder, rewritten at each press (a temp folder per press piled up).
        copy = str(photo_copies_folder() / (bpy.path.clean_name(image.name) + ".png"))
        try:
            image.save(filepath=copy, save_copy=True)
        except RuntimeError as exc:
            raise BadInputError(f"could not read the image '{image.name}': {exc}") from None
        return copy
    if not settings.image_path.strip():
        raise BadInputError("no photo chosen: pick an image file or a loaded image")
    return os.path.abspath(bpy.path.abspath(settings.image_path))
