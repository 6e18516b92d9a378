"""What a generate job is asked to do, and what it produced.

Torch-free (numpy and the stage configs only for type checkers): a front end (the add-on, a worker client)
builds a request without loading the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..choices import (
    DEFAULT_DEVICE,
    DEFAULT_METHOD,
    DEFAULT_PRESET,
    DEFAULT_SAM,
    DEFAULT_SEGMENTATION_MODE,
    DEFAULT_SEGMENTER,
    check_method,
    check_seed,
)
from ..segment.sam3_config import Sam3Options

if TYPE_CHECKING:
    import numpy as np

    from ..segment.config import SegmentConfig
    from .presets import PipelineConfig


@dataclass(frozen=True)
class GenerateRequest:
    """One photo (+ prompt) → one textured mesh. ``config`` overrides the preset entirely when given."""

    image_path: str
    prompt: str | None
    out_dir: str
    preset: str = DEFAULT_PRESET
    steps: int | None = None
    seed: int = 0
    mode: str = DEFAULT_SEGMENTATION_MODE  # segmentation: see backend.choices.SEGMENTATION_MODES
    sam_variant: str = DEFAULT_SAM
    segmenter: str = DEFAULT_SEGMENTER  # backend.choices.SEGMENTERS: clipseg-sam | sam3
    sam3: Sam3Options = Sam3Options()  # SAM 3 only (segmenter "sam3"): instance, boxes, consent, token
    models: str | None = None  # real | tiny | full-random; None → $IMAGE_TO_3D_MODELS, else real
    device: str = DEFAULT_DEVICE
    half: bool = True  # fp16 models on CUDA
    force: bool = False  # redo cached mask and stage 1
    overwrite: bool = False  # replace output names in out_dir that this tool did not write (docs/reliability.md)
    config: PipelineConfig | None = None
    # [H, W] bool at the photo's size (after EXIF rotation): a mask made beforehand (one segmentation pass
    # for several prompts, a hand-corrected mask); segmentation is skipped and ``prompt`` only names the job
    mask: np.ndarray | None = None
    method: str = DEFAULT_METHOD  # how the object is made: backend.choices.METHODS
    # stage 1's VAE encoder through torch.compile (GuidanceConfig.compile_vae_encoder): faster steps after tens of
    # seconds of compiling per process, so for batches (batch --compile-vae-encoder)
    compile_vae_encoder: bool = False

    def __post_init__(self):
        # a bad seed, method or SAM 3 option is bad input (exit 2), found before any work
        check_seed(self.seed)
        check_method(self.method)
        self.sam3_settings()  # SAM 3 options with the other segmenter, or a bad instance or box

    def sam3_settings(self):
        """backend.segment.sam3_config.Sam3SegmentConfig of this request's SAM 3 fields."""
        return self.sam3.settings(self.segmenter)

    def segment_config(self) -> SegmentConfig:
        """The segmentation settings of this job (when it segments: a prompt and no mask given)."""
        from ..models.mode import resolve_model_mode
        from ..segment.config import SegmentConfig

        return SegmentConfig(segmenter=self.segmenter, sam3=self.sam3_settings(), mode=self.mode,
                             sam_variant=self.sam_variant, models=resolve_model_mode(self.models),
                             device=self.device, half=self.half)


@dataclass(frozen=True)
class GenerationResult:
    out_dir: Path
    glb_path: Path
    obj_path: Path
    ply_path: Path | None  # None for the quick method (no Gaussians)
    job_json_path: Path
    mask_path: Path | None
    timings: dict[str, float]
    peak_gpu_memory_mb: float
    reused: tuple[str, ...]  # cached stages that were reused ("mask", "stage1")
    # the photo square the reference view shows (backend.preprocess.ReferenceCrop: x0, y0, side in photo
    # pixels) and the photo's (width, height): what Blender's photo-match camera needs
    reference_crop: tuple[float, float, float] | None = None
    image_size: tuple[int, int] | None = None


def check_request(request: GenerateRequest) -> None:
    """BadInputError (exit 2) for a prompt that is not text (see ``check_prompts``); the seed was checked when
    the request was made (backend.choices.check_seed). Called first, before any file is read or model loaded."""
    if request.prompt:
        from ..segment.config import check_prompts

        check_prompts([request.prompt])
