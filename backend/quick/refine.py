"""quick+refine: DreamGaussian's stages, with stage 1 started from TripoSR's surface and run shorter (the settings
and why: ``refine_config``).
"""

from __future__ import annotations

import numpy as np
import torch

from ..gaussians.model import GaussianModel
from ..generate.stage_clock import StageClock
from ..job_control import JobControl
from ..models.mode import ModelMode
from .config import quick_config
from .gaussian_start import gaussians_from_reconstruction
from .pipeline import reconstruct_quick


def start_from_triposr(rgb: np.ndarray, mask: np.ndarray, preset: str, models: ModelMode, device: torch.device,
                       count: int, seed: int, clock: StageClock, control: JobControl) -> GaussianModel:
    """TripoSR's reconstruction of the cut-out as stage 1's starting Gaussians (``count`` of them)."""
    quick = reconstruct_quick(rgb, mask, quick_config(preset), models, device, clock, control,
                              mesh_stage="triposr_mesh")
    with clock.stage("gaussian_start"):
        return gaussians_from_reconstruction(quick, count, seed=seed, device=device)
