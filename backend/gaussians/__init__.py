"""3D Gaussians: the data (gaussians.py), the renderer (gsplat on CUDA, a PyTorch reference on CPU)."""

from .gaussians import Gaussians, covariances, quat_to_rotmat

__all__ = ["Gaussians", "covariances", "quat_to_rotmat"]
