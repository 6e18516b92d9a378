"""Operators of the artist workflow: mask-correction points and the correction job; the job history's buttons."""

from __future__ import annotations

import json
import os
from pathlib import Path

import bpy

from ..backend.choices import DEFAULT_METHOD, DEFAULT_PRESET, DEFAULT_SEGMENTATION_MODE
from . import backend_jobs, job_runner, worker_client, worker_requests
from .job_operators import _JobOperator

# --- mask correction -------------------------------------------------------------------------------------

class IMAGE_TO_3D_OT_mask_point_add(bpy.types.Operator):
    """Add a mask-correction point (edit its pixel in the list, or click it in the Image Editor)"""

    bl_idname = "image_to_3d.mask_point_add"
    bl_label = "Add Point"
    bl_options = {"REGISTER", "UNDO"}

    positive: bpy.props.BoolProperty(name="Object", default=True)
    x: bpy.props.IntProperty(name="X", min=0)
    y: bpy.props.IntProperty(name="Y", min=0)

    def execute(self, context):
        point = context.scene.image_to_3d.mask_points.add()
        point.x, point.y, point.positive = self.x, self.y, self.positive
        return {"FINISHED"}


class IMAGE_TO_3D_OT_mask_point_remove(bpy.types.Operator):
    """Remove a mask-correction point (all of them when the index is -1)"""

    bl_idname = "image_to_3d.mask_point_remove"
    bl_label = "Remove Point"
    bl_options = {"REGISTER", "UNDO"}

    index: bpy.props.IntProperty(default=-1)

    def execute(self, context):
        points = context.scene.image_to_3d.mask_points
        if self.index < 0:
            points.clear()
        elif self.index < len(points):
            points.remove(self.index)
        return {"FINISHED"}


def image_pixel_from_view(u: float, v: float, size: tuple[int, int]) -> tuple[int, int] | None:
    """Image Editor view coordinates (u right, v up, 0…1 over the image) → photo pixel (x right, y down)."""
    width, height = size
    x, y = int(u * width), int((1.0 - v) * height)
    return (x, y) if 0 <= x < width and 0 <= y < height else None


class IMAGE_TO_3D_OT_mask_point_click(bpy.types.Operator):
    """Click on the photo in the Image Editor: left click adds an object point, Shift or right click a
    not-object point; Enter or Esc ends"""

    bl_idname = "image_to_3d.mask_point_click"
    bl_label = "Click Mask Points"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        space = context.space_data
        return space is not None and space.type == "IMAGE_EDITOR" and space.image is not None

    def invoke(self, context, event):
        context.window_manager.modal_handler_add(self)
        context.workspace.status_text_set("Image to 3D: click = object, Shift/right click = not object, Esc = done")
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type in {"ESC", "RET"} and event.value == "PRESS":
            context.workspace.status_text_set(None)
            return {"FINISHED"}
        if event.type in {"LEFTMOUSE", "RIGHTMOUSE"} and event.value == "PRESS":
            region, space = context.region, context.space_data
            if region is None or region.type != "WINDOW" or space.image is None:
                return {"PASS_THROUGH"}
            u, v = region.view2d.region_to_view(event.mouse_region_x, event.mouse_region_y)
            pixel = image_pixel_from_view(u, v, tuple(space.image.size))
            if pixel is None:
                return {"PASS_THROUGH"}
            point = context.scene.image_to_3d.mask_points.add()
            point.x, point.y = pixel
            point.positive = event.type == "LEFTMOUSE" and not event.shift
            for area in context.screen.areas:
                area.tag_redraw()
            return {"RUNNING_MODAL"}
        return {"PASS_THROUGH"}


class IMAGE_TO_3D_OT_correct_mask(_JobOperator, bpy.types.Operator):
    """Refine the first prompt's mask with the points: SAM gets them together with the current mask"""

    bl_idname = "image_to_3d.correct_mask"
    bl_label = "Correct Mask"
    bl_options = {"REGISTER"}
    kind = "correct mask"

    def make_job(self, config, context) -> job_runner.Job:
        from ..backend.errors import BadInputError
        from ..properties.scene_settings import corrected_mask_key

        settings = context.scene.image_to_3d
        if not settings.mask_points:
            raise BadInputError("no correction points: add at least one point on the photo")
        mask_path = current_mask_path(settings, config)
        if mask_path is None:
            raise BadInputError("no mask to correct yet: press Segment first")
        # continuous pixel coordinates: a pixel's centre (see backend/segment/correction.py)
        points = [(p.x + 0.5, p.y + 0.5) for p in settings.mask_points]
        labels = [1 if p.positive else 0 for p in settings.mask_points]
        out_dir = backend_jobs.job_out_dir(config.options, "correct", config.prompt)
        scene_name, key = context.scene.name, corrected_mask_key(config.image_path, config.prompt or "")

        def bring_in(preview) -> None:
            from .generate_job import push_undo_step
            from .segment_images import load_segment_images

            scene = bpy.data.scenes.get(scene_name) or bpy.context.scene
            loaded = load_segment_images(preview, False)
            scene.image_to_3d.preview_image = next(iter(loaded.values()))["overlay"]
            scene.image_to_3d.corrected_mask_path = str(preview.prompts[0].mask_path)
            scene.image_to_3d.corrected_mask_for = key
            push_undo_step("Image to 3D: correct mask")

        if worker_client.runs_in_worker(context):
            return worker_client.make_worker_job(
                context, "correct mask", lambda request_id: worker_requests.correct_mask_request(
                    request_id, config, mask_path, points, labels, out_dir),
                worker_client.checked_segment_outcome, bring_in, scene_name)
        work = backend_jobs.build_correct_mask_work(config, mask_path, points, labels, out_dir)
        return job_runner.Job(kind="correct mask", work=work, on_success=bring_in, scene_name=scene_name,
                              env=backend_jobs.job_environment(config.options))


def current_mask_path(settings, config) -> str | None:
    """The mask a correction starts from: the last corrected one for this photo and prompt, else Segment's."""
    corrected = settings.corrected_mask_matching(config.image_path, config.prompt or "")
    if corrected:
        return corrected
    if not settings.segment_masks or not config.prompt:
        return None
    path = json.loads(settings.segment_masks).get(config.prompt)
    return path if path and Path(path).is_file() else None


# --- job history -----------------------------------------------------------------------------------------

def _history_entry(context, index: int):
    history = context.scene.image_to_3d.history
    return history[index] if 0 <= index < len(history) else None


class IMAGE_TO_3D_OT_history_refresh(bpy.types.Operator):
    """Read the job history from the output folder's history.json"""

    bl_idname = "image_to_3d.history_refresh"
    bl_label = "Refresh History"
    bl_options = {"REGISTER"}

    def execute(self, context):
        from ..properties.scene_settings import read_addon_options
        from .job_history import read_history, sync_history_items

        root = backend_jobs.output_root(read_addon_options(context))
        sync_history_items(context.scene.image_to_3d, read_history(root))
        return {"FINISHED"}


class IMAGE_TO_3D_OT_history_reimport(bpy.types.Operator):
    """Import this job's model again (with its photo-match camera when that option is on)"""

    bl_idname = "image_to_3d.history_reimport"
    bl_label = "Re-import"
    bl_options = {"REGISTER", "UNDO"}

    index: bpy.props.IntProperty(default=0)

    def execute(self, context):
        from ..backend.errors import ImageTo3DError
        from .generate_job import bring_in_object, photo_match_in_folder
        from .import_result import object_name_for
        from .job_history import FINISHED_STATUS

        item = _history_entry(context, self.index)
        if item is None:
            self.report({"ERROR"}, "no such history entry")
            return {"CANCELLED"}
        if item.status != FINISHED_STATUS:
            self.report({"ERROR"}, f"only finished jobs can be re-imported (this one {item.status})")
            return {"CANCELLED"}
        glb = Path(item.out_dir) / "model.glb"
        settings = context.scene.image_to_3d
        config = _entry_config(item, context, seed=item.seed)
        try:
            bring_in_object(glb, object_name_for(item.prompt or None, item.image_path), config, None,
                            photo_match_in_folder(item.out_dir))
        except (ImageTo3DError, RuntimeError) as exc:
            settings.last_error = str(exc)
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class IMAGE_TO_3D_OT_history_rerun(_JobOperator, bpy.types.Operator):
    """Generate this job again with the next seed, reusing its mask (segmentation is skipped)"""

    bl_idname = "image_to_3d.history_rerun"
    bl_label = "Re-run, New Seed"
    bl_options = {"REGISTER"}
    kind = "generate"

    index: bpy.props.IntProperty(default=0)

    def job_config(self, settings, context):
        # the entry, not the panel's current settings, says what to run
        from ..backend.errors import BadInputError

        item = _history_entry(context, self.index)
        if item is None or not Path(item.out_dir, "mask.png").is_file():
            raise BadInputError("this history entry cannot be re-run: its folder holds no mask.png")
        return _entry_config(item, context, seed=item.seed + 1)

    def make_job(self, config, context) -> job_runner.Job:
        from .generate_job import make_generate_job

        return make_generate_job(config, context, None)


def _entry_config(item, context, seed: int):
    """A JobConfig that repeats history ``item`` (its photo, prompt, method, preset, mode and mask) with ``seed``."""
    from ..properties.job_config import JobConfig
    from ..properties.scene_settings import read_addon_options

    mask = Path(item.out_dir) / "mask.png"
    return JobConfig.build(item.image_path, (item.prompt,), mode=item.mode or DEFAULT_SEGMENTATION_MODE,
                           preset=item.preset or DEFAULT_PRESET, method=item.method or DEFAULT_METHOD, seed=seed,
                           options=read_addon_options(context),
                           make_preview_plane=False, photo_match=context.scene.image_to_3d.photo_match,
                           mask_path=str(mask) if mask.is_file() else None)


class IMAGE_TO_3D_OT_history_open_folder(bpy.types.Operator):
    """Open this job's output folder in the file browser of the system"""

    bl_idname = "image_to_3d.history_open_folder"
    bl_label = "Open Folder"
    bl_options = {"REGISTER"}

    index: bpy.props.IntProperty(default=0)

    def execute(self, context):
        item = _history_entry(context, self.index)
        if item is None or not os.path.isdir(item.out_dir):
            self.report({"ERROR"}, "the job's folder no longer exists")
            return {"CANCELLED"}
        open_folder(item.out_dir)
        return {"FINISHED"}


def open_folder(path: str) -> None:
    """The system's file browser at ``path`` (a function of its own so tests can stand in for it)."""
    bpy.ops.wm.path_open(filepath=path)


classes = (IMAGE_TO_3D_OT_mask_point_add, IMAGE_TO_3D_OT_mask_point_remove, IMAGE_TO_3D_OT_mask_point_click,
           IMAGE_TO_3D_OT_correct_mask, IMAGE_TO_3D_OT_history_refresh, IMAGE_TO_3D_OT_history_reimport,
           IMAGE_TO_3D_OT_history_rerun, IMAGE_TO_3D_OT_history_open_folder)
