"""What stage 1 and stage 2 need from a diffusion prior (``Zero123Guidance`` is the one we ship)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from torch import Tensor


class GuidanceLike(Protocol):
    def set_reference(self, rgb: Tensor, elevation_deg: float = 0.0) -> None:
        """``rgb`` [1, 3, H, W] in [0, 1], the object over white."""

    def sds_loss(self, images: Tensor, d_elevation_deg: Tensor, d_azimuth_deg: Tensor, d_radius: Tensor,
                 step_ratio: float, guidance_scale: float = 5.0) -> Tensor:
        """Scalar score-distillation loss for ``images`` [B, 3, H, W] in [0, 1]; angle deltas [B] in degrees."""

    def refine(self, images: Tensor, d_elevation_deg: Tensor, d_azimuth_deg: Tensor, d_radius: Tensor,
               strength: float = 0.8, steps: int = 50, guidance_scale: float = 5.0) -> Tensor:
        """Denoised target images [B, 3, H, W] in [0, 1]."""
