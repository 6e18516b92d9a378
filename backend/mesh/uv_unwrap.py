"""UV unwrapping with xatlas: charts cut along seams and packed into the unit square."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import xatlas

from .mesh import Mesh


@dataclass(frozen=True)
class UnwrapConfig:
    """xatlas settings.

    padding:    texels kept free around each chart when packing (room for bilinear filtering and dilation)
    resolution: the texture size the packer plans for (padding is in texels of this size)
    max_iterations: chart growing iterations (xatlas default 1; more gives fewer, larger charts but is slower)
    """

    padding: int = 2
    resolution: int = 1024
    max_iterations: int = 1


def unwrap_uvs(mesh: Mesh, config: UnwrapConfig = UnwrapConfig()) -> Mesh:
    """A copy of ``mesh`` with per-vertex UVs in [0, 1] (v up, see :class:`Mesh`).

    xatlas splits vertices along chart seams, so the result has more vertices than the input; ``vmapping``
    maps every new vertex to the input vertex it came from (compose with an existing vmapping, if any).
    Any texture on the input is dropped (its UVs no longer apply).
    """
    if mesh.face_count == 0:
        raise ValueError("cannot unwrap a mesh without faces")
    atlas = xatlas.Atlas()
    atlas.add_mesh(np.ascontiguousarray(mesh.vertices, np.float32), np.ascontiguousarray(mesh.faces, np.uint32))
    chart_options = xatlas.ChartOptions()
    chart_options.max_iterations = config.max_iterations
    pack_options = xatlas.PackOptions()
    pack_options.padding = config.padding
    pack_options.resolution = config.resolution
    pack_options.bilinear = True
    atlas.generate(chart_options, pack_options)
    vmapping, indices, uvs = atlas[0]
    vmapping = vmapping.astype(np.int64)
    if mesh.vmapping is not None:
        vmapping = mesh.vmapping[vmapping]
    return replace(
        mesh,
        vertices=np.ascontiguousarray(mesh.vertices[atlas[0][0]], np.float32),
        faces=np.ascontiguousarray(indices, np.int64),
        uvs=np.ascontiguousarray(np.clip(uvs, 0.0, 1.0), np.float32),
        texture=None,
        vmapping=vmapping,
    )
