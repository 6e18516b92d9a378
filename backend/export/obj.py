"""Wavefront OBJ + MTL + PNG: ``model.obj`` references ``model.mtl``, which maps ``model_texture.png``.

OBJ has no up axis of its own; we write our +Y-up coordinates, which Blender's OBJ importer reads as Y up
by default. OBJ's UV origin is bottom-left, the same as :class:`~backend.mesh.mesh.Mesh`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..mesh.mesh import Mesh
from .texture_image import texture_png as encode_texture_png

OBJ_NAME, MTL_NAME, TEXTURE_NAME = "model.obj", "model.mtl", "model_texture.png"


def _rows(prefix: str, values: np.ndarray, fmt: str) -> str:
    """One ``prefix fmt`` line per row: the text np.savetxt writes, from one %-format of all the values at once
    (4-5x faster than its per-row loop: 1.2 s → 0.3 s for a 50k-face mesh)."""
    values = np.asarray(values)
    return (f"{prefix} {fmt}\n" * len(values)) % tuple(values.reshape(-1).tolist())


def export_obj(mesh: Mesh, folder: str | Path, name: str = "model", texture_png: bytes | None = None) -> Path:
    """Write model.obj, model.mtl and model_texture.png into ``folder``; returns the OBJ's path.
    ``texture_png``: texture_image.texture_png(mesh), when the caller encoded it already (for the GLB too)."""
    folder = Path(folder)
    (folder / TEXTURE_NAME).write_bytes(encode_texture_png(mesh) if texture_png is None else texture_png)
    (folder / MTL_NAME).write_text(
        f"# image_to_3d\nnewmtl {name}_material\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\nmap_Kd {TEXTURE_NAME}\n"
    )
    one_based = np.asarray(mesh.faces, np.int64) + 1
    faces = np.repeat(one_based, 2, axis=1)  # v/vt share indices: every vertex has its own UV
    text = (
        f"# image_to_3d\nmtllib {MTL_NAME}\no {name}\n"
        + _rows("v", np.asarray(mesh.vertices, np.float64), "%.6f %.6f %.6f")
        + _rows("vt", np.asarray(mesh.uvs, np.float64), "%.6f %.6f")
        + f"usemtl {name}_material\ns off\n"
        + _rows("f", faces, "%d/%d %d/%d %d/%d")
    )
    path = folder / OBJ_NAME
    path.write_text(text)
    return path
