"""What a user's generate job does around the stages, the same for every method (backend.choices.METHODS).

The DreamGaussian recipe (backend/generate/pipeline.py) and the quick one (backend/quick/pipeline.py) both
seed every generator from the job's seed, take the object's mask the same way (a given mask, the photo's own
alpha, the job cache, or segmentation), describe themselves in the same job.json fields and write the same
mesh files and job.json. Declared here once so the two cannot drift apart. See docs/design.md §1.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..errors import BadInputError
from ..export.obj import MTL_NAME, OBJ_NAME, TEXTURE_NAME
from ..images import LoadedImage
from ..input_checks import MIN_ALPHA_COVERAGE, PROMPT_NEEDED
from ..job_cache import JobCache, file_digest, job_key
from ..job_control import JobControl
from ..mesh.mesh import Mesh
from ..models.mode import ModelMode
from .request import GenerateRequest
from .stage_clock import StageClock

# What every method writes into its output folder (write_mesh_files, write_job_json): part of the output
# contract (docs/reliability.md); each method's OUTPUT_NAMES adds its own files to these.
MESH_OUTPUT_NAMES = ("model.glb", OBJ_NAME, MTL_NAME, TEXTURE_NAME, "mask.png", "reference.png", "job.json")


def seed_everything(seed: int) -> None:
    """Python's, numpy's and torch's global generators from the job's one seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def has_cutout(image: LoadedImage) -> bool:
    """Whether the photo is already a cut-out: an alpha channel with some transparent background."""
    return image.alpha is not None and float((image.alpha < 0.5).mean()) > MIN_ALPHA_COVERAGE


def object_mask(request: GenerateRequest, image: LoadedImage, models: ModelMode, cache: JobCache,
                clock: StageClock, control: JobControl, reused: list[str]) -> np.ndarray:
    """The object's mask, [H, W] bool at the photo's size: the request's own mask, the photo's alpha, the job
    cache, or text-guided segmentation (stage ``segment``). Appends "mask" to ``reused`` when not computed."""
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
        if has_cutout(image):
            return image.alpha >= 0.5
        raise BadInputError(PROMPT_NEEDED)
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


def job_metadata(request: GenerateRequest, config, models: ModelMode, device, reused) -> dict:
    """job.json's (and the GLB's extras') shared fields; ``config`` is the method's config dataclass."""
    import transformers

    meta = {
        "generator": f"image_to_3d {__version__}",
        "image": str(request.image_path),
        "prompt": request.prompt,
        "method": request.method,
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


def save_png(path: Path, array: np.ndarray) -> None:
    """A bool mask as 0/255, or a float [H, W, C] image in [0, 1] as 8-bit."""
    from PIL import Image

    if array.dtype == bool:
        img = Image.fromarray(array.astype(np.uint8) * 255)
    else:
        img = Image.fromarray((np.clip(array, 0, 1) * 255 + 0.5).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    path.write_bytes(buf.getvalue())


def write_mesh_files(staging: Path, mesh: Mesh, metadata: dict, mask: np.ndarray, reference: np.ndarray,
                     control: JobControl) -> None:
    """model.glb, model.obj (+ .mtl, texture), mask.png and reference.png (what the mesh was made from) into
    the staging folder: every method's files (DreamGaussian adds gaussians.ply)."""
    from ..export import export_glb, export_obj
    from ..export.texture_image import texture_png

    control.report("export", 0.0, "model.glb")
    png = texture_png(mesh)  # once, for both files
    export_glb(mesh, staging / "model.glb", metadata, texture_png=png)
    control.report("export", 0.4, "model.obj")
    export_obj(mesh, staging, texture_png=png)
    save_png(staging / "mask.png", mask)
    save_png(staging / "reference.png", reference)


def write_job_json(staging: Path, metadata: dict, clock: StageClock, started: float) -> None:
    """job.json: ``metadata`` plus the per-stage seconds, the whole job's seconds since ``started``
    (time.perf_counter) and the per-stage peak GPU memory."""
    metadata["timings_s"] = {k: round(v, 4) for k, v in clock.seconds.items()}
    metadata["total_s"] = round(time.perf_counter() - started, 3)
    metadata["peak_gpu_memory_mb"] = {k: round(v, 1) for k, v in clock.peak_memory_mb.items()}
    metadata["process"] = process_facts()
    (staging / "job.json").write_text(json.dumps(metadata, indent=2))


def process_facts() -> dict:
    """Which process made the job and with what: its id, the GPUs it was shown, its CPU threads. In a batch under
    Ray this says which worker made a row and how many threads Ray left it (scripts/bench_batch.py reads it);
    job.json only, not the GLB's extras."""
    return {"pid": os.getpid(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "torch_threads": torch.get_num_threads()}
