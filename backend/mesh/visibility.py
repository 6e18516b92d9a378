"""Dropping the faces no bake view sees.

The Gaussians' density is high only in a shell around the true surface, so marching cubes meshes both walls of
that shell: the outer one the views show, and an inner one no view reaches. The inner wall gets no texel colour
(the bake only colours what some bake view sees: the push-pull fill paints it) and no render shows it, but it is
surface: it doubles the mesh's area and is what a Chamfer distance to the true surface mostly measures (on
eval-recon's textured objects at the small size: ours → truth 3.5–5.4 % of the diagonal, truth → ours 0.9–1.5 %).
A face that is nearest to none of the bake cameras at any pixel is removed; the views that colour the mesh are
the ones that decide what exists of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..camera import Camera
from .mesh import Mesh
from .rasterize import rasterize_mesh


def seen_faces(vertices: np.ndarray,  # [V, 3] world
               faces: np.ndarray,  # [F, 3] int64
               cameras: Sequence[Camera]) -> np.ndarray:  # [F] bool
    """Which faces are the nearest surface at one pixel centre or more of some camera in ``cameras``."""
    vertices_t = torch.as_tensor(np.asarray(vertices), dtype=torch.float32)
    faces_t = torch.as_tensor(np.asarray(faces), dtype=torch.int64)
    seen = torch.zeros(len(faces_t), dtype=torch.bool)
    for camera in cameras:
        ids = rasterize_mesh(vertices_t, faces_t, camera).tri_id
        seen[ids[ids >= 0].unique()] = True
    return seen.numpy()


def drop_unseen_faces(mesh: Mesh, cameras: Sequence[Camera]) -> Mesh:
    """``mesh`` (no UVs yet) without the faces :func:`seen_faces` finds no camera sees, and without the vertices
    only those faces used. Returns ``mesh`` itself when every face is seen, or when no face is (nothing to judge by)."""
    if mesh.uvs is not None:
        raise ValueError("drop_unseen_faces works on a mesh before UV unwrapping")
    seen = seen_faces(mesh.vertices, mesh.faces, cameras)
    if seen.all() or not seen.any():
        return mesh
    kept = mesh.faces[seen]
    used, remapped = np.unique(kept, return_inverse=True)
    return Mesh(np.ascontiguousarray(mesh.vertices[used]), remapped.reshape(-1, 3).astype(np.int64))
