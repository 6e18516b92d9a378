"""Writers for the generated model: GLB (embedded texture), OBJ + MTL + PNG, 3D Gaussian Splatting PLY.

Each function takes the path (or folder) to write; the caller stages them inside an ``AtomicOutputDir``.
"""

from .gaussians_ply import export_gaussians_ply
from .glb import export_glb
from .obj import export_obj

__all__ = ["export_gaussians_ply", "export_glb", "export_obj"]
