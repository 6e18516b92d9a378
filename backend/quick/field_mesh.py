"""TripoSR triplane → triangle mesh in our world frame, with our marching cubes and cleanup.

The density field is sampled on a ``resolution``³ grid spanning the triplane's box [-radius, radius]³
(grid points at both ends, as the official extraction does) and meshed at ``threshold`` by
:func:`backend.mesh.extract.marching_cubes`; cleanup, smoothing and decimation are the DreamGaussian
path's (backend/mesh/extract.py). The vertices are then rotated and scaled into our frame
(:func:`backend.models.triposr.triposr_to_world`), so the mesh meets our reference camera as the photo does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import trimesh

from ..job_control import JobControl, ensure_control
from ..mesh.extract import clean_mesh, decimate, marching_cubes, require_usable_surface
from ..mesh.mesh import Mesh
from ..models.triposr import TripoSR, triposr_to_world
from ..numeric_checks import require_finite
from .field_mesh_config import FieldMeshConfig

STAGE = "mesh"
# Random weights (tiny, full-random) give a density field with no meaningful iso-level: mesh it where 10 % of
# the grid is inside instead, so every later stage still runs on a surface (the output is meaningless anyway).
RANDOM_WEIGHTS_INSIDE_FRACTION = 0.1


@dataclass(frozen=True)
class FieldMesh:
    mesh: Mesh  # in our world frame, no UVs
    level: float  # the density iso-level it was meshed at (config.threshold, or the random-weights level)


@torch.no_grad()
def density_on_grid(model: TripoSR, triplane: torch.Tensor, resolution: int, chunk: int = 262_144) -> torch.Tensor:
    """[R, R, R] density, indexed [ix, iy, iz] over [-radius, radius]³ in TripoSR's frame."""
    radius = model.config.radius
    axis = torch.linspace(-radius, radius, resolution, device=triplane.device, dtype=triplane.dtype)
    grid = torch.empty(resolution**3, device=triplane.device, dtype=triplane.dtype)
    # one x-slab per chunk group: points built per slab, never the whole R³×3 coordinate array at once
    per_slab = resolution * resolution
    yy, zz = torch.meshgrid(axis, axis, indexing="ij")
    slab_yz = torch.stack([yy.reshape(-1), zz.reshape(-1)], dim=-1)
    slabs_per_chunk = max(1, chunk // per_slab)
    for first in range(0, resolution, slabs_per_chunk):
        xs = axis[first:first + slabs_per_chunk]
        points = torch.cat([xs.repeat_interleave(per_slab)[:, None], slab_yz.repeat(len(xs), 1)], dim=-1)
        for start in range(0, len(points), chunk):
            part = points[start:start + chunk]
            offset = first * per_slab + start
            grid[offset:offset + len(part)] = model.query_field(triplane, part).density
    return grid.reshape(resolution, resolution, resolution)


def extract_field_mesh(model: TripoSR, triplane: torch.Tensor, world_scale: float,
                       config: FieldMeshConfig = FieldMeshConfig(), control: JobControl | None = None, *,
                       random_weights: bool = False) -> FieldMesh:
    """One triplane [3, C, H, W] → cleaned, decimated mesh in our frame. NoSurfaceError (exit 2) when
    the density never reaches the threshold. ``random_weights``: see RANDOM_WEIGHTS_INSIDE_FRACTION."""
    control = ensure_control(control)
    control.report(STAGE, 0.0, f"density grid {config.resolution}³")
    grid = density_on_grid(model, triplane, config.resolution, config.chunk).float().cpu().numpy()
    require_finite("TripoSR's density grid", grid)
    threshold = config.threshold
    if random_weights:
        threshold = float(np.quantile(grid, 1.0 - RANDOM_WEIGHTS_INSIDE_FRACTION))
    control.report(STAGE, 0.4, f"marching cubes at {threshold:g}")
    vertices, faces = marching_cubes(grid, threshold, model.config.radius)
    control.report(STAGE, 0.6, "cleanup")
    mesh = clean_mesh(triposr_to_world(vertices, world_scale), faces, config.min_component_fraction)
    if config.smoothing_iterations:
        trimesh.smoothing.filter_taubin(mesh, iterations=config.smoothing_iterations)
    control.report(STAGE, 0.7, "decimation")
    mesh = decimate(mesh, config.target_faces)
    require_usable_surface(mesh.vertices, mesh.faces)  # the same guard as DreamGaussian's mesh, before UVs
    control.report(STAGE, 1.0, f"{len(mesh.faces)} faces")
    return FieldMesh(mesh=Mesh(vertices=np.ascontiguousarray(mesh.vertices, np.float32),
                               faces=np.ascontiguousarray(mesh.faces, np.int64)), level=threshold)
