"""The triangle mesh every meshing, texturing and export step passes around."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..numeric_checks import require_finite


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh in world space (+Y up, metres), NumPy arrays (the edge format of the mesh stages).

    UV convention (the OBJ/Blender one): u grows to the right, v grows *upwards*, so texture row 0 (the top
    of the image) is v = 1. The glTF exporter flips v for glTF's top-left origin.
    """

    vertices: np.ndarray  # [V, 3] float32
    faces: np.ndarray  # [F, 3] int64, counter-clockwise seen from outside (normals point out)
    uvs: np.ndarray | None = None  # [V, 2] float32 in [0, 1], one per vertex (vertices are split along seams)
    texture: np.ndarray | None = None  # [T, T, 3] float32 in [0, 1], row 0 = top of the image (v = 1)
    vmapping: np.ndarray | None = None  # [V] int64: vertex → index of the vertex it was split from by unwrapping

    def __post_init__(self) -> None:
        v, f = self.vertices, self.faces
        if v.ndim != 2 or v.shape[1] != 3:
            raise ValueError(f"Mesh.vertices has shape {v.shape}, expected [V, 3]")
        if f.ndim != 2 or f.shape[1] != 3:
            raise ValueError(f"Mesh.faces has shape {f.shape}, expected [F, 3]")
        if self.uvs is not None and self.uvs.shape != (v.shape[0], 2):
            raise ValueError(f"Mesh.uvs has shape {self.uvs.shape}, expected ({v.shape[0]}, 2)")
        if self.texture is not None and (self.texture.ndim != 3 or self.texture.shape[2] != 3):
            raise ValueError(f"Mesh.texture has shape {self.texture.shape}, expected [T, T, 3]")
        # every mesh stage hands its result on through here: a NaN stops at the stage that made it
        require_finite("the mesh's vertices", v)
        require_finite("the mesh's UVs", self.uvs)
        require_finite("the mesh's texture", self.texture)

    @property
    def vertex_count(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def face_count(self) -> int:
        return int(self.faces.shape[0])

    def with_texture(self, texture: np.ndarray) -> "Mesh":
        return replace(self, texture=np.ascontiguousarray(texture, dtype=np.float32))
