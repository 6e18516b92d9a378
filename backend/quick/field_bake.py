"""A texture straight from a colour field: each texel takes the field's colour at its surface point.

No renders and no visibility: the mesh is rasterized in UV space (backend.mesh.rasterize.rasterize_uv), each
covered texel's 3D point is interpolated from its triangle, and ``colour_at`` is asked for the colour there
in chunks. The gutters between charts are filled as in the render bake (dilation, then push-pull), so
bilinear lookups at chart borders never blend in black.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..job_control import JobControl, ensure_control
from ..mesh.bake import fill_texture, mesh_tensors
from ..mesh.mesh import Mesh
from ..mesh.rasterize import rasterize_uv

STAGE = "bake"
ColourField = Callable[[torch.Tensor], torch.Tensor]  # world points [N, 3] → colours [N, 3] in [0, 1]


@torch.no_grad()
def bake_colour_field(mesh: Mesh, colour_at: ColourField, texture_size: int = 1024, *, device="cpu",
                      chunk: int = 262_144, dilation: int = 4, control: JobControl | None = None) -> Mesh:
    """A copy of ``mesh`` (which must have UVs) with a ``texture_size``² texture from ``colour_at``."""
    if texture_size < 4:
        raise ValueError(f"texture_size must be at least 4, got {texture_size}")
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    control = ensure_control(control)
    control.report(STAGE, 0.0, "texel positions")
    vertices, faces, uvs = mesh_tensors(mesh, torch.device(device))

    # 1. Texel → surface point.
    raster = rasterize_uv(uvs, faces, texture_size)
    texels = raster.mask.reshape(-1).nonzero()[:, 0]
    tri = raster.tri_id.reshape(-1)[texels]
    bary = raster.bary.reshape(-1, 3)[texels]
    points = (vertices[faces[tri]] * bary[..., None]).sum(-2)  # [N, 3]

    # 2. The field's colour there.
    colours = torch.empty(len(points), 3, device=points.device)
    for start in range(0, len(points), chunk):
        control.report(STAGE, 0.1 + 0.8 * start / max(1, len(points)), "colour field")
        part = colour_at(points[start:start + chunk])
        if part.shape != (min(chunk, len(points) - start), 3):
            raise ValueError(f"colour_at returned shape {tuple(part.shape)} for {min(chunk, len(points) - start)} points")
        colours[start:start + chunk] = part.to(colours.dtype).clamp(0, 1)

    # 3. Fill the gutters.
    texture = torch.zeros(texture_size * texture_size, 3, device=points.device)
    known = torch.zeros(texture_size * texture_size, dtype=torch.bool, device=points.device)
    texture[texels] = colours
    known[texels] = True
    texture = fill_texture(texture.reshape(texture_size, texture_size, 3), known.reshape(texture_size, texture_size),
                           dilation)
    control.report(STAGE, 1.0, f"{len(points)} texels")
    return mesh.with_texture(texture.cpu().numpy())
