"""Gaussians → mesh → UVs → baked texture → stage-2 texture refinement (DESIGN.md §1).

Modules, in pipeline order: ``density_grid`` (Gaussians → density volume), ``extract`` (marching cubes,
cleanup, decimation), ``uv_unwrap`` (xatlas), ``rasterize`` (our PyTorch mesh rasterizer),
``texture_sampling`` (UV interpolation + ``grid_sample``), ``bake`` (texture from Gaussian renders),
``refine_texture`` (stage 2). ``mesh`` holds the :class:`Mesh` dataclass they pass around.
"""
