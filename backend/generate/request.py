"""What a generate job is asked to do, and what it produced."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInputError
from .presets import PipelineConfig

SEED_RANGE = (0, 2**64)  # what torch.manual_seed accepts; NumPy gets the seed modulo 2**32


@dataclass(frozen=True)
class GenerateRequest:
    """One photo (+ prompt) → one textured mesh. ``config`` overrides the preset entirely when given."""

    image_path: str
    prompt: str | None
    out_dir: str
    preset: str = "standard"
    steps: int | None = None
    seed: int = 0
    mode: str = "fast"  # segmentation: fast | paper
    sam_variant: str = "vit_h"
    models: str | None = None  # real | tiny | full-random; None → $IMAGE_TO_3D_MODELS, else real
    device: str = "auto"
    half: bool = True  # fp16 models on CUDA
    force: bool = False  # redo cached mask and stage 1
    overwrite: bool = False  # replace output names in out_dir that this tool did not write (docs/reliability.md)
    config: PipelineConfig | None = None
    # [H, W] bool at the photo's size (after EXIF rotation): a mask made beforehand (one segmentation pass
    # for several prompts, a hand-corrected mask); segmentation is skipped and ``prompt`` only names the job
    mask: np.ndarray | None = None


@dataclass(frozen=True)
class GenerationResult:
    out_dir: Path
    glb_path: Path
    obj_path: Path
    ply_path: Path
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
    """BadInputError (exit 2) for what no stage could use: a seed outside SEED_RANGE, a prompt that is not
    text (see ``check_prompts``). Called first, before any file is read or model loaded."""
    if isinstance(request.seed, bool) or not isinstance(request.seed, int) or \
            not SEED_RANGE[0] <= request.seed < SEED_RANGE[1]:
        raise BadInputError(f"seed must be a whole number from 0 to 2**64 - 1, got {request.seed!r}")
    if request.prompt:
        from ..segment.config import check_prompts

        check_prompts([request.prompt])
