"""Stage 1's Adam learning rates per Gaussian parameter (no torch here: presets import it cheaply)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LearningRates:
    """Adam learning rates per parameter (DreamGaussian's stage-1 values, ``configs/image.yaml``).

    Positions decay log-linearly from ``means`` to ``means_final``, both times ``spatial_lr_scale`` (DreamGaussian
    creates its Gaussians with ``create_from_pcd(pcd, 10)``, so 0.001 → 2e-5 in its config is 0.01 → 2e-4 in
    effect); the rest stay constant.
    """

    means: float = 1e-3
    means_final: float = 2e-5
    spatial_lr_scale: float = 10.0
    log_scales: float = 5e-3
    quats: float = 5e-3
    opacity_logits: float = 5e-2
    color_sh_dc: float = 1e-2  # DreamGaussian's feature_lr

    def means_at(self, progress: float) -> float:
        """The position learning rate after ``progress`` ∈ [0, 1] of the run (log-linear decay, scaled).

        Stage 1 passes (step + 1) / steps for its 0-based step, as DreamGaussian sets the rate for its 1-based
        step s to the decay at s / 500 before stepping: 0.01·(0.02)^(1/500) ≈ 0.00992 at the first step, 2e-4
        at the 500th.
        """
        t = min(max(progress, 0.0), 1.0)
        rate = math.exp((1 - t) * math.log(self.means) + t * math.log(self.means_final))
        return self.spatial_lr_scale * rate
