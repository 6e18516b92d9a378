"""quick+refine's stage-1 start: Gaussians on and inside TripoSR's surface, with its colours.

DreamGaussian starts from a ball of random colours (backend.gaussians.model.GaussianModel.in_sphere), and
its first hundred-odd SDS steps at high noise spend their time finding a shape. TripoSR has a whole shape
(back included) after one forward pass, so stage 1 starts from it instead:

- ``surface_fraction`` of the Gaussians at area-weighted random points of its mesh, coloured by its colour
  field there (what the views will see), isotropic with 0.7 × their mean spacing on the surface
  (sqrt(area / count)), so neighbours overlap and the surface renders closed from the first step;
- the rest uniformly inside (rejection sampling in the mesh's box against its density ≥ the mesh's level),
  coloured by the field too, with 0.7 × their mean spacing in the volume (as ``in_sphere``): they keep the interior
  solid, so the density-grid mesh after stage 1 is a closed solid and not a hollow shell.

Opacity starts at 0.5 (DreamGaussian: 0.1, for a ball that has to thin out): with 3–4 overlapping Gaussians
along a ray the surface is ≥ 90 % opaque, as the object it stands for.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..gaussians.model import GaussianModel, color_to_sh_dc
from .pipeline import QuickReconstruction

SURFACE_FRACTION = 0.5
INITIAL_OPACITY = 0.5
MAX_REJECTION_ROUNDS = 20


def gaussians_from_reconstruction(quick: QuickReconstruction, count: int, *, seed: int = 0, device="cpu",
                                  surface_fraction: float = SURFACE_FRACTION,
                                  initial_opacity: float = INITIAL_OPACITY) -> GaussianModel:
    """``count`` Gaussians (module docstring), seeded; raw parameters on ``device``."""
    if count < 2:
        raise ValueError(f"need at least two Gaussians, got {count}")
    if not 0.0 < surface_fraction <= 1.0:
        raise ValueError(f"surface_fraction must be in (0, 1], got {surface_fraction}")
    rng = np.random.default_rng(seed)
    surface_count = max(1, round(count * surface_fraction))
    on_surface, area = _surface_points(quick.mesh.vertices, quick.mesh.faces, surface_count, rng)
    surface_scale = 0.7 * math.sqrt(area / surface_count)  # neighbours 1.4 σ apart: they overlap
    inside, volume = _inside_points(quick, count - surface_count, rng)
    points = [on_surface]
    scales = [np.full(len(on_surface), surface_scale)]
    if len(inside):
        points.append(inside)
        scales.append(np.full(len(inside), 0.7 * (volume / len(inside)) ** (1 / 3)))  # as in_sphere's spacing
    means = torch.as_tensor(np.concatenate(points), dtype=torch.float32)
    colours = quick.colour_at(means).float().cpu().clamp(0.0, 1.0)
    n = len(means)
    log_scales = torch.as_tensor(np.log(np.concatenate(scales)), dtype=torch.float32)[:, None].repeat(1, 3)
    quats = torch.zeros(n, 4)
    quats[:, 0] = 1.0
    opacity_logits = torch.full((n,), math.log(initial_opacity / (1 - initial_opacity)))
    return GaussianModel(means, log_scales, quats, opacity_logits, color_to_sh_dc(colours)).to(device)


def _surface_points(vertices: np.ndarray, faces: np.ndarray, count: int, rng: np.random.Generator
                    ) -> tuple[np.ndarray, float]:
    """(points [count, 3] uniform over the surface, total area)."""
    tri = vertices[faces].astype(np.float64)  # [F, 3, 3]
    areas = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=-1)
    total = float(areas.sum())
    if total <= 0:
        raise ValueError("the TripoSR mesh has no area")
    chosen = rng.choice(len(faces), size=count, p=areas / total)
    u, v = rng.random(count), rng.random(count)
    flip = u + v > 1  # fold the unit square onto the triangle
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    t = tri[chosen]
    return t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0]), total


def _inside_points(quick: QuickReconstruction, count: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """(up to ``count`` points uniform where TripoSR's density ≥ its mesh level, estimated inside volume)."""
    if count <= 0:
        return np.zeros((0, 3)), 0.0
    lo, hi = quick.mesh.vertices.min(0).astype(np.float64), quick.mesh.vertices.max(0).astype(np.float64)
    box_volume = float(np.prod(np.maximum(hi - lo, 1e-9)))
    kept, tried, accepted = [], 0, 0
    for _ in range(MAX_REJECTION_ROUNDS):
        candidates = lo + rng.random((4 * count, 3)) * (hi - lo)
        density = quick.field_at(torch.as_tensor(candidates, dtype=torch.float32)).density.float().cpu().numpy()
        inside = candidates[density >= quick.level]
        tried += len(candidates)
        accepted += len(inside)
        kept.append(inside)
        if sum(len(k) for k in kept) >= count:
            break
    points = np.concatenate(kept)[:count]
    return points, box_volume * accepted / max(1, tried)
