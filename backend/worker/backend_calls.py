"""The one place the worker calls into the backend: backend.api, the door the CLI and the add-on use too.

A job message's ``request`` becomes the api's own request type (:func:`api_request`, every value checked
against the field's type: a wrong one is bad input, exit 2); :func:`prepare` pairs it with the api call that
runs it and the stages it is expected to report. Results come back as the message-level outcome (plain paths
and numbers) built from the api's result types; errors go through ``api.describe_error``. No pipeline step,
no file writing and no error mapping of the backend's is repeated here.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import traceback
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .. import api
from ..errors import BadInputError
from ..generate.stage_costs import (
    StageCost,
    generate_costs,
    object_prefix,
    prefixed,
    segment_costs,
    segmentation_prefix,
    write_masks_cost,
)
from .messages import (
    Acknowledged,
    ChooseInstanceJob,
    CorrectMaskJob,
    DownloadModelJob,
    GeneratedObject,
    GenerateJob,
    GenerateOutcome,
    JobSettings,
    ObjectFinished,
    Outcome,
    SegmentedFiles,
    SegmentedInstance,
    SegmentJob,
    SegmentOutcome,
    convert_value,
)

# Annotations of api request fields that never cross the protocol (messages.NOT_CARRIED), for get_type_hints.
_NOT_CARRIED_TYPES = {"np": types.SimpleNamespace(ndarray=object), "PipelineConfig": object, "SegmentConfig": object}


@dataclass(frozen=True)
class PreparedJob:
    """A job message made into its api call: ``run(control, on_object)`` → the outcome message."""

    run: Callable[[api.JobControl, Callable[[ObjectFinished], None]], Outcome]
    # The stages it is expected to report, in order, with their expected work: what "step i of n" counts (an
    # estimate only: a stage not planned still gets its step, n grows) and what the progress is weighed by.
    plan: tuple[StageCost, ...]


def api_request(cls: type, fields: dict[str, Any], what: str):
    """``cls`` (an api request dataclass) from a message's ``request``: unknown keys ignored, every value checked
    against its field's type (lists become tuples), then the request's own checks (seed, method, SAM 3)."""
    hints = typing.get_type_hints(cls, localns=_NOT_CARRIED_TYPES)
    values = {}
    try:
        for item in dataclasses.fields(cls):
            if item.name in fields:
                values[item.name] = convert_value(fields[item.name], hints[item.name], item.name)
            elif item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
                raise ValueError(f"missing field {item.name!r}")
    except ValueError as exc:
        raise BadInputError(f"bad {what} request: {exc}") from None
    return cls(**values)


def prepare(message) -> PreparedJob:
    """The api call for a job message; raises BadInputError (exit 2) for a request the api would refuse."""
    if isinstance(message, SegmentJob):
        request = api_request(api.SegmentRequest, message.request, "segment")
        plan = (*segment_costs(request.segmenter, request.mode), write_masks_cost())
        return PreparedJob(lambda control, _: segment_outcome(api.segment(request, control)), plan)
    if isinstance(message, CorrectMaskJob):
        request = api_request(api.CorrectMaskRequest, message.request, "correct_mask")
        return PreparedJob(lambda control, _: corrected_outcome(api.correct_mask(request, control)),
                           (StageCost("correct mask", 1.0),))
    if isinstance(message, ChooseInstanceJob):
        request = api_request(api.ChooseInstanceRequest, message.request, "choose_instance")
        return PreparedJob(lambda control, _: corrected_outcome(api.choose_instance(request, control)),
                           (StageCost("choose instance", 1.0),))
    if isinstance(message, GenerateJob):
        return _prepare_generate(message)
    if isinstance(message, DownloadModelJob):
        request = api_request(api.DownloadModelRequest, message.request, "download_model")

        def run_download(control, _):
            result = api.download_model(request, control)
            return Acknowledged(f"downloaded {result.key}: {result.bytes / 1e6:.0f} MB in {result.seconds:.0f} s")

        return PreparedJob(run_download, (StageCost("download", 1.0),))
    raise BadInputError(f"{type(message).__name__} is not a job")


def _prepare_generate(message: GenerateJob) -> PreparedJob:
    request = api_request(api.GenerateRequest, message.request, "generate")
    per_object = generate_costs(request.method, request.preset, request.steps)
    segmentation = segment_costs(request.segmenter, request.mode)
    given_mask = (StageCost("segment", 0.0),)  # a given mask is reported as a finished "segment" stage
    if len(message.prompts) > 1:
        if message.mask_path:
            raise BadInputError("a mask is for one object; several prompts are segmented together")
        many = api.GenerateObjectsRequest(request.image_path, message.prompts, request.out_dir, request)

        def run_many(control, on_object) -> GenerateOutcome:
            def announce(item) -> None:
                on_object(ObjectFinished(message.id, item.index, item.count, item.prompt, generated_object(item.result)))

            result = api.generate_objects(many, control, announce)
            return GenerateOutcome(str(result.out_root), tuple(generated_object(item.result) for item in result.objects))

        count = len(message.prompts)
        plan = prefixed(segmentation, segmentation_prefix(count)) + tuple(
            cost for index in range(count)
            for cost in prefixed(given_mask + per_object, object_prefix(index, count)))
        return PreparedJob(run_many, plan)
    segments = bool(request.prompt) and not message.mask_path

    def run_one(control, _) -> GenerateOutcome:
        one = request
        if message.mask_path:
            from ..segment.outputs import read_mask_png

            one = dataclasses.replace(request, mask=read_mask_png(message.mask_path))
        result = api.generate(one, control)
        return GenerateOutcome(str(result.out_dir), (generated_object(result),))

    return PreparedJob(run_one, (segmentation if segments else given_mask if message.mask_path else ()) + per_object)


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


def release_models() -> int:
    """Drop every model kept between jobs and give cached GPU memory back; returns how many were kept."""
    from ..models.loaded import clear_loaded_models, loaded_keys

    count = len(loaded_keys())
    clear_loaded_models()
    correction = sys.modules.get(f"{__package__.rsplit('.', 1)[0]}.segment.correction")
    if correction is not None:  # the last photo's SAM embedding holds a predictor (and its model)
        correction.forget_embedding()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
    return count


def describe_error(error: BaseException) -> tuple[int, str]:
    """api.describe_error's (exit code, one line); a bug's traceback goes to stderr, the worker's log."""
    code, message = api.describe_error(error)
    if code == 1:
        traceback.print_exception(error, file=sys.stderr)
        message = f"{message}; see the worker's log and report it"
    return code, message


def segment_outcome(outputs) -> SegmentOutcome:
    """The message form of api.segment's SegmentOutputs: the paths the backend wrote, never rebuilt."""
    return SegmentOutcome(str(outputs.out_dir), tuple(
        _segmented_files(result.prompt, result.slug, files)
        for result, files in zip(outputs.results, outputs.files, strict=True)))


def corrected_outcome(corrected) -> SegmentOutcome:
    """The message form of api.correct_mask's / api.choose_instance's CorrectedMask."""
    return SegmentOutcome(str(corrected.out_dir), (_segmented_files(corrected.prompt, corrected.slug, corrected.files),))


def _segmented_files(prompt: str, slug: str, files) -> SegmentedFiles:
    return SegmentedFiles(prompt, slug, str(files.mask), str(files.cutout), str(files.overlay), tuple(
        SegmentedInstance(int(i.rank), float(i.score), str(i.mask)) for i in files.instances))


def generated_object(result) -> GeneratedObject:
    """The message form of api's GenerationResult."""
    return GeneratedObject(out_dir=str(result.out_dir), glb_path=str(result.glb_path), obj_path=str(result.obj_path),
                           job_json_path=str(result.job_json_path),
                           ply_path=str(result.ply_path) if result.ply_path else None, timings=dict(result.timings),
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
