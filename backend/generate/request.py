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
    check_method,
    check_seed,
)

if TYPE_CHECKING:
    import numpy as np

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
    models: str | None = None  # real | tiny | full-random; None → $IMAGE_TO_3D_MODELS, else real
    device: str = DEFAULT_DEVICE
    half: bool = True  # fp16 models on CUDA
    force: bool = False  # redo cached mask and stage 1
    config: PipelineConfig | None = None
    # [H, W] bool at the photo's size (after EXIF rotation): a mask made beforehand (one segmentation pass
    # for several prompts, a hand-corrected mask); segmentation is skipped and ``prompt`` only names the job
    mask: np.ndarray | None = None
    method: str = DEFAULT_METHOD  # how the object is made: backend.choices.METHODS

    def __post_init__(self):
        # a bad seed or method is bad input (exit 2), found before any work
        check_seed(self.seed)
        check_method(self.method)


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
