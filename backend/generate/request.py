"""What a generate job is asked to do, and what it produced.

Torch-free (numpy and the stage configs only for type checkers): a front end (the add-on, a worker client)
builds a request without loading the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..choices import DEFAULT_DEVICE, DEFAULT_PRESET, DEFAULT_SAM, DEFAULT_SEGMENTATION_MODE
from ..errors import BadInputError

if TYPE_CHECKING:
    import numpy as np

    from .presets import PipelineConfig

# Seeds go to numpy (non-negative only) and to torch generators (64 bits; stage 1 also seeds one with seed + 1),
# so a seed is a non-negative 63-bit integer.
SEED_LIMIT = 2**63


def check_seed(seed: int) -> int:
    """``seed`` if usable, else BadInputError naming it (exit 2), never a numpy error deep in a stage."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise BadInputError(f"--seed must be a whole number from 0 to {SEED_LIMIT - 1}, got {seed!r}")
    return seed




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

    def __post_init__(self):
        check_seed(self.seed)  # a bad seed is bad input (exit 2), found before any work


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
