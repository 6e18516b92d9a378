"""Photo (+ prompt) → textured mesh: the whole chain, one entry point (:func:`generate`).

Reads like a numbered recipe: each stage is timed, reports progress through the job's
:class:`~backend.job_control.JobControl` (which also carries cancel), and maps CUDA out-of-memory to exit 5.
Outputs are staged and moved into ``out_dir`` only when every file is complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path

import numpy as np
import torch

from ..atomic_output import AtomicOutputDir, check_output_location
from ..choices import QUICK, QUICK_REFINE, check_method
from ..device import resolve_device
from ..images import load_image
from ..job_cache import JobCache, file_digest, job_key
from ..job_control import JobControl, ensure_control
from ..models.mode import resolve_model_mode
from ..out_of_memory import out_of_memory_error, release_gpu_memory
from .job_steps import job_metadata, object_mask, seed_everything, write_job_json, write_mesh_files
from .presets import PipelineConfig, pipeline_config, seeded
from .request import GenerateRequest, GenerationResult
from .stage_clock import StageClock


def generate(request: GenerateRequest, control: JobControl | None = None) -> GenerationResult:
    """Run the whole job; raises an :class:`~backend.errors.ImageTo3DError` subclass on any failure."""
    from ..export import export_gaussians_ply
    from ..mesh import extract_mesh
    from ..mesh.refine_texture import refine_texture
    from ..models.zero123 import load_zero123_cached
    from ..stage1 import fit_gaussians
    from .stages import bake_gaussian_texture, cut_out_reference, load_guidance, unwrap_mesh

    # 1. Check inputs before any heavy work.
    control = ensure_control(control)
    method = check_method(request.method)
    if method == QUICK:  # no Gaussians at all: its own recipe, the same job steps (backend.generate.job_steps)
        from ..quick.pipeline import generate_quick

        return generate_quick(request, control)
    config: PipelineConfig = request.config or pipeline_config(request.preset, request.steps)
    if request.steps is not None and request.config is not None:
        config = dataclasses.replace(config, stage1=dataclasses.replace(config.stage1, steps=request.steps))
    if method == QUICK_REFINE:
        from ..quick.refine_config import quick_refine_config

        config = quick_refine_config(config, steps_given=request.steps is not None)
    config = seeded(config, request.seed)  # one seed for every seeded stage
    models = resolve_model_mode(request.models)
    device = resolve_device(request.device)
    out_dir = Path(request.out_dir)
    check_output_location(out_dir)  # an unwritable folder fails now, not after the whole job
    image = load_image(request.image_path)
    clock = StageClock(device)
    cache = JobCache()
    reused: list[str] = []
    started = time.perf_counter()
    seed_everything(request.seed)
    try:
        # 2. Mask: the photo's alpha, the cache, or text-guided segmentation.
        mask = object_mask(request, image, models, cache, clock, control, reused)

        # 3. Reference view: recentred square cut-out.
        control.report("preprocess", 0.0)
        with clock.stage("preprocess"):
            reference = cut_out_reference(image.rgb, mask, config.reference_size, config.border_ratio, device)
        control.report("preprocess", 1.0)

        # 4. Zero123 guidance, conditioned on the reference over white.
        control.report("load_guidance", 0.0)
        with clock.stage("load_guidance"):
            dtype = torch.float16 if (device.type == "cuda" and request.half) else torch.float32
            guidance = load_guidance(load_zero123_cached(models, device, dtype), config.guidance, reference)
        control.report("load_guidance", 1.0)

        # 5. Stage 1: Gaussians fitted to the reference with the SDS prior (cached by inputs and settings).
        mask_digest = hashlib.sha256(np.packbits(mask).tobytes() + str(mask.shape).encode()).hexdigest()
        s1_key = job_key("stage1", file_digest(request.image_path), mask_digest, request.prompt, request.mode,
                         request.sam_variant, models, config.reference_size, config.border_ratio, config.stage1,
                         config.guidance, request.seed, str(device.type), method)
        gaussians = None if request.force else cache.load_gaussians(s1_key, device)
        if gaussians is not None:
            reused.append("stage1")
            control.report("stage1", 1.0, "reused the cached stage-1 Gaussians")
        else:
            initial = None
            if method == QUICK_REFINE:
                from ..quick.refine import start_from_triposr

                initial = start_from_triposr(image.rgb, mask, request.preset, models, device, config.stage1.num_init,
                                             request.seed, clock, control)
            with clock.stage("stage1"):
                gaussians = fit_gaussians([reference.target], config.stage1, guidance, device=device, seed=request.seed,
                                          control=control, initial=initial).gaussians
            cache.save_gaussians(s1_key, gaussians)

        # 6. Mesh: density grid → marching cubes → cleanup → decimation → UVs.
        with clock.stage("mesh"):
            mesh = extract_mesh(gaussians, config.mesh, control)
        with clock.stage("uv_unwrap"):
            mesh = unwrap_mesh(mesh, config.texture_size, control)

        # 7. Texture: baked from Gaussian renders, then refined against Zero123 targets and the reference.
        with clock.stage("bake"):
            mesh = bake_gaussian_texture(mesh, gaussians, config.bake_size, config.texture_size, control)
        with clock.stage("stage2"):
            mesh = refine_texture(mesh, reference.target, guidance, config.texture, control)
        del guidance
        release_gpu_memory()

        # 8. Export, atomically.
        metadata = job_metadata(request, config, models, device, reused)
        if method == QUICK_REFINE:  # its start came from TripoSR: say which, and its licence
            from ..models.triposr import triposr_provenance

            metadata["triposr"] = triposr_provenance(models)
        metadata["image_size"] = [int(image.rgb.shape[1]), int(image.rgb.shape[0])]
        metadata["reference_crop"] = reference.crop.as_list()  # [x0, y0, side] in photo pixels, see ReferenceCrop
        with clock.stage("export"), AtomicOutputDir(out_dir) as staging:
            write_mesh_files(staging, mesh, metadata, mask,
                             np.concatenate([reference.image.rgb, reference.image.alpha[..., None]], -1), control)
            control.report("export", 0.8, "gaussians.ply")
            export_gaussians_ply(gaussians, staging / "gaussians.ply")
            write_job_json(staging, metadata, clock, started)
            # last chance to cancel: inside the staging block, so a cancelled job never leaves its files
            control.report("export", 1.0)
    except torch.cuda.OutOfMemoryError as exc:  # outside any timed stage
        raise out_of_memory_error(control.stage or "generate") from exc
    finally:
        release_gpu_memory()

    return GenerationResult(
        out_dir=out_dir,
        glb_path=out_dir / "model.glb",
        obj_path=out_dir / "model.obj",
        ply_path=out_dir / "gaussians.ply",
        job_json_path=out_dir / "job.json",
        mask_path=out_dir / "mask.png",
        timings=dict(clock.seconds),
        peak_gpu_memory_mb=clock.overall_peak_memory_mb,
        reused=tuple(reused),
        reference_crop=(reference.crop.x0, reference.crop.y0, reference.crop.side),
        image_size=(int(image.rgb.shape[1]), int(image.rgb.shape[0])),
    )

