"""Trainable Gaussians: raw parameters that Adam updates, and the activations that turn them into Gaussians.

Raw → activated: means as they are; scales = exp(log_scales); quats normalised; opacities =
sigmoid(opacity_logits); colours = C0 · color_sh_dc + 0.5, clamped to [0, 1] (degree-0 spherical harmonics, as
DreamGaussian's ``sh_degree: 0``). Keeping the raw values unconstrained lets Adam move them freely while the
activated ones stay valid (positive scales, unit rotations, opacities in (0, 1)).

The colour is linear in its parameter, not a sigmoid: with Adam's step of about one learning rate per step, a
sigmoid moves 4·p·(1 - p) times slower than the SH coefficient, 14× slower near 0.98 (white paper, bright
highlights), where DreamGaussian's colours move at the same rate everywhere.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .gaussians import Gaussians
from .learning_rates import LearningRates

PARAMETER_NAMES = ("means", "log_scales", "quats", "opacity_logits", "color_sh_dc")

SH_C0 = 0.28209479177387814  # the degree-0 spherical harmonic, 1 / (2·sqrt(pi))


def sh_dc_to_color(sh_dc: Tensor) -> Tensor:
    """[N, 3] degree-0 SH coefficients → colours in [0, 1] (the rasterizer's C0·f + 0.5, kept within [0, 1])."""
    return (SH_C0 * sh_dc + 0.5).clamp(0.0, 1.0)


def color_to_sh_dc(colors: Tensor) -> Tensor:
    """[N, 3] colours in [0, 1] → the degree-0 SH coefficients that :func:`sh_dc_to_color` maps back to them."""
    return (colors - 0.5) / SH_C0


class GaussianModel(nn.Module):
    """Raw Gaussian parameters, one row per Gaussian."""

    def __init__(self, means: Tensor, log_scales: Tensor, quats: Tensor, opacity_logits: Tensor,
                 color_sh_dc: Tensor):
        super().__init__()
        self.means = nn.Parameter(means)  # [N, 3]
        self.log_scales = nn.Parameter(log_scales)  # [N, 3]
        self.quats = nn.Parameter(quats)  # [N, 4] (w, x, y, z), not necessarily unit
        self.opacity_logits = nn.Parameter(opacity_logits)  # [N]
        self.color_sh_dc = nn.Parameter(color_sh_dc)  # [N, 3] degree-0 SH coefficients

    def __len__(self) -> int:
        return self.means.shape[0]

    @classmethod
    def in_sphere(cls, count: int, radius: float = 0.5, *, generator: torch.Generator, device="cpu",
                  initial_opacity: float = 0.1) -> "GaussianModel":
        """``count`` Gaussians uniformly in a ball (DreamGaussian's start): grey, identity rotations, opacity 0.1
        and isotropic scales set from the mean spacing of the points.

        Grey as DreamGaussian's: SH coefficients uniform in [0, 1/255), colours 0.5 to within 0.0012.

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
        color_sh_dc = torch.rand(count, 3, generator=generator) / 255.0
        model = cls(means, log_scales, quats, opacity_logits, color_sh_dc)
        return model.to(device)

    def gaussians(self) -> Gaussians:
        """The activated Gaussians (differentiable with respect to the raw parameters)."""
        return Gaussians(
            means=self.means,
            scales=torch.exp(self.log_scales),
            quats=self.quats / self.quats.norm(dim=-1, keepdim=True).clamp_min(1e-12),
            opacities=torch.sigmoid(self.opacity_logits),
            colors=sh_dc_to_color(self.color_sh_dc),
        )

    def make_optimizer(self, lrs: LearningRates, fused: bool | None = None) -> torch.optim.Adam:
        """Adam with one parameter group per parameter (named, so densification can find them).

        ``fused`` defaults to True on CUDA (one kernel for all parameters), False elsewhere.
        """
        if fused is None:
            fused = self.means.device.type == "cuda"
        rates = {name: getattr(lrs, name) for name in PARAMETER_NAMES}
        rates["means"] = lrs.means_at(0.0)
        groups = [{"params": [getattr(self, name)], "lr": rates[name], "name": name} for name in PARAMETER_NAMES]
        return torch.optim.Adam(groups, lr=rates["means"], eps=1e-15, fused=fused)
