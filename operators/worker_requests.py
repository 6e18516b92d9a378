"""The add-on's jobs as worker messages, and the worker's results as what the import code expects.

The job itself is the backend's own request type (backend.api, built by ``backend_jobs`` from the JobConfig,
the same request the in-process path runs); a message carries its plain fields (``request_fields``) plus what
the worker does around it (``JobSettings``). Nothing here imports torch or numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..backend.worker.messages import (
    ChooseInstanceJob,
    CorrectMaskJob,
    GeneratedObject,
    GenerateJob,
    JobSettings,
    SegmentJob,
    request_fields,
)
from ..properties.job_config import AddonOptions, JobConfig
from . import backend_jobs


@dataclass(frozen=True)
class FinishedObject:
    """One object of a several-prompt job, as ``on_partial`` receives it (like backend.api's ObjectDone)."""

    index: int
    count: int
    prompt: str
    result: GeneratedObject  # glb_path, out_dir, reference_crop, image_size: what the import reads


def job_settings(options: AddonOptions) -> JobSettings:
    model_dir = None
    if options.model_source == "local" and options.local_model_dirs:
        model_dir = str(backend_jobs.linked_model_dir(options.local_model_dirs))
    return JobSettings(offline=not options.online_access, model_dir=model_dir,
                       keep_models_loaded=options.keep_models_loaded)


def segment_request(request_id: str, config: JobConfig, out_dir: Path) -> SegmentJob:
    return SegmentJob(request_id, request_fields(backend_jobs.segment_request(config, out_dir)),
                      job_settings(config.options))


def generate_request(request_id: str, config: JobConfig, out_dir: Path) -> GenerateJob:
    """One prompt: one object into ``out_dir`` (with the corrected mask, if any); several: one object each under
    ``out_dir``."""
    several = len(config.prompts) > 1
    return GenerateJob(request_id, request_fields(backend_jobs.generate_request(config, out_dir)),
                       prompts=tuple(config.prompts) if several else (),
                       mask_path=None if several else config.mask_path, settings=job_settings(config.options))


def correct_mask_request(request_id: str, config: JobConfig, mask_path: str, points, labels,
                         out_dir: Path) -> CorrectMaskJob:
    request = backend_jobs.correct_mask_request(config, mask_path, points, labels, out_dir)
    return CorrectMaskJob(request_id, request_fields(request), job_settings(config.options))


def choose_instance_request(request_id: str, config: JobConfig, instance_masks: tuple[str, ...], instance: str,
                            out_dir: Path) -> ChooseInstanceJob:
    request = backend_jobs.choose_instance_request(config, instance_masks, instance, out_dir)
    return ChooseInstanceJob(request_id, request_fields(request), job_settings(config.options))
