"""Photo (+ prompt) → textured mesh in one TripoSR forward pass: ``generate --method quick``.

The numbered recipe of backend/generate/pipeline.py with stage 1 replaced: the same job steps
(backend.generate.job_steps: seeding, the mask from a given mask, photo alpha, cache or segmentation, job.json
fields, the mesh files), the same UV stage (backend.generate.stages.unwrap_mesh), then TripoSR's input framing, one forward pass to a triplane, our marching cubes on its
density, xatlas UVs, and a texture read from its colour field at each texel's surface point (no renders).
The export is the same (model.glb, model.obj + texture, job.json, mask.png, reference.png); there is no
gaussians.ply. :func:`reconstruct_quick` is the part quick+refine reuses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..atomic_output import AtomicOutputDir, check_output_location, output_path
from ..device import resolve_device
from ..generate.job_steps import (
    MESH_OUTPUT_NAMES,
    job_metadata,
    object_mask,
    seed_everything,
    write_job_json,
    write_mesh_files,
)
from ..generate.request import GenerateRequest, GenerationResult, check_request
from ..generate.stage_clock import StageClock
from ..generate.stages import unwrap_mesh
from ..images import LoadedImage, load_image
from ..job_cache import JobCache
from ..job_control import JobControl, ensure_control
from ..mesh.mesh import Mesh
from ..models.mode import ModelMode, resolve_model_mode
from ..models.triposr import LICENCE, FieldSample, LoadedTripoSR, load_triposr_cached, world_scale, world_to_triposr
from ..out_of_memory import out_of_memory_error, release_gpu_memory
from .config import QuickConfig, quick_config
from .field_bake import bake_colour_field
from .field_mesh import extract_field_mesh
from .preprocess import TripoSRInput, prepare_triposr_input

# Every name a quick run may write into its output folder (the output contract, docs/reliability.md): every
# method's mesh files, and no gaussians.ply.
OUTPUT_NAMES = MESH_OUTPUT_NAMES


@dataclass(frozen=True)
class QuickReconstruction:
    """TripoSR's answer for one object, in our world frame.

    mesh:     surface from its density (no UVs yet)
    level:    the density level that surface is at (inside: density ≥ level)
    triplane: [3, C, H, W] on the model's device; :meth:`colour_at` reads its colour field in world coordinates
    """

    mesh: Mesh
    level: float
    triplane: torch.Tensor
    model: LoadedTripoSR
    scale: float  # world units per TripoSR unit
    input: TripoSRInput

    @torch.no_grad()
    def colour_at(self, points: torch.Tensor) -> torch.Tensor:  # world [N, 3] → [N, 3] in [0, 1]
        return self.field_at(points).colour

    @torch.no_grad()
    def field_at(self, points: torch.Tensor) -> FieldSample:  # world [N, 3] → density [N], colour [N, 3]
        local = world_to_triposr(points.to(self.triplane.device, self.triplane.dtype), self.scale)
        return self.model.model.query_field(self.triplane, local)


def reconstruct_quick(rgb: np.ndarray, mask: np.ndarray, config: QuickConfig, models: ModelMode,
                      device: torch.device, clock: StageClock, control: JobControl,
                      mesh_stage: str = "mesh") -> QuickReconstruction:
    """Model load, framing, forward pass, mesh: stages ``load_triposr``, ``preprocess``, ``triposr`` and
    ``mesh_stage`` (quick+refine names it apart from its own later mesh stage)."""
    control.report("load_triposr", 0.0)
    with clock.stage("load_triposr"):
        loaded = load_triposr_cached(models, device)
    control.report("preprocess", 0.0)
    with clock.stage("preprocess"):
        framed = prepare_triposr_input(rgb, mask.astype(np.float32), loaded.config.cond_image_size,
                                       config.foreground_ratio)
    control.report("triposr", 0.0, "forward pass")
    with clock.stage("triposr"), torch.no_grad():
        triplane = loaded.model(framed.as_batch(device, loaded.dtype))[0]
    control.report("triposr", 1.0)
    scale = world_scale(config.border_ratio)
    with clock.stage(mesh_stage):
        surface = extract_field_mesh(loaded.model, triplane, scale, config.mesh, control,
                                     random_weights=models.meaningless)
    return QuickReconstruction(mesh=surface.mesh, level=surface.level, triplane=triplane, model=loaded, scale=scale,
                               input=framed)


def generate_quick(request: GenerateRequest, control: JobControl | None = None) -> GenerationResult:
    """Run the quick job; raises an :class:`~backend.errors.ImageTo3DError` subclass on any failure."""
    from ..preprocess import reference_crop

    # 1. Check inputs before any heavy work.
    check_request(request)
    control = ensure_control(control)
    config = quick_config(request.preset)
    models = resolve_model_mode(request.models)
    device = resolve_device(request.device)
    out_dir = output_path(request.out_dir)
    # an unwritable folder, or a file of an output's name that is the user's, fails now, not after the job
    check_output_location(out_dir, OUTPUT_NAMES, request.overwrite)
    image: LoadedImage = load_image(request.image_path)
    clock = StageClock(device)
    cache = JobCache()
    reused: list[str] = []
    started = time.perf_counter()
    seed_everything(request.seed)
    try:
        # 2. Mask: the photo's alpha, the cache, or text-guided segmentation.
        mask = object_mask(request, image, models, cache, clock, control, reused)

        # 3. TripoSR: framing, forward pass, mesh from its density.
        quick = reconstruct_quick(image.rgb, mask, config, models, device, clock, control)

        # 4. UVs, then the texture from its colour field.
        with clock.stage("uv_unwrap"):
            mesh = unwrap_mesh(quick.mesh, config.texture_size, control)
        with clock.stage("bake"):
            mesh = bake_colour_field(mesh, quick.colour_at, config.texture_size, device=device, control=control)

        # 5. Export, atomically.
        crop = reference_crop(mask, border_ratio=config.border_ratio)  # the square the photo-match camera frames
        metadata = quick_metadata(request, config, models, device, reused, quick)
        metadata["image_size"] = [int(image.rgb.shape[1]), int(image.rgb.shape[0])]
        metadata["reference_crop"] = crop.as_list()
        with clock.stage("export"), AtomicOutputDir(out_dir, OUTPUT_NAMES, request.overwrite) as staging:
            write_mesh_files(staging, mesh, metadata, mask, quick.input.image, control)
            write_job_json(staging, metadata, clock, started)
            control.report("export", 1.0)
    except torch.cuda.OutOfMemoryError as exc:  # outside any timed stage
        raise out_of_memory_error(control.stage or "generate") from exc
    finally:
        release_gpu_memory()

    return GenerationResult(
        out_dir=out_dir, glb_path=out_dir / "model.glb", obj_path=out_dir / "model.obj", ply_path=None,
        job_json_path=out_dir / "job.json", mask_path=out_dir / "mask.png", timings=dict(clock.seconds),
        peak_gpu_memory_mb=clock.overall_peak_memory_mb, reused=tuple(reused),
        reference_crop=(crop.x0, crop.y0, crop.side), image_size=(int(image.rgb.shape[1]), int(image.rgb.shape[0])),
    )


def quick_metadata(request: GenerateRequest, config: QuickConfig, models: ModelMode, device, reused,
                   quick: QuickReconstruction) -> dict:
    """job.json fields: every method's (backend.generate.job_steps.job_metadata), plus where TripoSR came from
    and its licence."""
    metadata = job_metadata(request, config, models, device, reused)
    metadata["triposr"] = {"model": quick.model.model_id, "revision": quick.model.revision, "licence": LICENCE,
                           "world_scale": round(quick.scale, 6)}
    return metadata
