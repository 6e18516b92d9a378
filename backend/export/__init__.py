"""Writers for the generated model: GLB (embedded texture), OBJ + MTL + PNG, 3D Gaussian Splatting PLY.

Each function takes the path (or folder) to write; the caller stages them inside an ``AtomicOutputDir``.
"""
