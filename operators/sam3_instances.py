"""SAM 3's instances in Blender: the list a SAM 3 Segment fills, and image_to_3d.choose_instance, which makes
another instance (or all of them) the object from the files the backend saved — SAM 3 does not run again."""

from __future__ import annotations

import bpy

from . import backend_jobs, job_runner, worker_client, worker_requests
from .job_operators import _JobOperator

ALL_INSTANCES = 0  # choose_instance's rank for "All of them" (the union)


def show_sam3_instances(settings, preview, key: str) -> None:
    """Fill ``settings.sam3_instances`` from the first prompt of a segment ``preview`` (the prompt Generate
    uses); empty when the segmenter was not SAM 3. ``key``: corrected_mask_key of that photo and prompt."""
    settings.sam3_instances.clear()
    first = preview.prompts[0] if preview.prompts else None
    for instance in first.instances if first is not None else ():
        item = settings.sam3_instances.add()
        item.rank, item.score, item.mask_path = instance.rank, instance.score, str(instance.mask_path)
    settings.sam3_instances_for = key if len(settings.sam3_instances) else ""
    settings.sam3_instance_chosen = 1  # Segment keeps the best-scoring instance


class IMAGE_TO_3D_OT_choose_instance(_JobOperator, bpy.types.Operator):
    """Make this SAM 3 instance the object (the mask Generate uses); no model runs"""

    bl_idname = "image_to_3d.choose_instance"
    bl_label = "Choose Instance"
    bl_options = {"REGISTER"}
    kind = "choose instance"

    rank: bpy.props.IntProperty(name="Instance", min=0, default=1,
                                description="1 = the best-scoring instance; 0 = all of them")

    def make_job(self, config, context) -> job_runner.Job:
        from ..backend.errors import BadInputError
        from ..properties.scene_settings import corrected_mask_key

        settings = context.scene.image_to_3d
        key = corrected_mask_key(config.image_path, config.prompt or "")
        if not settings.sam3_instances or settings.sam3_instances_for != key:
            raise BadInputError("no SAM 3 instances for this photo and prompt: Segment with the SAM 3 segmenter first")
        masks = tuple(item.mask_path for item in settings.sam3_instances)
        if self.rank > len(masks):
            raise BadInputError(f"instance {self.rank} asked for, but SAM 3 found {len(masks)}")
        rank = self.rank
        instance = "union" if rank == ALL_INSTANCES else str(rank)
        out_dir = backend_jobs.job_out_dir(config.options, "instance", config.prompt)
        scene_name = context.scene.name

        def bring_in(preview) -> None:
            from .generate_job import push_undo_step
            from .segment_images import load_segment_images

            scene = bpy.data.scenes.get(scene_name) or bpy.context.scene
            loaded = load_segment_images(preview, False)
            scene.image_to_3d.preview_image = next(iter(loaded.values()))["overlay"]
            scene.image_to_3d.corrected_mask_path = str(preview.prompts[0].mask_path)  # what Generate uses
            scene.image_to_3d.corrected_mask_for = key
            scene.image_to_3d.sam3_instance_chosen = rank
            push_undo_step("Image to 3D: choose instance")

        if worker_client.runs_in_worker(context):
            return worker_client.make_worker_job(
                context, "choose instance", lambda request_id: worker_requests.choose_instance_request(
                    request_id, config, masks, instance, out_dir),
                worker_client.checked_segment_outcome, bring_in, scene_name)
        work = backend_jobs.build_choose_instance_work(config, masks, instance, out_dir)
        return job_runner.Job(kind="choose instance", work=work, on_success=bring_in, scene_name=scene_name,
                              env=backend_jobs.job_environment(config.options))
