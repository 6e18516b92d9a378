"""Gaussians → mesh → UVs → baked texture → stage-2 texture refinement (docs/design.md §1).

Modules, in pipeline order: ``density_grid`` (Gaussians → density volume), ``extract`` (marching cubes,
cleanup, decimation), ``uv_unwrap`` (xatlas), ``rasterize`` (our PyTorch mesh rasterizer),
``texture_sampling`` (UV interpolation + ``grid_sample``), ``bake`` (texture from Gaussian renders),
``refine_texture`` (stage 2). ``mesh`` holds the :class:`Mesh` dataclass they pass around.
"""

from .bake import bake_cameras, bake_texture
from .density_grid import density_grid
from .extract import MeshConfig, NoSurfaceError, extract_mesh
from .mesh import Mesh
from .rasterize import MeshRaster, rasterize_mesh
from .refine_texture import TextureConfig, refine_texture
from .texture_sampling import render_textured, sample_texture
from .uv_unwrap import UnwrapConfig, unwrap_uvs

__all__ = [
    "Mesh", "MeshConfig", "MeshRaster", "NoSurfaceError", "TextureConfig", "UnwrapConfig",
    "bake_cameras", "bake_texture", "density_grid", "extract_mesh", "rasterize_mesh", "refine_texture",
    "render_textured", "sample_texture", "unwrap_uvs",
]
