"""The worker protocol's messages: one frozen dataclass per meaning, and their JSON-object form.

Every message is one JSON object with a ``type``; requests carry an ``id`` that every event answering them
echoes. Unknown fields are ignored (a newer client may send more); an unknown ``type``, a missing required
field or a wrong value type is a :class:`ProtocolError`, which the worker answers with an ``error`` event.
Stdlib only: the Blender add-on imports this module in Blender's own process (and uses its result types for
the in-process path too).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Union

PROTOCOL_VERSION = 2  # 2: job messages carry the backend.api request (docs/worker-protocol.md)
PROTOCOL_ERROR_EXIT_CODE = 2  # a malformed or unknown message is bad input (docs/design.md §4)
WORKER_DIED_EXIT_CODE = 1  # the worker process ended without answering: a crash, never the user's fault


class ProtocolError(ValueError):
    """A line that is not a valid message; ``request_id`` is the id it carried, if one could be read."""

    def __init__(self, message: str, request_id: str = ""):
        super().__init__(message)
        self.request_id = request_id


# --- requests (client → worker) -------------------------------------------------------------------------


@dataclass(frozen=True)
class JobSettings:
    """What the worker does around a job (the job itself is the api request): environment and memory."""

    offline: bool = False  # no model downloads for this job (sets HF_HUB_OFFLINE=1 while it runs)
    model_dir: str | None = None  # a folder of model files (IMAGE_TO_3D_MODEL_DIR layout)
    keep_models_loaded: bool = True  # False: the worker frees its models when the job ends


# A job message carries the backend's own request (backend.api: SegmentRequest, GenerateRequest,
# CorrectMaskRequest, ChooseInstanceRequest) as a JSON object of its plain fields, so a field added to the api
# reaches the worker with no change here; the worker builds the api type from it and checks every value
# (backend/worker/backend_calls.py). ``repr=False``: the request may hold a Hugging Face token.


@dataclass(frozen=True)
class SegmentJob:
    """backend.api.segment: masks, cut-outs and overlays of every prompt (SAM 3 also its instances)."""

    id: str
    request: dict[str, Any] = field(repr=False)  # backend.api.SegmentRequest's fields
    settings: JobSettings = field(default_factory=JobSettings)
    type: str = "segment"


@dataclass(frozen=True)
class GenerateJob:
    """backend.api.generate (one object), or with several ``prompts`` backend.api.generate_objects: one
    segmentation pass, then one object each into ``request.out_dir/<i>-<slug>/``, each announced by an
    ``object_finished`` event. ``request`` is the settings every object shares (method, preset, seed, …)."""

    id: str
    request: dict[str, Any] = field(repr=False)  # backend.api.GenerateRequest's fields (no ``mask``/``config``)
    prompts: tuple[str, ...] = ()  # two or more: one object per prompt; otherwise request.prompt is the one
    mask_path: str | None = None  # one object: a mask PNG (a corrected or chosen mask) used instead of segmenting
    settings: JobSettings = field(default_factory=JobSettings)
    type: str = "generate"


@dataclass(frozen=True)
class CorrectMaskJob:
    """backend.api.correct_mask: SAM refines a mask with the user's points; the three PNGs Segment writes."""

    id: str
    request: dict[str, Any] = field(repr=False)  # backend.api.CorrectMaskRequest's fields
    settings: JobSettings = field(default_factory=JobSettings)
    type: str = "correct_mask"


@dataclass(frozen=True)
class ChooseInstanceJob:
    """backend.api.choose_instance: another saved SAM 3 instance (or all) becomes the mask; no model runs."""

    id: str
    request: dict[str, Any] = field(repr=False)  # backend.api.ChooseInstanceRequest's fields
    settings: JobSettings = field(default_factory=JobSettings)
    type: str = "choose_instance"


@dataclass(frozen=True)
class DownloadModelJob:
    """backend.api.download_model: one catalog model into the Hugging Face cache, progress in bytes."""

    id: str
    request: dict[str, Any] = field(repr=False)  # backend.api.DownloadModelRequest's fields
    settings: JobSettings = field(default_factory=JobSettings)
    type: str = "download_model"


@dataclass(frozen=True)
class CancelRequest:
    id: str
    job_id: str  # the running job to stop
    type: str = "cancel"


@dataclass(frozen=True)
class ReleaseModelsRequest:
    id: str
    type: str = "release_models"


@dataclass(frozen=True)
class HelloRequest:
    """Asks for the hello again (the worker sends one unasked at start)."""

    id: str
    type: str = "hello"


@dataclass(frozen=True)
class ShutdownRequest:
    id: str
    type: str = "shutdown"


JobRequest = SegmentJob | GenerateJob | CorrectMaskJob | ChooseInstanceJob | DownloadModelJob
JOB_TYPES = (SegmentJob, GenerateJob, CorrectMaskJob, ChooseInstanceJob, DownloadModelJob)
Request = JobRequest | CancelRequest | ReleaseModelsRequest | HelloRequest | ShutdownRequest
REQUEST_TYPES: dict[str, type] = {cls.type: cls for cls in (  # type: ignore[attr-defined]
    *JOB_TYPES, CancelRequest, ReleaseModelsRequest, HelloRequest, ShutdownRequest)}


def request_fields(request: Any) -> dict[str, Any]:
    """The plain fields of a backend.api request dataclass, for a job message's ``request``.

    ``mask`` (an array) and ``config`` (a PipelineConfig) cannot cross as JSON: a mask goes as a file
    (GenerateJob.mask_path); a request that holds either is refused here rather than sent half."""
    fields = {}
    for item in dataclasses.fields(request):
        value = getattr(request, item.name)
        if item.name in NOT_CARRIED:
            if value is not None:
                raise ValueError(f"{type(request).__name__}.{item.name} cannot be sent to the worker "
                                 f"({NOT_CARRIED[item.name]})")
            continue
        fields[item.name] = _as_json(value)
    return fields


def _as_json(value: Any) -> Any:
    """Tuples as lists and nested dataclasses (SegmentRequest.sam3) as objects, as JSON carries them (so a
    message equals itself after a round trip)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {item.name: _as_json(getattr(value, item.name)) for item in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_as_json(item) for item in value]
    return value


NOT_CARRIED = {"mask": "send the mask as a PNG: GenerateJob.mask_path", "config": "send a preset and steps"}

# --- results carried by ``done`` -------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentedInstance:
    """One instance SAM 3 found (segment.json's ``instances``)."""

    rank: int  # 1 = best
    score: float
    mask_path: str  # <slug>.instance-<rank>.mask.png, the photo's size


@dataclass(frozen=True)
class SegmentedFiles:
    """The files segmentation wrote for one prompt (docs/design.md §4 names)."""

    prompt: str
    slug: str
    mask_path: str  # <slug>.mask.png, 8-bit 0/255, the photo's size
    cutout_path: str  # <slug>.cutout.png, RGBA
    overlay_path: str  # <slug>.overlay.png
    instances: tuple[SegmentedInstance, ...] = ()  # segmenter sam3: every instance, best first


@dataclass(frozen=True)
class SegmentOutcome:
    """A segment, correct-mask or choose-instance job's files; the add-on's in-process path returns it too."""

    out_dir: str
    prompts: tuple[SegmentedFiles, ...]
    kind: str = "segment"


@dataclass(frozen=True)
class GeneratedObject:
    """One object's files and what Blender's photo-match camera needs."""

    out_dir: str
    glb_path: str
    obj_path: str
    job_json_path: str
    ply_path: str | None  # gaussians.ply; None for the quick method
    timings: dict[str, float]
    peak_gpu_memory_mb: float
    reference_crop: tuple[float, float, float] | None = None  # x0, y0, side in photo pixels
    image_size: tuple[int, int] | None = None  # the photo's (width, height)
    kind: str = "object"


@dataclass(frozen=True)
class GenerateOutcome:
    out_dir: str
    objects: tuple[GeneratedObject, ...]  # in prompt order
    kind: str = "generate"


@dataclass(frozen=True)
class Acknowledged:
    """The answer to cancel, release_models and shutdown: what happened, in a few words."""

    what: str
    kind: str = "acknowledged"


Outcome = SegmentOutcome | GenerateOutcome | Acknowledged
OUTCOME_TYPES: dict[str, type] = {cls.kind: cls for cls in (  # type: ignore[attr-defined]
    SegmentOutcome, GenerateOutcome, Acknowledged)}

# --- events (worker → client) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    protocol: int
    backend_version: str
    python: str  # e.g. "3.11.9"
    python_executable: str
    torch: str  # torch.__version__, "" when torch cannot be imported
    cuda: str  # torch.version.cuda, "" without CUDA
    device: str  # what device "auto" runs jobs on: cuda | cpu
    gpu: str  # the GPU's name, "" without one
    vram_total_mb: float
    vram_free_mb: float
    problem: str = ""  # why torch or the device is unusable, "" when all is well
    id: str = ""  # "" for the hello sent at start; the request's id when asked
    type: str = "hello"


@dataclass(frozen=True)
class ProgressEvent:
    id: str
    stage: str  # the backend's stage name, e.g. "stage1", "object 2 of 3: mesh"
    label: str  # the same for people, e.g. "Fitting the shape" (backend/stage_labels.py)
    step: int  # 1-based: the how-many-th stage of this job this is
    steps: int  # the stages this job is expected to go through (grows if the backend reports more)
    stage_fraction: float  # the stage's own completion in [0, 1]
    fraction: float  # the whole job's estimated completion in [0, 1]
    elapsed_s: float
    eta_s: float | None  # estimated seconds left; None until there is enough to go by
    message: str = ""
    type: str = "progress"


@dataclass(frozen=True)
class ObjectFinished:
    id: str
    index: int  # 0-based position in the prompt list
    count: int
    prompt: str
    object: GeneratedObject
    type: str = "object_finished"


@dataclass(frozen=True)
class Done:
    id: str
    result: Outcome
    elapsed_s: float = 0.0
    type: str = "done"


@dataclass(frozen=True)
class ErrorEvent:
    id: str  # the request's id; "" where the line carried none
    exit_code: int  # docs/design.md §4: 2 bad input, 3 nothing matched, 4 models, 5 GPU memory, 130 cancelled, 1 bug
    message: str  # one line
    type: str = "error"


Event = Hello | ProgressEvent | ObjectFinished | Done | ErrorEvent
EVENT_TYPES: dict[str, type] = {cls.type: cls for cls in (  # type: ignore[attr-defined]
    Hello, ProgressEvent, ObjectFinished, Done, ErrorEvent)}

# --- JSON form ---------------------------------------------------------------------------------------------


def encode(message: Any) -> str:
    """One JSON line (no newline) for a request or an event."""
    payload = dataclasses.asdict(message)
    payload["protocol"] = PROTOCOL_VERSION
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def decode_request(line: str) -> Request:
    return _decode(line, REQUEST_TYPES, "request")


def decode_event(line: str) -> Event:
    return _decode(line, EVENT_TYPES, "event")


def _decode(line: str, types_by_name: dict[str, type], what: str):
    try:
        payload = json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(payload, dict):
        raise ProtocolError(f"a message must be a JSON object, got {type(payload).__name__}")
    request_id = payload.get("id") if isinstance(payload.get("id"), str) else ""
    version = payload.get("protocol", PROTOCOL_VERSION)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {version!r} is not supported (this worker speaks "
                            f"{PROTOCOL_VERSION})", request_id)
    cls = types_by_name.get(payload.get("type"))
    if cls is None:
        raise ProtocolError(f"unknown {what} type {payload.get('type')!r} (known: {', '.join(types_by_name)})",
                            request_id)
    try:
        return _build(cls, payload)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"bad {payload['type']} {what}: {exc}", request_id) from None


def _build(cls: type, payload: dict):
    """``cls`` from ``payload``, checking each field against its annotation; unknown keys are ignored."""
    hints = typing.get_type_hints(cls)
    values = {}
    for item in dataclasses.fields(cls):
        if item.name in payload:
            values[item.name] = convert_value(payload[item.name], hints[item.name], item.name)
        elif item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
            raise ValueError(f"missing field {item.name!r}")
    return cls(**values)


def convert_value(value: Any, hint: Any, name: str) -> Any:
    """``value`` from JSON as the type ``hint`` names (tuples from lists, nested dataclasses); ValueError if not."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [arg for arg in args if arg is not type(None)]
        tagged = [arg for arg in options if dataclasses.is_dataclass(arg) and "kind" in _field_names(arg)]
        if tagged and isinstance(value, dict):  # an Outcome: pick the class by its "kind"
            cls = OUTCOME_TYPES.get(value.get("kind"))
            if cls is None:
                raise ValueError(f"{name}: unknown result kind {value.get('kind')!r}")
            return _build(cls, value)
        errors = []
        for option in options:
            try:
                return convert_value(value, option, name)
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise ValueError(errors[0])
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ValueError(f"{name} must be an object, got {value!r}")
        return _build(hint, value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert_value(item, args[0], name) for item in value)
        if len(value) != len(args):
            raise ValueError(f"{name} must have {len(args)} items, got {value!r}")
        return tuple(convert_value(item, arg, name) for item, arg in zip(value, args, strict=True))
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{name} must be an object, got {value!r}")
        return {str(k): convert_value(v, args[1], name) for k, v in value.items()}
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r}")
        return float(value)
    if hint in (int, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ValueError(f"{name} must be {hint.__name__}, got {value!r}")
        return value
    return value


def _field_names(cls: type) -> set[str]:
    return {item.name for item in dataclasses.fields(cls)}
