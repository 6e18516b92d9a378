"""The one plain description of a set of 3D Gaussians that every stage passes around.

Stage 1 trains raw parameters (log-scales, logit-opacities, …) and hands out :class:`Gaussians` with the
activations applied; the renderer, the density grid for meshing and the PLY exporter all read this.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Gaussians:
    """Activated Gaussian parameters, world space (+Y up, metres).

    means:     [N, 3] centres
    scales:    [N, 3] standard deviations along the local axes (> 0)
    quats:     [N, 4] unit quaternions, (w, x, y, z), local → world rotation
    opacities: [N]    in (0, 1)
    colors:    [N, 3] linear RGB in [0, 1] (view-independent)
    """

    means: torch.Tensor
    scales: torch.Tensor
    quats: torch.Tensor
    opacities: torch.Tensor
    colors: torch.Tensor

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        expected = {"means": (n, 3), "scales": (n, 3), "quats": (n, 4), "opacities": (n,), "colors": (n, 3)}
        for name, shape in expected.items():
            actual = tuple(getattr(self, name).shape)
            if actual != shape:
                raise ValueError(f"Gaussians.{name} has shape {actual}, expected {shape}")

    def __len__(self) -> int:
        return self.means.shape[0]

    def to(self, device) -> "Gaussians":
        return Gaussians(*(t.to(device) for t in (self.means, self.scales, self.quats, self.opacities, self.colors)))

    def detach(self) -> "Gaussians":
        return Gaussians(*(t.detach() for t in (self.means, self.scales, self.quats, self.opacities, self.colors)))


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """[..., 4] (w, x, y, z) → [..., 3, 3]; normalises first."""
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*q.shape[:-1], 3, 3)


def covariances(gaussians: Gaussians) -> torch.Tensor:
    """World-space covariance matrices [N, 3, 3] = R S Sᵀ Rᵀ."""
    rot = quat_to_rotmat(gaussians.quats)
    m = rot * gaussians.scales[:, None, :]
    return m @ m.transpose(-1, -2)
