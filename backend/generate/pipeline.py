"""Photo (+ prompt) → textured mesh: the whole chain, one entry point (:func:`generate`).

Reads like a numbered recipe: each stage is timed, reports progress through the job's
:class:`~backend.job_control.JobControl` (which also carries cancel), and maps CUDA out-of-memory to exit 5.
Outputs are staged and moved into ``out_dir`` only when every file is complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..atomic_output import AtomicOutputDir, check_output_location, output_path
from ..choices import QUICK, QUICK_REFINE, check_method
from ..device import resolve_device
from ..gaussians.gaussians import Gaussians
from ..images import LoadedImage, load_image
from ..job_cache import JobCache, file_digest, job_key
from ..job_control import JobControl, ensure_control
from ..models.mode import ModelMode, resolve_model_mode
from ..out_of_memory import out_of_memory_error, release_gpu_memory
from .job_steps import MESH_OUTPUT_NAMES, job_metadata, object_mask, seed_everything, write_job_json, write_mesh_files
from .presets import PipelineConfig, pipeline_config, seeded
from .request import GenerateRequest, GenerationResult, check_request
from .stage_clock import StageClock

# Every name a DreamGaussian (or quick+refine) run may write into its output folder: every method's mesh files
# plus the fitted Gaussians (the output contract, docs/reliability.md).
OUTPUT_NAMES = (*MESH_OUTPUT_NAMES, "gaussians.ply")

if TYPE_CHECKING:
    from ..mesh.mesh import Mesh
    from .stages import Reference


def generate(request: GenerateRequest, control: JobControl | None = None) -> GenerationResult:
    """Run the whole job; raises an :class:`~backend.errors.ImageTo3DError` subclass on any failure."""
    from ..mesh.refine_texture import refine_texture
    from ..stage1 import fit_gaussians

    # 1. Check inputs before any heavy work (each method's start checks the request first).
    control = ensure_control(control)
    if check_method(request.method) == QUICK:  # no Gaussians at all: its own recipe, the same job steps
        from ..quick.pipeline import generate_quick

        return generate_quick(request, control)
    job = _start_job(request, control)
    try:
        _prepare_job(job)  # 2.-4. and the stage-1 cache
        if job.gaussians is None:
            # 5. Stage 1: Gaussians fitted to the reference with the SDS prior (cached by inputs and settings).
            with job.clock.stage("stage1"):
                fitted = fit_gaussians(**_stage1_arguments(job), device=job.device)
            _keep_stage1(job, fitted.gaussians)
        # 6.-7. Mesh, UVs, bake; stage 2; 8. export.
        _mesh_and_bake(job)
        with job.clock.stage("stage2"):
            refined = refine_texture(**_stage2_arguments(job))
        return _export_job(job, refined)
    except torch.cuda.OutOfMemoryError as exc:  # outside any timed stage
        raise out_of_memory_error(control.stage or "generate") from exc
    finally:
        release_gpu_memory()


def generate_together(requests: list[GenerateRequest], controls: list[JobControl | None] | None = None
                      ) -> list[GenerationResult | Exception]:
    """Several jobs in one process whose stage-1 fits, and then their stage-2 texture refinements, advance
    together, one batched Zero123 call per step (``backend.stage1.fit_gaussians_together``,
    ``backend.mesh.refine_texture.refine_textures_together``); mask, reference, mesh, UVs, bake and export run
    job by job, as :func:`generate` does.

    Returns each job's result or the exception that ended it, in order: a job fails, cancels (its own
    control) and is cached alone. Stage 1's and stage 2's seconds in each job.json are the group's. Quick jobs
    have no fit to share and simply run; jobs whose stage 1 comes from the cache join at stage 2.
    """
    from ..mesh.refine_texture import TextureJob, refine_textures_together
    from ..stage1 import Stage1Job, fit_gaussians_together

    controls = list(controls) if controls is not None else [None] * len(requests)
    outcomes: list[GenerationResult | Exception | None] = [None] * len(requests)
    jobs: dict[int, _Job] = {}
    for index, (request, control) in enumerate(zip(requests, controls, strict=True)):
        try:
            if check_method(request.method) == QUICK:
                outcomes[index] = generate(request, control)
                continue
            jobs[index] = job = _start_job(request, ensure_control(control))
            _prepare_job(job)
        except Exception as exc:  # noqa: BLE001 - one job's failure is its own
            jobs.pop(index, None)
            outcomes[index] = _job_error(exc, controls[index])
            release_gpu_memory()

    # 5. Stage 1 of every job that needs one, per device, in one group.
    _stage_together(jobs, [i for i, job in jobs.items() if job.gaussians is None], outcomes, "stage1",
                    lambda group, device: fit_gaussians_together(
                        [Stage1Job(**_stage1_arguments(job)) for job in group], device=device),
                    lambda job, fitted: _keep_stage1(job, fitted.gaussians))

    # 6.-7. Mesh, UVs and the baked texture, job by job.
    for index, job in list(jobs.items()):
        try:
            _mesh_and_bake(job)
        except Exception as exc:  # noqa: BLE001
            del jobs[index]
            outcomes[index] = _job_error(exc, job.control)
            release_gpu_memory()

    # 7. Stage 2 of every job, per device, in one group.
    _stage_together(jobs, list(jobs), outcomes, "stage2",
                    lambda group, device: refine_textures_together(
                        [TextureJob(**_stage2_arguments(job)) for job in group]),
                    lambda job, mesh: setattr(job, "mesh", mesh))

    # 8. Export, job by job; the GPU's cached memory goes back once, after the group (see release_gpu_memory).
    try:
        for index, job in jobs.items():
            try:
                outcomes[index] = _export_job(job, job.mesh)
            except Exception as exc:  # noqa: BLE001
                outcomes[index] = _job_error(exc, job.control)
    finally:
        release_gpu_memory()
    return outcomes


def _stage_together(jobs: dict[int, _Job], members: list[int], outcomes: list, stage: str,
                    run_group: Callable[[list[_Job], torch.device], list], keep: Callable[[_Job, object], None]
                    ) -> None:
    """``stage`` of the ``members`` of ``jobs``, one group per device: ``run_group(group, device)`` gives each job's
    result or the exception that ended it, in order. Every job of a group gets the group's seconds and peak memory
    (the stage ran for all of them at once); a failed job leaves ``jobs`` with its error in ``outcomes``; a result
    goes to ``keep``. What the group shares failing is every member's failure."""
    for device in {jobs[i].device for i in members}:
        group = [i for i in members if jobs[i].device == device]
        clock = StageClock(device)
        try:
            with clock.stage(stage):
                results = run_group([jobs[i] for i in group], device)
        except Exception as exc:  # noqa: BLE001 - only what the group shares can end up here
            results = [exc] * len(group)
        for i, outcome in zip(group, results, strict=True):
            job = jobs[i]
            job.clock.seconds.update(clock.seconds)
            job.clock.peak_memory_mb.update(clock.peak_memory_mb)
            if isinstance(outcome, Exception):
                del jobs[i]
                outcomes[i] = _job_error(outcome, job.control, stage)
            else:
                keep(job, outcome)


def _job_error(exc: Exception, control: JobControl | None, stage: str = "") -> Exception:
    """What :func:`generate` would have raised: CUDA out-of-memory becomes exit 5, anything else stays."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return out_of_memory_error(stage or (control.stage if control else "") or "generate")
    return exc


@dataclass
class _Job:
    """One DreamGaussian (or quick+refine) job between its stages."""

    request: GenerateRequest
    control: JobControl
    method: str
    config: PipelineConfig
    models: ModelMode
    device: torch.device
    out_dir: Path
    image: LoadedImage
    clock: StageClock
    cache: JobCache = field(default_factory=JobCache)
    reused: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    mask: np.ndarray | None = None
    reference: Reference | None = None
    guidance: object = None  # Zero123Guidance
    stage1_key: str = ""
    initial: object = None  # GaussianModel: quick+refine's start
    gaussians: Gaussians | None = None
    mesh: Mesh | None = None  # with UVs and the baked texture, then the refined one


def _start_job(request: GenerateRequest, control: JobControl) -> _Job:
    """1. Check inputs before any heavy work: the config, the models, the device, the output folder, the photo."""
    check_request(request)
    method = check_method(request.method)
    config: PipelineConfig = request.config or pipeline_config(request.preset, request.steps)
    if request.steps is not None and request.config is not None:
        config = dataclasses.replace(config, stage1=dataclasses.replace(config.stage1, steps=request.steps))
    if method == QUICK_REFINE:
        from ..quick.refine_config import quick_refine_config

        config = quick_refine_config(config, steps_given=request.steps is not None)
    if request.compile_vae_encoder:
        config = dataclasses.replace(config, guidance=dataclasses.replace(config.guidance, compile_vae_encoder=True))
    config = seeded(config, request.seed)  # one seed for every seeded stage
    models = resolve_model_mode(request.models)
    device = resolve_device(request.device)
    out_dir = output_path(request.out_dir)
    # an unwritable folder, or a file of an output's name that is the user's, fails now, not after the job
    check_output_location(out_dir, OUTPUT_NAMES, request.overwrite)
    image = load_image(request.image_path)
    return _Job(request, control, method, config, models, device, out_dir, image, StageClock(device))


def _prepare_job(job: _Job) -> None:
    """2.-4.: mask, reference view, guidance; then stage 1 from the cache, or quick+refine's start for its fit."""
    from ..models.zero123 import load_zero123_cached
    from .stages import cut_out_reference, load_guidance

    request, config, control, clock = job.request, job.config, job.control, job.clock
    seed_everything(request.seed)
    # 2. Mask: the photo's alpha, the cache, or text-guided segmentation.
    job.mask = object_mask(request, job.image, job.models, job.cache, clock, control, job.reused)

    # 3. Reference view: recentred square cut-out.
    control.report("preprocess", 0.0)
    with clock.stage("preprocess"):
        job.reference = cut_out_reference(job.image.rgb, job.mask, config.reference_size, config.border_ratio,
                                          job.device)
    control.report("preprocess", 1.0)

    # 4. Zero123 guidance, conditioned on the reference over white.
    control.report("load_guidance", 0.0)
    with clock.stage("load_guidance"):
        dtype = torch.float16 if (job.device.type == "cuda" and request.half) else torch.float32
        job.guidance = load_guidance(load_zero123_cached(job.models, job.device, dtype), config.guidance,
                                     job.reference)
    control.report("load_guidance", 1.0)

    # 5. (before the fit) Stage 1 from the cache, keyed by its inputs and settings.
    mask_digest = hashlib.sha256(np.packbits(job.mask).tobytes() + str(job.mask.shape).encode()).hexdigest()
    job.stage1_key = job_key("stage1", file_digest(request.image_path), mask_digest, request.prompt, request.mode,
                             request.sam_variant, job.models, config.reference_size, config.border_ratio,
                             config.stage1, config.guidance, request.seed, str(job.device.type), job.method)
    job.gaussians = None if request.force else job.cache.load_gaussians(job.stage1_key, job.device)
    if job.gaussians is not None:
        job.reused.append("stage1")
        control.report("stage1", 1.0, "reused the cached stage-1 Gaussians")
    elif job.method == QUICK_REFINE:
        from ..quick.refine import start_from_triposr

        job.initial = start_from_triposr(job.image.rgb, job.mask, request.preset, job.models, job.device,
                                         config.stage1.num_init, request.seed, clock, control)


def _stage1_arguments(job: _Job) -> dict:
    """What the fit takes (``fit_gaussians`` and ``Stage1Job`` name them alike)."""
    return dict(targets=[job.reference.target], config=job.config.stage1, guidance=job.guidance,
                seed=job.request.seed, control=job.control, initial=job.initial)


def _keep_stage1(job: _Job, gaussians: Gaussians) -> None:
    job.gaussians = gaussians
    job.cache.save_gaussians(job.stage1_key, gaussians)


def _mesh_and_bake(job: _Job) -> None:
    """6.-7. (before stage 2): mesh, UVs, and the texture baked from Gaussian renders, into ``job.mesh``."""
    from ..mesh import extract_mesh
    from .stages import bake_gaussian_texture, unwrap_mesh

    config, control, clock, gaussians = job.config, job.control, job.clock, job.gaussians
    # 6. Mesh: density grid → marching cubes → cleanup → decimation → UVs.
    with clock.stage("mesh"):
        mesh = extract_mesh(gaussians, config.mesh, control)
    with clock.stage("uv_unwrap"):
        mesh = unwrap_mesh(mesh, config.texture_size, control)

    # 7. Texture: baked from Gaussian renders (then refined against Zero123 targets and the reference: stage 2).
    with clock.stage("bake"):
        job.mesh = bake_gaussian_texture(mesh, gaussians, config.bake_size, config.texture_size, control)


def _stage2_arguments(job: _Job) -> dict:
    """What stage 2 takes (``refine_texture`` and ``TextureJob`` name them alike)."""
    return dict(mesh=job.mesh, reference=job.reference.target, guidance=job.guidance, config=job.config.texture,
                control=job.control)


def _export_job(job: _Job, mesh: Mesh) -> GenerationResult:
    """8. (after stage 2): the refined ``mesh``, the Gaussians, the mask and job.json, written atomically."""
    from ..export import export_gaussians_ply

    request, config, control, clock = job.request, job.config, job.control, job.clock
    reference, gaussians, image, method = job.reference, job.gaussians, job.image, job.method
    job.guidance = job.mesh = None

    # 8. Export, atomically.
    metadata = job_metadata(request, config, job.models, job.device, job.reused)
    if method == QUICK_REFINE:  # its start came from TripoSR: say which, and its licence
        from ..models.triposr import triposr_provenance

        metadata["triposr"] = triposr_provenance(job.models)
    metadata["image_size"] = [int(image.rgb.shape[1]), int(image.rgb.shape[0])]
    metadata["reference_crop"] = reference.crop.as_list()  # [x0, y0, side] in photo pixels, see ReferenceCrop
    with clock.stage("export"), AtomicOutputDir(job.out_dir, OUTPUT_NAMES, request.overwrite) as staging:
        write_mesh_files(staging, mesh, metadata, job.mask,
                         np.concatenate([reference.image.rgb, reference.image.alpha[..., None]], -1), control)
        control.report("export", 0.8, "gaussians.ply")
        export_gaussians_ply(gaussians, staging / "gaussians.ply")
        write_job_json(staging, metadata, clock, job.started)
        # last chance to cancel: inside the staging block, so a cancelled job never leaves its files
        control.report("export", 1.0)

    out_dir = job.out_dir
    return GenerationResult(
        out_dir=out_dir,
        glb_path=out_dir / "model.glb",
        obj_path=out_dir / "model.obj",
        ply_path=out_dir / "gaussians.ply",
        job_json_path=out_dir / "job.json",
        mask_path=out_dir / "mask.png",
        timings=dict(clock.seconds),
        peak_gpu_memory_mb=clock.overall_peak_memory_mb,
        reused=tuple(job.reused),
        reference_crop=(reference.crop.x0, reference.crop.y0, reference.crop.side),
        image_size=(int(image.rgb.shape[1]), int(image.rgb.shape[0])),
    )
