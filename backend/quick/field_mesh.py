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
import torch.nn.functional as F

from ..job_control import JobControl, ensure_control
from ..mesh.extract import marching_cubes, require_usable_surface, tidy_surface
from ..mesh.mesh import Mesh
from ..models.triposr import TripoSR, triposr_to_world
from ..numeric_checks import require_finite
from .field_mesh_config import FieldMeshConfig

STAGE = "mesh"
# Random weights (tiny, full-random) give a density field with no object in it: full-random's is flat up to
# rounding (within 2e-6 of e⁻¹), and its level sets are a froth that no real object makes (1.3 M faces and 24 s
# of cleanup at 128³ on a 2-core CPU, about four times that at 256³). So with random weights the mesh is of a
# stand-in field: a ball of STAND_IN_RADIUS (TripoSR units; a real object fills about that much of the box)
# whose radius the model's own density, averaged into STAND_IN_BUMP_CELLS³ lumps, moves by up to
# STAND_IN_BUMP·3 of it. Its surface has a real object's size (about 2·10⁵ marching-cubes faces at 256³), so
# the mesh, UV and bake stages do a real job's amount of work; the grid itself is still the model's, queried in
# full. The output is meaningless either way.
STAND_IN_RADIUS = 0.5
STAND_IN_BUMP = 0.05
STAND_IN_BUMP_CELLS = 8
STAND_IN_LEVEL = 1.0


@dataclass(frozen=True)
class FieldMesh:
    mesh: Mesh  # in our world frame, no UVs
    level: float  # the density level of its inside (config.threshold; with random weights see STAND_IN_RADIUS)


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


@torch.no_grad()
def random_weights_stand_in(density: torch.Tensor, radius: float) -> tuple[torch.Tensor, float]:
    """(stand-in field [R, R, R], meshed at STAND_IN_LEVEL; the density level with the same inside fraction).

    density: [R, R, R] over [-radius, radius]³ (:func:`density_on_grid`). Computed where ``density`` lives.
    The density level is what "inside" means for the model's own field (quick+refine samples its start
    inside it); it comes from a strided subsample, which is plenty for random weights.
    """
    resolution = density.shape[0]
    axis = torch.linspace(-radius, radius, resolution, device=density.device, dtype=torch.float32) ** 2
    distance = (axis[:, None, None] + axis[None, :, None] + axis[None, None, :]).sqrt() / STAND_IN_RADIUS
    # the log-density's variation at STAND_IN_BUMP_CELLS³ resolution: lumps, not per-voxel roughness (the
    # full-random decoder's density is almost constant, so what varies there is rounding noise)
    # centred first: the variation may be a few ulps of the level, and a difference of close floats is exact
    centred = (density.float() - density.float().mean())[None, None]
    coarse = F.adaptive_avg_pool3d(centred, min(STAND_IN_BUMP_CELLS, resolution))
    smooth = F.interpolate(coarse, size=density.shape, mode="trilinear", align_corners=True)[0, 0]
    score = ((smooth - smooth.mean()) / smooth.std().clamp_min(1e-30)).clamp(-3.0, 3.0)
    field = (STAND_IN_LEVEL + 1.0) - distance + STAND_IN_BUMP * score  # ≥ STAND_IN_LEVEL inside the bumpy ball
    inside_fraction = float((field >= STAND_IN_LEVEL).float().mean())
    sample = density[::4, ::4, ::4].float().reshape(-1)
    rank = min(len(sample), max(1, round((1.0 - inside_fraction) * len(sample))))
    return field, float(sample.kthvalue(rank).values)


def mesh_from_grid(grid: np.ndarray, level: float, radius: float, world_scale: float, config: FieldMeshConfig,
                   control: JobControl | None = None) -> Mesh:
    """The CPU part: marching cubes at ``level`` over [-radius, radius]³, cleanup, smoothing, decimation, and
    the change to our frame."""
    control = ensure_control(control)
    require_finite("TripoSR's density grid", grid)
    control.report(STAGE, 0.4, f"marching cubes at {level:g}")
    vertices, faces = marching_cubes(grid, level, radius)
    mesh = tidy_surface(triposr_to_world(vertices, world_scale), faces, config.min_component_fraction,
                        config.smoothing_iterations, config.target_faces, decimate_first=config.decimate_first,
                        control=control)
    require_usable_surface(mesh.vertices, mesh.faces)  # the same guard as DreamGaussian's mesh, before UVs
    control.report(STAGE, 1.0, f"{len(mesh.faces)} faces")
    return Mesh(vertices=np.ascontiguousarray(mesh.vertices, np.float32),
                faces=np.ascontiguousarray(mesh.faces, np.int64))


def grid_to_mesh(model: TripoSR, triplane: torch.Tensor, config: FieldMeshConfig, random_weights: bool
                 ) -> tuple[np.ndarray, float, float]:
    """The GPU part: (grid to mesh [R, R, R] float32 on the CPU, its mesh level, the density level)."""
    density = density_on_grid(model, triplane, config.resolution, config.chunk)
    if random_weights:
        field, density_level = random_weights_stand_in(density, model.config.radius)
        return field.cpu().numpy(), STAND_IN_LEVEL, density_level
    return density.float().cpu().numpy(), config.threshold, config.threshold


def extract_field_mesh(model: TripoSR, triplane: torch.Tensor, world_scale: float,
                       config: FieldMeshConfig = FieldMeshConfig(), control: JobControl | None = None, *,
                       random_weights: bool = False) -> FieldMesh:
    """One triplane [3, C, H, W] → cleaned, decimated mesh in our frame. NoSurfaceError (exit 2) when
    the density never reaches the threshold. ``random_weights``: see STAND_IN_RADIUS."""
    control = ensure_control(control)
    control.report(STAGE, 0.0, f"density grid {config.resolution}³")
    grid, mesh_level, density_level = grid_to_mesh(model, triplane, config, random_weights)
    mesh = mesh_from_grid(grid, mesh_level, model.config.radius, world_scale, config, control)
    return FieldMesh(mesh=mesh, level=density_level)
