"""From backbone tokens to a radiance field: the 2× triplane upsampler and the NeRF MLP that reads it.

A point p in [-radius, radius]³ is looked up bilinearly in the three planes at (x, y), (x, z) and (y, z)
(``grid_sample``, ``align_corners=False``: texel centres, as in training); the three feature vectors are
concatenated (plane order xy, xz, yz) and the MLP gives one density logit and three colour logits.
Density = exp(logit + bias), colour = sigmoid(logits), as the published renderer configures them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

_ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU}


def apply_field_activation(name: str, x: torch.Tensor) -> torch.Tensor:
    if name == "exp":
        return torch.exp(x)
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "softplus":
        return F.softplus(x)
    if name == "relu":
        return F.relu(x)
    if name == "none":
        return x
    raise ValueError(f"unknown field activation {name!r}")


class TriplaneUpsampler(nn.Module):
    """[B, 3, C_in, P, P] → [B, 3, C_out, 2P, 2P], one transposed convolution shared by the planes."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.upsample = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        batch = planes.shape[0]
        up = self.upsample(planes.flatten(0, 1))
        return up.reshape(batch, 3, *up.shape[1:])


class NeRFDecoder(nn.Module):
    """MLP: 3·C features → ``hidden_layers`` × ``neurons`` → 4 (density logit, 3 colour logits)."""

    def __init__(self, in_channels: int, neurons: int, hidden_layers: int, activation: str):
        super().__init__()
        act = _ACTIVATIONS[activation]
        layers: list[nn.Module] = [nn.Linear(in_channels, neurons), act()]
        for _ in range(hidden_layers - 1):
            layers += [nn.Linear(neurons, neurons), act()]
        layers.append(nn.Linear(neurons, 4))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # [N, 3·C] → [N, 4]
        return self.layers(features)


@dataclass(frozen=True)
class FieldSample:
    """The radiance field at N points."""

    density: torch.Tensor  # [N] ≥ 0, per unit length in the triplane's units
    colour: torch.Tensor  # [N, 3] in [0, 1], linear as trained (the renders were sRGB images: treat as sRGB)


def sample_triplane(triplane: torch.Tensor, points: torch.Tensor, radius: float) -> torch.Tensor:
    """Features [N, 3·C] of one triplane [3, C, H, W] at points [N, 3] in [-radius, radius]³."""
    if triplane.ndim != 4 or triplane.shape[0] != 3:
        raise ValueError(f"triplane must be [3, C, H, W], got {tuple(triplane.shape)}")
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be [N, 3], got {tuple(points.shape)}")
    unit = points / radius
    coords = torch.stack([unit[:, [0, 1]], unit[:, [0, 2]], unit[:, [1, 2]]])  # [3, N, 2]
    sampled = F.grid_sample(triplane, coords[:, None].to(triplane.dtype), mode="bilinear", align_corners=False)
    return sampled[:, :, 0].permute(2, 0, 1).reshape(points.shape[0], -1)  # [3, C, N] → [N, 3·C]
