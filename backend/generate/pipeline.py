"""Photo (+ prompt) → textured mesh: the whole chain, one entry point (:func:`generate`).

Reads like a numbered recipe: each stage is timed, reports progress through the job's
:class:`~backend.job_control.JobControl` (which also carries cancel), and maps CUDA out-of-memory to exit 5.
Outputs are staged and moved into ``out_dir`` only when every file is complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..atomic_output import AtomicOutputDir, check_output_location
from ..device import resolve_device
from ..errors import BadInputError
from ..export.obj import MTL_NAME, OBJ_NAME, TEXTURE_NAME
from ..images import LoadedImage, load_image
from ..job_cache import JobCache, file_digest, job_key
from ..job_control import JobControl, ensure_control
from ..models.mode import ModelMode, resolve_model_mode
from ..out_of_memory import out_of_memory_error, release_gpu_memory
from .presets import PipelineConfig, pipeline_config, seeded
from .request import GenerateRequest, GenerationResult, check_request
from .stage_clock import StageClock

# Every name a generate run may write into its output folder (the output contract, docs/reliability.md).
OUTPUT_NAMES = ("model.glb", OBJ_NAME, MTL_NAME, TEXTURE_NAME, "gaussians.ply", "mask.png", "reference.png",
                "job.json")
MIN_ALPHA_COVERAGE = 0.001  # an alpha channel covering less than this is "no object"


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _has_cutout(image: LoadedImage) -> bool:
    return image.alpha is not None and float((image.alpha < 0.5).mean()) > MIN_ALPHA_COVERAGE


def _object_mask(request: GenerateRequest, image: LoadedImage, models: ModelMode, cache: JobCache,
                 clock: StageClock, control: JobControl, reused: list[str]) -> np.ndarray:
    """The object's mask at full resolution: the photo's own alpha, the cache, or segmentation."""
    from ..segment import segment_image

    if request.mask is not None:
        mask = np.asarray(request.mask).astype(bool)
        if mask.shape != image.rgb.shape[:2]:
            raise BadInputError(f"the given mask is {mask.shape[1]}x{mask.shape[0]} px, the photo "
                                f"{image.rgb.shape[1]}x{image.rgb.shape[0]}")
        reused.append("mask")
        control.report("segment", 1.0, "using the given mask")
        return mask
    if not request.prompt:
        if _has_cutout(image):
            return image.alpha >= 0.5
        raise BadInputError("a prompt is needed: the image has no transparent background to cut the object from")
    config = dataclasses.replace(request.segment_config(), models=models)
    key = job_key("mask", file_digest(request.image_path), request.prompt, config)
    if not request.force:
        cached = cache.load_mask(key)
        if cached is not None and cached.shape == image.rgb.shape[:2]:
            reused.append("mask")
            control.report("segment", 1.0, "reused the cached mask")
            return cached
    with clock.stage("segment"):
        result = segment_image(image, [request.prompt], config, control)[0]
    cache.save_mask(key, result.mask)
    return result.mask


def generate(request: GenerateRequest, control: JobControl | None = None) -> GenerationResult:
    """Run the whole job; raises an :class:`~backend.errors.ImageTo3DError` subclass on any failure."""
    from ..export import export_gaussians_ply, export_glb, export_obj
    from ..mesh import extract_mesh, refine_texture
    from ..models.zero123 import load_zero123_cached
    from ..stage1 import fit_gaussians
    from .stages import bake_gaussian_texture, cut_out_reference, load_guidance, unwrap_mesh

    # 1. Check inputs before any heavy work.
    check_request(request)
    control = ensure_control(control)
    config: PipelineConfig = request.config or pipeline_config(request.preset, request.steps)
    if request.steps is not None and request.config is not None:
        config = dataclasses.replace(config, stage1=dataclasses.replace(config.stage1, steps=request.steps))
    config = seeded(config, request.seed)  # one seed for every seeded stage
    models = resolve_model_mode(request.models)
    device = resolve_device(request.device)
    out_dir = Path(request.out_dir)
    # an unwritable folder, or a file of an output's name that is the user's, fails now, not after the job
    check_output_location(out_dir, OUTPUT_NAMES, request.overwrite)
    image = load_image(request.image_path)
    clock = StageClock(device)
    cache = JobCache()
    reused: list[str] = []
    started = time.perf_counter()
    _seed_everything(request.seed)
    try:
        # 2. Mask: the photo's alpha, the cache, or text-guided segmentation.
        mask = _object_mask(request, image, models, cache, clock, control, reused)

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
                         config.guidance, request.seed, str(device.type))
        gaussians = None if request.force else cache.load_gaussians(s1_key, device)
        if gaussians is not None:
            reused.append("stage1")
            control.report("stage1", 1.0, "reused the cached stage-1 Gaussians")
        else:
            with clock.stage("stage1"):
                gaussians = fit_gaussians([reference.target], config.stage1, guidance, device=device, seed=request.seed,
                                          control=control).gaussians
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
        metadata = _metadata(request, config, models, device, reused)
        metadata["image_size"] = [int(image.rgb.shape[1]), int(image.rgb.shape[0])]
        metadata["reference_crop"] = reference.crop.as_list()  # [x0, y0, side] in photo pixels, see ReferenceCrop
        with clock.stage("export"), AtomicOutputDir(out_dir, OUTPUT_NAMES, request.overwrite) as staging:
            control.report("export", 0.0, "model.glb")
            export_glb(mesh, staging / "model.glb", metadata)
            control.report("export", 0.3, "model.obj")
            export_obj(mesh, staging)
            control.report("export", 0.6, "gaussians.ply")
            export_gaussians_ply(gaussians, staging / "gaussians.ply")
            _save_png(staging / "mask.png", mask)
            _save_png(staging / "reference.png",
                      np.concatenate([reference.image.rgb, reference.image.alpha[..., None]], -1))
            metadata["timings_s"] = {k: round(v, 4) for k, v in clock.seconds.items()}
            metadata["total_s"] = round(time.perf_counter() - started, 3)
            metadata["peak_gpu_memory_mb"] = {k: round(v, 1) for k, v in clock.peak_memory_mb.items()}
            (staging / "job.json").write_text(json.dumps(metadata, indent=2))
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


def _save_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    if array.dtype == bool:
        img = Image.fromarray(array.astype(np.uint8) * 255)
    else:
        img = Image.fromarray((np.clip(array, 0, 1) * 255 + 0.5).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    path.write_bytes(buf.getvalue())


def _metadata(request: GenerateRequest, config: PipelineConfig, models: ModelMode, device, reused) -> dict:
    import transformers

    meta = {
        "generator": f"image_to_3d {__version__}",
        "image": str(request.image_path),
        "prompt": request.prompt,
        "preset": request.preset,
        "seed": request.seed,
        "segmentation_mode": request.mode,
        "segmenter": request.segmenter,
        "sam3_instance": str(request.sam3_settings().instance) if request.segmenter == "sam3" else None,
        "sam_variant": request.sam_variant,
        "models": models.value,
        "device": str(device),
        "reused": list(reused),
        "config": dataclasses.asdict(config),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "numpy": np.__version__},
    }
    if models.meaningless:
        meta["note"] = f"models={models.value}: random weights, the output is meaningless (tests and timing only)"
    return meta
