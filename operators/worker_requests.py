"""The add-on's jobs as worker requests, and the worker's results as what the import code expects.

Plain data both ways (``backend.worker.messages``, stdlib only): nothing here imports torch or numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..backend.worker.messages import (
    CorrectMaskRequest,
    GeneratedObject,
    GenerateRequest,
    JobSettings,
    SegmentOutcome,
    SegmentRequest,
)
from ..properties.job_config import AddonOptions, JobConfig
from .backend_jobs import SegmentedPrompt, SegmentPreview, linked_model_dir


@dataclass(frozen=True)
class FinishedObject:
    """One object of a several-prompt job, as ``on_partial`` receives it (like backend.generate.ObjectDone)."""

    index: int
    count: int
    prompt: str
    result: GeneratedObject  # glb_path, out_dir, reference_crop, image_size: what the import reads


def job_settings(config: JobConfig) -> JobSettings:
    options: AddonOptions = config.options
    model_dir = None
    if options.model_source == "local" and options.local_model_dirs:
        model_dir = str(linked_model_dir(options.local_model_dirs))
    return JobSettings(mode=config.mode, sam_variant=options.sam_variant, device=options.device,
                       half=options.half_precision, offline=not options.online_access, model_dir=model_dir,
                       keep_models_loaded=options.keep_models_loaded)


def segment_request(request_id: str, config: JobConfig, out_dir: Path) -> SegmentRequest:
    return SegmentRequest(request_id, config.image_path, tuple(config.prompts), str(out_dir), job_settings(config))


def generate_request(request_id: str, config: JobConfig, out_dir: Path) -> GenerateRequest:
    mask_path = config.mask_path if len(config.prompts) <= 1 else None
    return GenerateRequest(request_id, config.image_path, tuple(config.prompts), str(out_dir), preset=config.preset,
                           seed=config.seed, mask_path=mask_path, settings=job_settings(config))


def correct_mask_request(request_id: str, config: JobConfig, mask_path: str, points, labels,
                         out_dir: Path) -> CorrectMaskRequest:
    return CorrectMaskRequest(request_id, config.image_path, str(mask_path), config.prompt or "object",
                              tuple((float(x), float(y)) for x, y in points), tuple(int(v) for v in labels),
                              str(out_dir), job_settings(config))


def segment_preview(outcome: SegmentOutcome) -> SegmentPreview:
    """The segment (or correct-mask) result as the image loading code reads it."""
    return SegmentPreview(out_dir=Path(outcome.out_dir), prompts=tuple(
        SegmentedPrompt(p.prompt, p.slug, Path(p.mask_path), Path(p.cutout_path), Path(p.overlay_path))
        for p in outcome.prompts))
