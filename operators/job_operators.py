"""The three operators: image_to_3d.segment, image_to_3d.generate, image_to_3d.cancel.

Each reads ``scene.image_to_3d``, turns it into plain data with ``to_config()``, and hands a
``work(control)`` callable to the job runner. In the UI the operator returns at once and a timer brings the
result in; in background mode (``blender -b``, the bpy module) it waits for the job and returns FINISHED, or
CANCELLED with the one-line error in the report and in ``last_error``.
"""

from __future__ import annotations

import json

import bpy

from . import backend_jobs, job_runner, worker_client, worker_requests
from .generate_job import make_generate_job, push_undo_step
from .placement import remember_view


class _JobOperator:
    kind = ""

    def execute(self, context):
        from ..backend.errors import ImageTo3DError

        settings = context.scene.image_to_3d
        if job_runner.current_job() is not None:
            self.report({"ERROR"}, job_runner.BUSY_MESSAGE)
            return {"CANCELLED"}
        try:
            config = self.job_config(settings, context)
            if not worker_client.runs_in_worker(context):
                backend_jobs.use_python_packages(config.options)
            job = self.make_job(config, context)
        except ImageTo3DError as exc:
            settings.last_error, settings.last_exit_code = str(exc), exc.exit_code
            settings.stage = "failed"
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        job_runner.start_job(job, settings)
        remember_view(context)  # the result is framed in the 3D view the user pressed the button in
        if not job_runner.blocks_until_done():
            self.report({"INFO"}, f"Image to 3D: {self.kind} started")
            return {"FINISHED"}
        job_runner.run_to_end(job)
        if job.error is None:
            self.report({"INFO"}, settings.last_message)
            return {"FINISHED"}
        if settings.last_error:
            self.report({"ERROR"}, settings.last_error)
        else:
            self.report({"WARNING"}, settings.last_message)
        return {"CANCELLED"}

    def job_config(self, settings, context):
        return settings.to_config(context)

    def make_job(self, config, context) -> job_runner.Job:
        raise NotImplementedError


class IMAGE_TO_3D_OT_segment(_JobOperator, bpy.types.Operator):
    """Cut the prompted objects out of the photo and show the masks"""

    bl_idname = "image_to_3d.segment"
    bl_label = "Segment"
    bl_options = {"REGISTER"}
    kind = "segment"

    def make_job(self, config, context) -> job_runner.Job:
        from ..backend.errors import BadInputError

        if not config.prompts:
            raise BadInputError("no prompt: type what to cut out of the photo (one per line)")
        from ..properties.scene_settings import corrected_mask_key

        out_dir = backend_jobs.job_out_dir(config.options, "segment", config.prompt)
        make_plane = config.make_preview_plane
        scene_name = context.scene.name
        key = corrected_mask_key(config.image_path, config.prompt or "")

        def bring_in(preview) -> None:
            from .segment_images import load_segment_images

            scene = bpy.data.scenes.get(scene_name) or bpy.context.scene
            loaded = load_segment_images(preview, make_plane)
            first = next(iter(loaded.values()), None)
            if first is not None:
                scene.image_to_3d.preview_image = first["overlay"]
            scene.image_to_3d.segment_dir = str(preview.out_dir)
            # what mask correction starts from: the files the backend wrote, by prompt (first of duplicates)
            masks: dict[str, str] = {}
            for item in preview.prompts:
                masks.setdefault(item.prompt, str(item.mask_path))
            scene.image_to_3d.segment_masks = json.dumps(masks)
            scene.image_to_3d.corrected_mask_path = ""  # a new segmentation replaces any corrected mask
            from .sam3_instances import show_sam3_instances

            show_sam3_instances(scene.image_to_3d, preview, key)
            push_undo_step("Image to 3D: segment")

        if worker_client.runs_in_worker(context):
            return worker_client.make_worker_job(
                context, "segment", lambda request_id: worker_requests.segment_request(request_id, config, out_dir),
                worker_client.checked_segment_outcome, bring_in, scene_name)
        return job_runner.Job(kind="segment", work=backend_jobs.build_segment_work(config, out_dir),
                              on_success=bring_in, scene_name=scene_name,
                              env=backend_jobs.job_environment(config.options))


class IMAGE_TO_3D_OT_generate(_JobOperator, bpy.types.Operator):
    """Turn the prompted object of the photo into a textured mesh at the 3D cursor (one object per prompt line)"""

    bl_idname = "image_to_3d.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER"}  # no UNDO: the import pushes its own single undo step when it lands
    kind = "generate"

    def make_job(self, config, context) -> job_runner.Job:
        photo = context.scene.image_to_3d.image
        return make_generate_job(config, context, photo.name if photo is not None else None)


class IMAGE_TO_3D_OT_cancel(bpy.types.Operator):
    """Stop the running job; the scene stays as it was"""

    bl_idname = "image_to_3d.cancel"
    bl_label = "Cancel"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        return job_runner.current_job() is not None

    def execute(self, context):
        job = job_runner.current_job()
        if job is None:
            self.report({"WARNING"}, "no Image to 3D job is running")
            return {"CANCELLED"}
        job.cancel()
        settings = context.scene.image_to_3d
        settings.stage = "Cancelling…"  # at once; the job ends within seconds (a stuck worker is killed)
        settings.last_message = f"cancelling {job.kind}…"
        job_runner.tag_sidebar_redraw()
        return {"FINISHED"}
