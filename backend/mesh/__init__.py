"""Gaussians → mesh → UVs → baked texture → stage-2 texture refinement (docs/design.md §1).

Modules, in pipeline order: ``density_grid`` (Gaussians → density volume), ``extract`` (marching cubes,
cleanup, decimation), ``uv_unwrap`` (xatlas), ``rasterize`` (our PyTorch mesh rasterizer),
``texture_sampling`` (UV interpolation + ``grid_sample``), ``bake`` (texture from Gaussian renders),
``refine_texture`` (stage 2). ``mesh`` holds the :class:`Mesh` dataclass they pass around; ``mesh_config``
(``MeshConfig``) and ``texture_config`` (``TextureConfig``) import no torch, trimesh or mcubes.

The names below load lazily (PEP 562), so importing a config module does not load the stages. A lazy name
cannot share its submodule's name (importing ``refine_texture`` would set the package attribute to the module):
import ``density_grid`` and ``refine_texture`` from their modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .bake import bake_cameras, bake_texture
    from .extract import NoSurfaceError, extract_mesh
    from .mesh import Mesh
    from .mesh_config import MeshConfig
    from .rasterize import MeshRaster, rasterize_mesh
    from .texture_config import TextureConfig
    from .texture_sampling import render_textured, sample_texture
    from .uv_unwrap import UnwrapConfig, unwrap_uvs

_HOME = {"bake_cameras": ".bake", "bake_texture": ".bake", "NoSurfaceError": ".extract", "extract_mesh": ".extract",
         "Mesh": ".mesh", "MeshConfig": ".mesh_config", "MeshRaster": ".rasterize", "rasterize_mesh": ".rasterize",
         "TextureConfig": ".texture_config", "render_textured": ".texture_sampling",
         "sample_texture": ".texture_sampling", "UnwrapConfig": ".uv_unwrap", "unwrap_uvs": ".uv_unwrap"}

__all__ = [
    "Mesh", "MeshConfig", "MeshRaster", "NoSurfaceError", "TextureConfig", "UnwrapConfig",
    "bake_cameras", "bake_texture", "extract_mesh", "rasterize_mesh", "render_textured", "sample_texture", "unwrap_uvs",
]


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name], __name__), name)
    globals()[name] = value  # loaded once; a test may monkeypatch it here
    return value
