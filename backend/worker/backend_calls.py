"""The one place the worker calls into the backend: the same entry points the CLI uses, no second pipeline.

Each ``run_*`` takes a request message and a :class:`~backend.job_control.JobControl` and returns the
message-level outcome (plain paths and numbers). When the backend grows a single front door
(``backend/api.py``), only this module changes.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ImageTo3DError, OutOfGPUMemoryError
from ..job_control import JobControl
from .messages import (
    CorrectMaskRequest,
    GeneratedObject,
    GenerateOutcome,
    GenerateRequest,
    JobSettings,
    ObjectFinished,
    SegmentedFiles,
    SegmentOutcome,
    SegmentRequest,
)

# The stages each job goes through, in order (the names the backend reports): what "step i of n" counts.
SEGMENT_STAGES = ("load models", "clipseg", "sam embedding", "sam masks", "write")
GENERATE_STAGES = ("segment", "preprocess", "load_guidance", "stage1", "mesh", "uv_unwrap", "bake", "texture",
                   "export")
CORRECT_MASK_STAGES = ("correct mask",)
STAGE_LABELS = {
    "load models": "Loading the segmentation models", "clipseg": "Finding the prompt (CLIPSeg)",
    "sam embedding": "Reading the photo (SAM)", "sam masks": "Cutting out the masks (SAM)",
    "write": "Writing the masks", "segment": "Cutting out the object", "preprocess": "Preparing the reference view",
    "load_guidance": "Loading Zero123", "stage1": "Fitting 3D Gaussians", "mesh": "Extracting the mesh",
    "uv_unwrap": "Unwrapping UVs", "bake": "Baking the texture", "texture": "Refining the texture",
    "export": "Writing the model files", "correct mask": "Correcting the mask",
}


@contextmanager
def job_environment(settings: JobSettings) -> Iterator[None]:
    """The environment variables the backend reads, set for one job and restored after it."""
    wanted = {"HF_HUB_OFFLINE": "1" if settings.offline else None, "IMAGE_TO_3D_MODEL_DIR": settings.model_dir}
    saved = {key: os.environ.get(key) for key, value in wanted.items() if value is not None}
    for key in saved:
        os.environ[key] = wanted[key]  # type: ignore[assignment]
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_segment(request: SegmentRequest, control: JobControl) -> SegmentOutcome:
    from ..segment import segment_to_folder

    outputs = segment_to_folder(request.image_path, list(request.prompts), _segment_config(request.settings),
                                request.out_dir, control)
    return _segment_outcome(Path(outputs.out_dir), [(r.prompt, r.slug) for r in outputs.results])


def run_generate(request: GenerateRequest, control: JobControl,
                 on_object: Callable[[ObjectFinished], None]) -> GenerateOutcome:
    """One prompt (or none, for a cut-out): ``generate``; several: ``generate_many``, each object announced."""
    from ..generate import generate, generate_many

    template = _generate_request(request)
    if len(request.prompts) > 1:
        def announce(item) -> None:
            on_object(ObjectFinished(request.id, item.index, item.count, item.prompt, _object(item.result)))

        many = generate_many(request.image_path, list(request.prompts), request.out_dir, template, control,
                             announce)
        return GenerateOutcome(str(many.out_root), tuple(_object(item.result) for item in many.objects))
    if request.mask_path:
        template = dataclasses.replace(template, mask=read_mask_png(request.mask_path))
    result = generate(template, control)
    return GenerateOutcome(str(result.out_dir), (_object(result),))


def run_correct_mask(request: CorrectMaskRequest, control: JobControl) -> SegmentOutcome:
    import numpy as np

    from ..atomic_output import AtomicOutputDir
    from ..errors import BadInputError
    from ..images import load_image
    from ..segment import SegmentationResult, slugify
    from ..segment.correction import correct_mask
    from ..segment.outputs import write_prompt_images

    if not request.points or len(request.points) != len(request.labels):
        raise BadInputError(f"mask correction needs one label per point, got {len(request.points)} point(s) "
                            f"and {len(request.labels)} label(s)")
    control.report("correct mask", 0.0, f"{len(request.points)} point(s)")
    image = load_image(request.image_path)
    mask = correct_mask(image, read_mask_png(request.mask_path), np.asarray(request.points, np.float64),
                        np.asarray(request.labels, np.int64), _segment_config(request.settings))
    control.report("correct mask", 0.9, "writing the mask")
    slug = slugify(request.prompt or "object")
    result = SegmentationResult(prompt=request.prompt, slug=slug, mode="corrected", mask=mask, score=1.0,
                                heatmap=np.zeros((1, 1), np.float32), working_size=mask.shape)
    with AtomicOutputDir(Path(request.out_dir)) as staging:
        write_prompt_images(staging, image, result)
    control.report("correct mask", 1.0)
    return _segment_outcome(Path(request.out_dir), [(request.prompt, slug)])


def release_models() -> int:
    """Drop every model kept between jobs and give cached GPU memory back; returns how many were kept."""
    from ..models.loaded import clear_loaded_models, loaded_keys

    count = len(loaded_keys())
    clear_loaded_models()
    correction = sys.modules.get(f"{__package__.rsplit('.', 1)[0]}.segment.correction")
    if correction is not None:  # the last photo's SAM embedding holds a predictor (and its model)
        correction._EMBEDDED.clear()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
    return count


def describe_error(error: BaseException) -> tuple[int, str]:
    """(exit code, one line) for anything a job raised; a bug's traceback goes to stderr."""
    if isinstance(error, ImageTo3DError):
        return error.exit_code, str(error)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(error, torch.cuda.OutOfMemoryError):
        oom = OutOfGPUMemoryError("the job")
        return oom.exit_code, str(oom)
    traceback.print_exception(error, file=sys.stderr)
    return 1, f"internal error ({type(error).__name__}: {error}); see the worker's log and report it"


def read_mask_png(path: str):
    """[H, W] bool from an 8-bit mask PNG (0 / 255)."""
    import numpy as np
    from PIL import Image

    from ..errors import BadInputError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L")) > 127
    except OSError as exc:
        raise BadInputError(f"cannot read the mask {path}: {exc}") from None


def _segment_config(settings: JobSettings):
    from ..models.mode import resolve_model_mode
    from ..segment import SegmentConfig

    return SegmentConfig(mode=settings.mode, sam_variant=settings.sam_variant, device=settings.device,
                         half=settings.half, models=resolve_model_mode(settings.models))


def _generate_request(request: GenerateRequest):
    from ..generate import GenerateRequest as BackendGenerateRequest

    settings = request.settings
    return BackendGenerateRequest(image_path=request.image_path, prompt=request.prompts[0] if request.prompts else None,
                                  out_dir=request.out_dir, preset=request.preset, steps=request.steps,
                                  seed=request.seed, mode=settings.mode, sam_variant=settings.sam_variant,
                                  models=settings.models, device=settings.device, half=settings.half)


def _segment_outcome(out_dir: Path, prompts: list[tuple[str, str]]) -> SegmentOutcome:
    return SegmentOutcome(str(out_dir), tuple(
        SegmentedFiles(prompt, slug, str(out_dir / f"{slug}.mask.png"), str(out_dir / f"{slug}.cutout.png"),
                       str(out_dir / f"{slug}.overlay.png")) for prompt, slug in prompts))


def _object(result) -> GeneratedObject:
    """The message form of a backend GenerationResult."""
    return GeneratedObject(out_dir=str(result.out_dir), glb_path=str(result.glb_path), obj_path=str(result.obj_path),
                           job_json_path=str(result.job_json_path), timings=dict(result.timings),
                           peak_gpu_memory_mb=float(result.peak_gpu_memory_mb),
                           reference_crop=tuple(result.reference_crop) if result.reference_crop else None,
                           image_size=tuple(result.image_size) if result.image_size else None)


def describe_environment():
    """The facts a ``hello`` carries; torch problems are reported, never raised."""
    import platform

    from .. import __version__
    from .messages import PROTOCOL_VERSION, Hello

    facts = dict(torch="", cuda="", device="cpu", gpu="", vram_total_mb=0.0, vram_free_mb=0.0, problem="")
    try:
        import torch

        facts.update(torch=torch.__version__, cuda=torch.version.cuda or "")
        if torch.cuda.is_available():
            free, total = torch.cuda.mem_get_info()
            facts.update(device="cuda", gpu=torch.cuda.get_device_name(0), vram_total_mb=total / 2**20,
                         vram_free_mb=free / 2**20)
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            facts.update(gpu="Apple GPU (MPS): not used yet, jobs run on the CPU")
    except Exception as exc:  # noqa: BLE001 - a broken torch is exactly what hello must describe
        facts["problem"] = f"torch cannot be used: {type(exc).__name__}: {exc}"
    return Hello(protocol=PROTOCOL_VERSION, backend_version=__version__, python=platform.python_version(),
                 python_executable=sys.executable, **facts)
