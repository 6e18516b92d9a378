"""The generate job as the operator and the history buttons start it: one object, or one per prompt in a queue.

One prompt: the backend's ``generate``; the object comes in when the job ends. Several prompts (one per
line): ``generate_many`` segments the photo once, then builds the objects one after another; each comes in
as soon as it is finished (``Job.on_partial``), laid out side by side along X, so a cancel keeps the objects
already made. Either way, with *Photo match* on, each object gets a camera that sees it as the photo did,
and every finished, failed or cancelled job is noted in the output folder's history.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import bpy

from . import backend_jobs, job_runner, worker_client, worker_requests
from .datablock_guard import rolled_back_on_failure
from .job_history import HistoryEntry, now_text, record_job, sync_history_items

LAYOUT_MARGIN = 0.25  # metres between neighbouring objects of one photo (before scaling)


def make_generate_job(config, context, photo_name: str | None) -> job_runner.Job:
    """The job for ``config`` (JobConfig); ``photo_name`` is the photo's image datablock, if the user picked one."""
    if len(config.prompts) > 1:
        return _make_queue_job(config, context, photo_name)
    from .import_result import object_name_for

    out_dir = backend_jobs.job_out_dir(config.options, "generate", config.prompt)
    name = object_name_for(config.prompt, config.image_path)
    scene_name = context.scene.name

    def bring_in(result) -> None:
        bring_in_object(result.glb_path, name, config, photo_name, photo_match_of(result))
        push_undo_step(f"Image to 3D: {name}")

    def on_finish(stage: str) -> None:
        note_in_history(config, out_dir, config.prompt, stage, scene_name)

    if worker_client.runs_in_worker(context):
        return worker_client.make_worker_job(
            context, "generate", lambda request_id: worker_requests.generate_request(request_id, config, out_dir),
            worker_client.first_generated_object, bring_in, scene_name, on_finish=on_finish)
    return job_runner.Job(kind="generate", work=backend_jobs.build_generate_work(config, out_dir),
                          on_success=bring_in, on_finish=on_finish, scene_name=scene_name,
                          env=backend_jobs.job_environment(config.options))


def _make_queue_job(config, context, photo_name: str | None) -> job_runner.Job:
    from .import_result import object_name_for

    out_root = backend_jobs.job_out_dir(config.options, "generate", f"{len(config.prompts)} objects")
    scene_name = context.scene.name
    placed: list[str] = []  # names of the objects brought in so far, in order

    def bring_in_one(item) -> None:  # item: backend.generate.ObjectDone, on the main thread
        name = object_name_for(item.prompt, config.image_path)
        obj = bring_in_object(item.result.glb_path, name, config, photo_name, photo_match_of(item.result),
                              place=lambda new: place_beside(new, placed), scene_camera=not placed)
        placed.append(obj.name)
        note_in_history(config, item.result.out_dir, item.prompt, "done", scene_name)
        push_undo_step(f"Image to 3D: {name}")

    def on_finish(stage: str) -> None:
        if stage != "done":  # the queue stopped: note the objects it did not make
            rest = config.prompts[len(placed):]
            note_in_history(config, out_root, "; ".join(rest), stage, scene_name)

    if worker_client.runs_in_worker(context):
        return worker_client.make_worker_job(
            context, "generate", lambda request_id: worker_requests.generate_request(request_id, config, out_root),
            lambda outcome: outcome, lambda outcome: None, scene_name, on_partial=bring_in_one, on_finish=on_finish)
    job = job_runner.Job(kind="generate", work=lambda control: None, on_success=lambda result: None,
                         on_partial=bring_in_one, on_finish=on_finish, scene_name=scene_name,
                         env=backend_jobs.job_environment(config.options))
    job.work = backend_jobs.build_generate_many_work(config, out_root, job.deliver)
    return job


def bring_in_object(glb_path, name: str, config, photo_name: str | None, photo_match, place=None,
                    scene_camera: bool = True):
    """Import ``glb_path`` as ``name`` at the cursor (clear of other objects), move it with ``place(obj)`` if
    given, add its photo-match camera when asked and ``photo_match`` ((crop, image_size) or None) is known,
    finish it for games when the scene asks (operators/game_ready.py), and frame it. All or nothing."""
    from .game_ready import follow_geometry, make_game_ready
    from .import_result import import_generated_model
    from .placement import frame_in_view, place_clear_of_others

    context = bpy.context
    settings = context.scene.image_to_3d
    camera = None
    with rolled_back_on_failure(context.view_layer):
        obj = import_generated_model(glb_path, name, context)
        if place is not None:
            place(obj)
            place_clear_of_others(obj, context)
            context.view_layer.update()
        if config.photo_match and photo_match is not None:
            camera = add_matched_camera(obj, photo_name, config.image_path, photo_match, scene_camera, context)
        game_ready = settings.game_ready.to_config()
        if game_ready is not None:
            result = make_game_ready(obj, game_ready, context)
            if camera is not None:
                follow_geometry(camera, result.geometry_change)
            settings.result_note = f"{name}: " + ", ".join(result.notes)
    if frame_new_objects(context):
        frame_in_view(obj, context)
    return obj


def add_matched_camera(obj, photo_name, image_path: str, photo_match, scene_camera: bool, context):
    """The photo-match camera; notes in ``photo_match_note`` what it changed in the scene and how to undo it."""
    from .photo_match import add_photo_match_camera, photo_datablock

    crop, image_size = photo_match
    scene = context.scene
    camera_before = scene.camera
    size_before = (scene.render.resolution_x, scene.render.resolution_y)
    camera = add_photo_match_camera(obj, photo_datablock(photo_name, image_path), crop, image_size, context)
    if not scene_camera and camera_before is not None:
        scene.camera = camera_before
    scene.image_to_3d.photo_match_note = describe_photo_match(
        camera.name, camera_before.name if camera_before is not None and scene.camera == camera else None,
        size_before, (scene.render.resolution_x, scene.render.resolution_y))
    return camera


def describe_photo_match(camera: str, replaced_camera: str | None, size_before: tuple[int, int],
                         size_after: tuple[int, int]) -> str:
    """What photo match changed, for the panel (it wraps the text): camera, render size, how to undo."""
    parts = [f"Added camera '{camera}'"]
    if replaced_camera is not None:
        parts.append(f"made it the scene camera (was '{replaced_camera}')")
    if size_before != size_after:
        parts.append(f"render size {size_after[0]} x {size_after[1]} (was {size_before[0]} x {size_before[1]})")
    return "; ".join(parts) + ". Ctrl+Z undoes it; turn off Photo match to keep the scene as it is."


def frame_new_objects(context) -> bool:
    """The preference "Frame new objects" (on where the add-on has no preferences entry)."""
    from ..properties.job_config import ADDON_PACKAGE

    entry = context.preferences.addons.get(ADDON_PACKAGE)
    return bool(getattr(entry.preferences, "frame_new_objects", True)) if entry is not None else True


def photo_match_of(result) -> tuple[tuple[float, float, float], tuple[int, int]] | None:
    """(reference crop, photo size) from a GenerationResult, or from its job.json; None where unknown."""
    crop, size = getattr(result, "reference_crop", None), getattr(result, "image_size", None)
    if crop is None or size is None:
        job_json = Path(getattr(result, "out_dir", "") or ".") / "job.json"
        return photo_match_in_folder(job_json.parent) if job_json.is_file() else None
    return tuple(crop), tuple(size)


def photo_match_in_folder(out_dir) -> tuple[tuple[float, float, float], tuple[int, int]] | None:
    try:
        job = json.loads((Path(out_dir) / "job.json").read_text(encoding="utf-8"))
        return tuple(float(v) for v in job["reference_crop"]), tuple(int(v) for v in job["image_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def place_beside(obj, placed: list[str]) -> None:
    """Move ``obj`` along X so its bounding box starts LAYOUT_MARGIN after the last placed object's."""
    previous = bpy.data.objects.get(placed[-1]) if placed else None
    if previous is None:
        return
    bpy.context.view_layer.update()
    previous_right = max((previous.matrix_world @ _vector(corner)).x for corner in previous.bound_box)
    own_left = min((obj.matrix_world @ _vector(corner)).x for corner in obj.bound_box)
    obj.location.x += previous_right + LAYOUT_MARGIN - own_left


def _vector(corner):
    from mathutils import Vector

    return Vector(corner)


def note_in_history(config, out_dir, prompt: str | None, status: str, scene_name: str) -> None:
    """Add the job to history.json in the output folder and refresh the panel's list."""
    entry = HistoryEntry(out_dir=str(out_dir), prompt=prompt or "", image_path=config.image_path, status=status,
                         finished_at=now_text(), seed=config.seed, preset=config.preset, mode=config.mode,
                         method=config.method)
    entries = record_job(backend_jobs.output_root(config.options), entry)
    scene = bpy.data.scenes.get(scene_name) or bpy.context.scene
    sync_history_items(scene.image_to_3d, entries, load_thumbnails=status == "done")  # a failure adds no images


def push_undo_step(message: str) -> None:
    """One undo step for what a job brought in (undo does not exist in background mode)."""
    if bpy.app.background:
        return
    from .import_result import window_override

    with bpy.context.temp_override(**window_override(bpy.context)):
        bpy.ops.ed.undo_push(message=message)
