"""The work a job does, as a plain callable ``work(control) -> result`` built from a JobConfig.

This is the only module of the add-on that runs backend jobs, all through ``backend.api`` (imported inside the
callables, when a job starts, so enabling the add-on stays instant; the rest of the add-on reads only the
torch-free declarations: ``backend.choices``, ``backend.models.catalog``, the request type, the worker's
stdlib-only ``messages``). The ``*_request`` builders here are also what ``worker_requests`` sends to the worker
process, so both paths run the same request, and a segment job returns the worker's own result type
(``messages.SegmentOutcome``), so both paths hand Blender the same thing. Tests replace :func:`build_segment_work` and :func:`build_generate_work` with fakes that write the same
files.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..backend.models.catalog import MODEL_REPOS
from ..backend.worker.messages import SegmentOutcome
from ..properties.job_config import AddonOptions, JobConfig

ONLINE_ACCESS_HINT = ("Blender's online access is off: enable Preferences > System > Network > Allow Online Access "
                      "to download models once, or set local model folders in the add-on preferences")


def output_root(options: AddonOptions) -> Path:
    """The folder that holds every job's folder (and history.json): the one chosen in the preferences, else
    ``jobs/`` in the platform's per-user data folder (never a shared one such as the temp folder, where
    another user could plant a link and receive our files), created private (0700)."""
    if options.output_dir:
        return Path(options.output_dir)
    from ..backend.errors import ImageTo3DError
    from ..backend.private_dirs import private_folder, user_data_dir

    root = user_data_dir() / "jobs"
    try:
        private_folder(root)
    except ImageTo3DError:
        pass  # the job's own write then fails with the one-line reason (exit 2)
    return root


def job_out_dir(options: AddonOptions, kind: str, prompt: str | None) -> Path:
    """A fresh folder name for one job's files (created by the backend, atomically)."""
    root = output_root(options)
    label = re.sub(r"[^a-z0-9]+", "-", (prompt or kind).lower()).strip("-") or kind
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}-{label}"
    path, number = root / stem, 1
    while path.exists():  # two jobs within one second (a quick re-run) must not share a folder
        number += 1
        path = root / f"{stem}-{number}"
    return path


def job_environment(options: AddonOptions) -> dict[str, str]:
    """Environment variables the backend reads, set for the job's duration."""
    env: dict[str, str] = {}
    if not options.online_access:
        env["HF_HUB_OFFLINE"] = "1"
    if options.model_source == "local" and options.local_model_dirs:
        env["IMAGE_TO_3D_MODEL_DIR"] = str(linked_model_dir(options.local_model_dirs))
    return env


def use_python_packages(options: AddonOptions) -> None:
    """Put the preference's Python packages folder on sys.path (after Blender's own) before the job imports torch.

    Done when a job starts, never at register time, so enabling the add-on stays instant and harmless.
    """
    if not options.python_packages_dir:
        return
    from ..backend.environment_check import add_packages_folder
    from ..backend.errors import BadInputError

    try:
        add_packages_folder(options.python_packages_dir)
    except FileNotFoundError as exc:
        raise BadInputError(f"{exc}: fix or clear it in the add-on preferences") from exc


def linked_model_dir(local_dirs: dict[str, str]) -> Path:
    """A folder of links ``<repo id with / → -->`` → the user's folder per model (the layout hub.py reads)."""
    root = Path(tempfile.mkdtemp(prefix="image_to_3d_models_"))
    for key, folder in local_dirs.items():
        if key in MODEL_REPOS and folder:
            _link_folder(Path(folder).resolve(), root / MODEL_REPOS[key].replace("/", "--"))
    return root


def _link_folder(target: Path, link: Path) -> None:
    try:
        os.symlink(target, link, target_is_directory=True)
    except OSError:
        if sys.platform != "win32":
            raise
        import _winapi  # symlinks need developer mode on Windows; junctions need nothing

        _winapi.CreateJunction(str(target), str(link))


def build_segment_work(config: JobConfig, out_dir: Path) -> Callable[[Any], SegmentOutcome]:
    """``work(control)`` that runs text-guided segmentation of every prompt into ``out_dir``."""

    def work(control) -> SegmentOutcome:
        from ..backend import api
        from ..backend.worker.backend_calls import segment_outcome

        options = config.options
        request = segment_request(config, out_dir)
        with _explained_model_errors(options):
            outputs = api.segment(request, control)
        return segment_outcome(outputs)  # the worker's own result type: both paths hand the same to Blender

    return work


def segment_request(config: JobConfig, out_dir: Path):
    """backend.api.SegmentRequest of ``config``: every prompt, the generate request's segmentation settings."""
    from ..backend import api

    request = config.request
    return api.SegmentRequest(image_path=config.image_path, prompts=config.prompts, out_dir=str(out_dir),
                              mode=request.mode, sam_variant=request.sam_variant, device=request.device,
                              half=request.half, models=request.models, segmenter=request.segmenter,
                              sam3=request.sam3)


def build_choose_instance_work(config: JobConfig, instance_masks: tuple[str, ...], instance: str,
                               out_dir: Path) -> Callable[[Any], SegmentOutcome]:
    """``work(control)`` that makes SAM 3's instance ``instance`` (a rank "N", or "union") the first prompt's
    mask from the instance files a SAM 3 Segment saved: the same three PNGs as Segment, no model run."""

    def work(control) -> SegmentOutcome:
        from ..backend import api
        from ..backend.worker.backend_calls import corrected_outcome

        chosen = api.choose_instance(choose_instance_request(config, instance_masks, instance, out_dir), control)
        return corrected_outcome(chosen)

    return work


def choose_instance_request(config: JobConfig, instance_masks: tuple[str, ...], instance: str, out_dir: Path):
    """backend.api.ChooseInstanceRequest: SAM 3's instance ``instance`` of the first prompt into ``out_dir``."""
    from ..backend import api

    return api.ChooseInstanceRequest(image_path=config.image_path, instance_masks=tuple(instance_masks),
                                     instance=instance, out_dir=str(out_dir), prompt=config.prompt or "object")


def build_generate_work(config: JobConfig, out_dir: Path) -> Callable[[Any], Any]:
    """``work(control)`` that runs the whole pipeline; returns backend.api's GenerationResult."""

    def work(control):
        from ..backend import api
        from ..backend.segment.outputs import read_mask_png

        request = generate_request(config, out_dir)
        if config.mask_path:
            request = dataclasses.replace(request, mask=read_mask_png(config.mask_path))
        with _explained_model_errors(config.options):
            return api.generate(request, control)

    return work


def build_generate_many_work(config: JobConfig, out_root: Path,
                             deliver: Callable[[Any], None]) -> Callable[[Any], Any]:
    """``work(control)`` for several prompts: one segmentation, then one object per prompt, each handed to
    ``deliver`` (backend.api's ObjectDone) as soon as it is finished; returns the ManyGenerationResult."""

    def work(control):
        from ..backend import api

        request = api.GenerateObjectsRequest(config.image_path, config.prompts, str(out_root),
                                             generate_request(config, out_root))
        with _explained_model_errors(config.options):
            return api.generate_objects(request, control, deliver)

    return work


def build_correct_mask_work(config: JobConfig, mask_path: str, points: list[tuple[float, float]],
                            labels: list[int], out_dir: Path) -> Callable[[Any], SegmentOutcome]:
    """``work(control)`` that corrects the first prompt's mask with the points and writes the same three PNGs as
    Segment (mask, cut-out, overlay) into ``out_dir``."""

    def work(control) -> SegmentOutcome:
        from ..backend import api
        from ..backend.worker.backend_calls import corrected_outcome

        request = correct_mask_request(config, mask_path, points, labels, out_dir)
        with _explained_model_errors(config.options):
            corrected = api.correct_mask(request, control)
        return corrected_outcome(corrected)

    return work


def correct_mask_request(config: JobConfig, mask_path: str, points, labels, out_dir: Path):
    """backend.api.CorrectMaskRequest: the first prompt's mask refined with the points (x, y photo pixels) and
    labels (1 object, 0 not), the job's SAM variant, device and precision."""
    from ..backend import api

    request = config.request
    return api.CorrectMaskRequest(image_path=config.image_path, mask_path=str(mask_path),
                                  points=tuple((float(x), float(y)) for x, y in points),
                                  labels=tuple(int(label) for label in labels), out_dir=str(out_dir),
                                  prompt=config.prompt or "object", sam_variant=request.sam_variant,
                                  models=request.models, device=request.device, half=request.half)


def generate_request(config: JobConfig, out_dir: Path):
    """The backend request of ``config`` (its first prompt, no mask) writing into ``out_dir``."""
    return dataclasses.replace(config.request, out_dir=str(out_dir))


@contextmanager
def _explained_model_errors(options: AddonOptions):
    """Adds where-to-put-the-files advice to a models-unavailable error; frees memory after the job if asked."""
    from ..backend.errors import ModelsUnavailableError

    try:
        yield
    except ModelsUnavailableError as exc:
        if options.online_access:
            raise
        raise ModelsUnavailableError(f"{exc}; {ONLINE_ACCESS_HINT}") from exc
    finally:
        if not options.keep_models_loaded:
            release_model_memory()


def release_model_memory() -> None:
    """Drop the loaded-model cache and what this job left referenced; return cached CUDA blocks to the driver."""
    from ..backend.models.loaded import clear_loaded_models

    clear_loaded_models()  # also runs the cycle collector
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
