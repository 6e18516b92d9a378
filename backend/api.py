"""The backend's one door: what the CLI, the Blender add-on, batch, bench, eval-recon and a worker process call.

Every job is a plain request dataclass in, a :class:`JobControl` (progress callback, cancel) alongside, and a
frozen typed result out; every failure is an :class:`~backend.errors.ImageTo3DError` whose exit code and one
line :func:`describe_error` gives. Importing this module loads no torch: the heavy modules are imported when a
job runs, so a front end can build requests and read the declared choices at no cost. See docs/design.md §8.

    from backend import api
    request = api.GenerateRequest(image_path="cup.jpg", prompt="a cup", out_dir="out/cup", seed=3)
    result = api.generate(request, api.JobControl(on_progress=print))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .choices import (
    DEFAULT_DEVICE,
    DEFAULT_METHOD,
    DEFAULT_PRESET,
    DEFAULT_SAM,
    DEFAULT_SEGMENTATION_MODE,
    DEFAULT_SEGMENTER,
    DEVICES,
    METHODS,
    MODEL_MODES,
    PRESETS,
    SAM_VARIANT_CHOICES,
    SEGMENTATION_MODES,
    SEGMENTERS,
    TEST_PRESETS,
    Choice,
    check_seed,
)
from .errors import EXIT_CODES, BadInputError, ImageTo3DError, describe_error
from .generate.request import GenerateRequest, GenerationResult, check_request
from .input_checks import check_photo_job
from .job_control import JobControl, Progress, ensure_control
from .models.download import reporting_downloads
from .segment.sam3_config import Sam3Options

if TYPE_CHECKING:
    from .generate.multi import ManyGenerationResult, ObjectDone
    from .segment.config import SegmentConfig
    from .segment.outputs import PromptFiles, SegmentOutputs

__all__ = [
    "ChooseInstanceRequest", "Choice", "CorrectMaskRequest", "CorrectedMask", "DeclaredChoices", "EXIT_CODES", "GenerateObjectsRequest",
    "GenerateRequest", "GenerationResult", "ImageTo3DError", "JobControl", "Progress", "Sam3Options", "SegmentRequest",
    "check_seed", "choose_instance", "correct_mask", "declared_choices", "describe_error", "generate", "generate_objects",
    "generate_together", "segment",
]


@dataclass(frozen=True)
class SegmentRequest:
    """Cut each prompt's object out of one photo; files go to ``out_dir`` (created atomically)."""

    image_path: str
    prompts: tuple[str, ...]
    out_dir: str
    mode: str = DEFAULT_SEGMENTATION_MODE
    sam_variant: str = DEFAULT_SAM
    threshold: float | None = None  # CLIPSeg heatmap cut; None → backend.segment.config.DEFAULT_THRESHOLD
    models: str | None = None  # real | tiny | full-random; None → $IMAGE_TO_3D_MODELS, else real
    device: str = DEFAULT_DEVICE
    half: bool = True  # fp16 on CUDA
    segmenter: str = DEFAULT_SEGMENTER  # backend.choices.SEGMENTERS: clipseg-sam | sam3
    sam3: Sam3Options = Sam3Options()  # SAM 3 only (segmenter "sam3"): instance, boxes, consent, token
    overwrite: bool = False  # replace output names in out_dir that this tool did not write (docs/reliability.md)

    def __post_init__(self) -> None:
        self.sam3_settings()  # SAM 3 options with the other segmenter, a bad instance or box: exit 2 up front

    def sam3_settings(self):
        """backend.segment.sam3_config.Sam3SegmentConfig of this request's SAM 3 fields."""
        return self.sam3.settings(self.segmenter)

    def segment_config(self) -> SegmentConfig:
        from .models.mode import resolve_model_mode
        from .segment.config import DEFAULT_THRESHOLD, SegmentConfig

        threshold = DEFAULT_THRESHOLD if self.threshold is None else self.threshold
        return SegmentConfig(mode=self.mode, sam_variant=self.sam_variant, threshold=threshold,
                             models=resolve_model_mode(self.models), device=self.device, half=self.half,
                             segmenter=self.segmenter, sam3=self.sam3_settings())


@dataclass(frozen=True)
class CorrectMaskRequest:
    """Redo one mask with the user's points: SAM sees the photo, the current mask and the points."""

    image_path: str
    mask_path: str  # 8-bit PNG (0 / 255) at the photo's size: the mask to correct
    points: tuple[tuple[float, float], ...]  # (x, y) in continuous photo pixels (a pixel's centre is i + 0.5)
    labels: tuple[int, ...]  # one per point: 1 = belongs to the object, 0 = does not
    out_dir: str  # gets <slug>.mask.png, .cutout.png, .overlay.png (atomically)
    prompt: str = "object"  # names the files
    sam_variant: str = DEFAULT_SAM
    models: str | None = None
    device: str = DEFAULT_DEVICE
    half: bool = True


@dataclass(frozen=True)
class CorrectedMask:
    out_dir: Path
    prompt: str
    slug: str
    files: PromptFiles  # mask, cutout, overlay


@dataclass(frozen=True)
class ChooseInstanceRequest:
    """Make another of SAM 3's instances (or their union) the object, from the instance masks a SAM 3 segment
    saved (SegmentOutputs.files[i].instances): no model runs, so it takes a moment."""

    image_path: str
    instance_masks: tuple[str, ...]  # the saved <slug>.instance-<N>.mask.png files, best first
    instance: str  # a rank "N" (1 = best) or "union" (all of them)
    out_dir: str  # gets <slug>.mask.png, .cutout.png, .overlay.png (atomically)
    prompt: str = "object"  # names the files


@dataclass(frozen=True)
class GenerateObjectsRequest:
    """One object per prompt from one photo: one segmentation pass, then a generate job per prompt.

    ``settings`` carries everything else (preset, seed, mode, models, device…); its image, prompt, mask and
    out_dir are replaced. Object i goes to ``out_root/<i+1>-<slug>/``."""

    image_path: str
    prompts: tuple[str, ...]
    out_root: str
    settings: GenerateRequest | None = None


@dataclass(frozen=True)
class DeclaredChoices:
    """Every menu a front end shows, with its default (backend.choices declares them)."""

    methods: tuple[Choice, ...]
    default_method: str
    presets: tuple[Choice, ...]
    test_presets: tuple[Choice, ...]
    default_preset: str
    segmentation_modes: tuple[Choice, ...]
    default_segmentation_mode: str
    sam_variants: tuple[Choice, ...]
    default_sam_variant: str
    segmenters: tuple[Choice, ...]
    default_segmenter: str
    devices: tuple[str, ...]
    default_device: str
    model_modes: tuple[str, ...]
    exit_codes: dict[int, str]


def declared_choices() -> DeclaredChoices:
    return DeclaredChoices(METHODS, DEFAULT_METHOD, PRESETS, TEST_PRESETS, DEFAULT_PRESET, SEGMENTATION_MODES,
                           DEFAULT_SEGMENTATION_MODE, SAM_VARIANT_CHOICES, DEFAULT_SAM, SEGMENTERS, DEFAULT_SEGMENTER,
                           DEVICES, DEFAULT_DEVICE, MODEL_MODES, dict(EXIT_CODES))


def segment(request: SegmentRequest, control: JobControl | None = None) -> SegmentOutputs:
    """Masks, cut-outs, overlays and segment.json in ``request.out_dir``; the paths come back in the result
    (a front end never rebuilds them from the prompts: duplicate slugs get suffixes)."""
    from .segment.config import check_prompts

    config = request.segment_config()
    prompts = check_prompts(request.prompts)  # before torch and co. load
    check_photo_job(request.image_path, request.out_dir, prompt_given=True)  # so are the photo and --out
    from .segment.outputs import segment_to_folder

    control = ensure_control(control)
    with reporting_downloads(control):  # a first-use model download shows its bytes as this job's progress
        return segment_to_folder(request.image_path, prompts, config, request.out_dir, control,
                                 overwrite=request.overwrite)


def correct_mask(request: CorrectMaskRequest, control: JobControl | None = None) -> CorrectedMask:
    from .atomic_output import AtomicOutputDir
    from .images import load_image
    from .segment.correction import correct_mask as sam_correct_mask
    from .segment.outputs import PromptFiles, read_mask_png, write_mask_images
    from .segment.slug import slugify

    control = ensure_control(control)
    control.report("correct mask", 0.0, f"{len(request.points)} point(s)")
    image = load_image(request.image_path)
    config = SegmentRequest(request.image_path, (request.prompt,), request.out_dir, sam_variant=request.sam_variant,
                            models=request.models, device=request.device, half=request.half).segment_config()
    with reporting_downloads(control):
        mask = sam_correct_mask(image, read_mask_png(request.mask_path), list(request.points),
                                list(request.labels), config)
    control.report("correct mask", 0.9, "writing the mask")
    slug = slugify(request.prompt)
    out_dir = Path(request.out_dir)
    with AtomicOutputDir(out_dir) as staging:
        staged = write_mask_images(staging, image, request.prompt, slug, mask)
    control.report("correct mask", 1.0)
    return CorrectedMask(out_dir, request.prompt, slug,
                         PromptFiles(*(out_dir / path.name for path in (staged.mask, staged.cutout, staged.overlay))))


def choose_instance(request: ChooseInstanceRequest, control: JobControl | None = None) -> CorrectedMask:
    """The chosen instance's mask (or the union of all) as the usual three PNGs; the model is not run again."""
    from .segment.instances import choose_saved_instance

    return choose_saved_instance(request, control)


def generate(request: GenerateRequest, control: JobControl | None = None) -> GenerationResult:
    """Photo (+ prompt, or a given mask) → model.glb, model.obj, job.json (and gaussians.ply unless the method is
    quick) in ``request.out_dir``; ``request.method`` picks how (backend.choices.METHODS)."""
    # mistakes that need no model are answered before the pipeline (torch and co.) is imported
    check_request(request)
    check_photo_job(request.image_path, request.out_dir,
                    prompt_given=bool(request.prompt) or request.mask is not None)
    from .generate.pipeline import generate as run_pipeline

    control = ensure_control(control)
    with reporting_downloads(control):
        return run_pipeline(request, control)


def generate_together(requests: list[GenerateRequest], controls: list[JobControl | None] | None = None
                      ) -> list[GenerationResult | ImageTo3DError | Exception]:
    """Several independent jobs in one process, their stage-1 fits and stage-2 texture refinements sharing
    batched Zero123 calls (batch's ``--rows-per-process``). Each job's result or the error that ended it, in order; a job fails and cancels
    (its own control) alone."""
    from .generate.pipeline import generate_together as run_together

    return run_together(requests, controls)


def generate_objects(request: GenerateObjectsRequest, control: JobControl | None = None,
                     on_object_done: Callable[[ObjectDone], None] | None = None) -> ManyGenerationResult:
    """Several objects; ``on_object_done`` hears of each as soon as it is finished (in the calling thread)."""
    from .generate.multi import generate_many

    control = ensure_control(control)
    with reporting_downloads(control):
        return generate_many(request.image_path, list(request.prompts), request.out_root, request.settings,
                             control, on_object_done)


@dataclass(frozen=True)
class DownloadModelRequest:
    """One model of backend.models.catalog.MODEL_CARDS to fetch into the Hugging Face cache."""

    key: str  # e.g. "clipseg", "sam:vit_b", "zero123"
    accept_sam3_license: bool = False  # SAM 3's weights are fetched only after the user accepted their licence
    hf_token: str | None = field(default=None, repr=False)  # gated repositories (SAM 3)


def download_model(request: DownloadModelRequest, control: JobControl | None = None):
    """Fetch one model now, reporting stage "download" with bytes and speed; returns a DownloadResult."""
    from .models.download import download_model as fetch

    if request.key == "sam3" and not request.accept_sam3_license:
        raise BadInputError("SAM 3's licence is not accepted yet: tick it in the add-on's preferences first")
    return fetch(request.key, control or JobControl(), token=request.hf_token or None)
