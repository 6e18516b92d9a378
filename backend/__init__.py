"""Image to 3D backend: photo + prompt → mask → 3D Gaussians → textured mesh.

No ``bpy`` anywhere in this package; it runs alone as ``python -m backend …`` and inside Blender's
worker thread alike. Heavy libraries (torch, transformers, …) are imported inside functions so that
``import backend`` stays cheap.
"""

from .openmp_wait import prefer_sleeping_threads

__version__ = "0.1.0"

prefer_sleeping_threads()  # before anything imports torch (backend/openmp_wait.py says why)
