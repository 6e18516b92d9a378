"""The texture image as it leaves the backend: float [0, 1] → 8-bit RGB, and its PNG encoding, done once per job
and shared by the GLB (embedded) and the OBJ (model_texture.png)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ..mesh.mesh import Mesh


def texture_to_image(mesh: Mesh) -> Image.Image:
    """The mesh's texture as an 8-bit RGB image (row 0 = top); ValueError when the mesh is untextured."""
    if mesh.texture is None or mesh.uvs is None:
        raise ValueError("the mesh has no UVs or no texture: unwrap and bake it before exporting")
    pixels = np.clip(np.rint(np.asarray(mesh.texture, np.float32) * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, mode="RGB")


def texture_png(mesh: Mesh) -> bytes:
    """The mesh's texture as PNG bytes (PIL's default settings); ValueError when the mesh is untextured."""
    buffer = io.BytesIO()
    texture_to_image(mesh).save(buffer, format="PNG")
    return buffer.getvalue()
