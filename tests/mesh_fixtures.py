"""Small shared builders for the mesh, texture and export tests (no fixtures with state)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import trimesh

from backend.camera import Camera
from backend.gaussians.gaussians import Gaussians
from backend.mesh.mesh import Mesh
from backend.mesh.uv_unwrap import UnwrapConfig, unwrap_uvs


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one CPU thread: these tests issue many small ops, and on a busy 2-core machine two
    spinning intra-op threads made them 20x slower (bake test: 44 s → 1.8 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_gaussian(scales=(0.3, 0.3, 0.3), quat=(1.0, 0.0, 0.0, 0.0), opacity=1.0, mean=(0.0, 0.0, 0.0)) -> Gaussians:
    return Gaussians(torch.tensor([mean], dtype=torch.float32), torch.tensor([scales], dtype=torch.float32),
                     torch.tensor([quat], dtype=torch.float32), torch.tensor([opacity], dtype=torch.float32),
                     torch.full((1, 3), 0.5))


def random_gaussians(n: int, seed: int = 0, device="cpu", radius: float = 0.5,
                     scale_range: tuple[float, float] = (0.02, 0.08)) -> Gaussians:
    """n Gaussians inside a ball, random anisotropic shapes and orientations."""
    g = torch.Generator().manual_seed(seed)
    direction = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    means = direction * radius * torch.rand(n, 1, generator=g) ** (1 / 3)
    quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1)
    scales = scale_range[0] + (scale_range[1] - scale_range[0]) * torch.rand(n, 3, generator=g)
    opacities = 0.2 + 0.8 * torch.rand(n, generator=g)
    colors = torch.rand(n, 3, generator=g)
    return Gaussians(means, scales, quats, opacities, colors).to(device)


def uv_sphere_mesh(subdivisions: int = 3, radius: float = 0.6, texture_resolution: int = 256) -> Mesh:
    sphere = trimesh.creation.icosphere(subdivisions, radius=radius)
    mesh = Mesh(sphere.vertices.astype(np.float32), sphere.faces.astype(np.int64))
    return unwrap_uvs(mesh, UnwrapConfig(resolution=texture_resolution))


def smooth_vertex_colours(vertices: torch.Tensor) -> torch.Tensor:
    """[V, 3] colours in [0.1, 0.9] that vary smoothly over the surface."""
    x, y, z = vertices.unbind(-1)
    return 0.5 + 0.4 * torch.stack([torch.sin(3 * x), torch.cos(2 * y + 1), torch.sin(2 * z + x)], dim=-1)


def smooth_texture(size: int) -> np.ndarray:
    """[size, size, 3] float32 texture with smooth variation over UV space."""
    v, u = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    return np.stack([0.5 + 0.4 * np.sin(6 * u), 0.5 + 0.4 * np.cos(5 * v), 0.5 + 0.3 * np.sin(4 * (u + v))],
                    axis=-1).astype(np.float32)


@dataclass(frozen=True)
class View:
    """Stand-in for stage 1's ViewTarget (camera, rgb [H, W, 3], alpha [H, W])."""

    camera: Camera
    rgb: torch.Tensor
    alpha: torch.Tensor
