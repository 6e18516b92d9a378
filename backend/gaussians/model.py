"""Trainable Gaussians: raw parameters that Adam updates, and the activations that turn them into Gaussians.

Raw → activated: means as they are; scales = exp(log_scales); quats normalised; opacities =
sigmoid(opacity_logits); colours = sigmoid(color_logits). Keeping the raw values unconstrained lets Adam move
them freely while the activated ones stay valid (positive scales, opacities and colours in (0, 1)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .gaussians import Gaussians

PARAMETER_NAMES = ("means", "log_scales", "quats", "opacity_logits", "color_logits")


@dataclass(frozen=True)
class LearningRates:
    """Adam learning rates per parameter (DreamGaussian's stage-1 values). Positions decay exponentially from
    ``means`` to ``means_final`` over the run; the rest stay constant."""

    means: float = 1e-3
    means_final: float = 2e-5
    log_scales: float = 5e-3
    quats: float = 5e-3
    opacity_logits: float = 5e-2
    color_logits: float = 1e-2

    def means_at(self, progress: float) -> float:
        """Log-linear decay; ``progress`` in [0, 1]."""
        t = min(max(progress, 0.0), 1.0)
        return math.exp((1 - t) * math.log(self.means) + t * math.log(self.means_final))


class GaussianModel(nn.Module):
    """Raw Gaussian parameters, one row per Gaussian."""

    def __init__(self, means: Tensor, log_scales: Tensor, quats: Tensor, opacity_logits: Tensor,
                 color_logits: Tensor):
        super().__init__()
        self.means = nn.Parameter(means)  # [N, 3]
        self.log_scales = nn.Parameter(log_scales)  # [N, 3]
        self.quats = nn.Parameter(quats)  # [N, 4] (w, x, y, z), not necessarily unit
        self.opacity_logits = nn.Parameter(opacity_logits)  # [N]
        self.color_logits = nn.Parameter(color_logits)  # [N, 3]

    def __len__(self) -> int:
        return self.means.shape[0]

    @classmethod
    def in_sphere(cls, count: int, radius: float = 0.5, *, generator: torch.Generator, device="cpu",
                  initial_opacity: float = 0.1) -> "GaussianModel":
        """``count`` Gaussians uniformly in a ball (DreamGaussian's start): random colours, identity rotations,
        opacity 0.1 and isotropic scales set from the mean spacing of the points.

        The scale is 0.7x the mean spacing ``(ball volume / count) ** (1/3)``, about the mean distance to the
        three nearest neighbours for uniform points, without the O(N²) neighbour search.
        """
        if count < 1:
            raise ValueError(f"need at least one Gaussian, got {count}")
        direction = torch.randn(count, 3, generator=generator)
        direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        means = direction * radius * torch.rand(count, 1, generator=generator) ** (1 / 3)
        spacing = (4 / 3 * math.pi * radius**3 / count) ** (1 / 3)
        log_scales = torch.full((count, 3), math.log(0.7 * spacing))
        quats = torch.zeros(count, 4)
        quats[:, 0] = 1.0
        opacity_logits = torch.full((count,), math.log(initial_opacity / (1 - initial_opacity)))
        color_logits = torch.logit(torch.rand(count, 3, generator=generator).clamp(0.02, 0.98))
        model = cls(means, log_scales, quats, opacity_logits, color_logits)
        return model.to(device)

    def gaussians(self) -> Gaussians:
        """The activated Gaussians (differentiable with respect to the raw parameters)."""
        return Gaussians(
            means=self.means,
            scales=torch.exp(self.log_scales),
            quats=self.quats / self.quats.norm(dim=-1, keepdim=True).clamp_min(1e-12),
            opacities=torch.sigmoid(self.opacity_logits),
            colors=torch.sigmoid(self.color_logits),
        )

    def make_optimizer(self, lrs: LearningRates, fused: bool | None = None) -> torch.optim.Adam:
        """Adam with one parameter group per parameter (named, so densification can find them).

        ``fused`` defaults to True on CUDA (one kernel for all parameters), False elsewhere.
        """
        if fused is None:
            fused = self.means.device.type == "cuda"
        groups = [{"params": [getattr(self, name)], "lr": getattr(lrs, name), "name": name} for name in PARAMETER_NAMES]
        return torch.optim.Adam(groups, lr=lrs.means, eps=1e-15, fused=fused)
