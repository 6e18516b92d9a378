"""Dropping the faces no bake view sees (backend/mesh/visibility.py, ``MeshConfig.cull_unseen_faces``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from backend.gaussians.gaussians import Gaussians
from backend.mesh.bake import bake_cameras
from backend.mesh.extract import extract_mesh
from backend.mesh.mesh import Mesh
from backend.mesh.mesh_config import MeshConfig
from backend.mesh.visibility import drop_unseen_faces, seen_faces
from tests.mesh_fixtures import one_torch_thread


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


def _nested_boxes() -> tuple[Mesh, int]:
    """A closed box with a smaller closed box inside it (the inner one's faces come after the outer one's)."""
    outer = trimesh.creation.box(extents=(0.8, 0.6, 0.5))
    inner = trimesh.creation.box(extents=(0.4, 0.3, 0.2))
    both = trimesh.util.concatenate([outer, inner])
    return Mesh(both.vertices.astype(np.float32), both.faces.astype(np.int64)), len(outer.faces)


def test_the_inside_of_a_closed_surface_is_unseen_and_dropped():
    mesh, outer_faces = _nested_boxes()
    seen = seen_faces(mesh.vertices, mesh.faces, bake_cameras(64))
    assert seen[:outer_faces].all() and not seen[outer_faces:].any()

    kept = drop_unseen_faces(mesh, bake_cameras(64))
    assert kept.face_count == outer_faces and kept.vertex_count == 8  # the inner box's vertices went with it
    assert np.allclose(np.sort(np.abs(kept.vertices), axis=0)[-1], (0.4, 0.3, 0.25))


def test_a_fully_visible_mesh_comes_back_unchanged():
    outer = trimesh.creation.box(extents=(0.8, 0.6, 0.5))
    mesh = Mesh(outer.vertices.astype(np.float32), outer.faces.astype(np.int64))
    assert drop_unseen_faces(mesh, bake_cameras(32)) is mesh


def _spherical_shell(count: int = 600, radius: float = 0.45, sigma: float = 0.05) -> Gaussians:
    """Gaussians evenly on a sphere (Fibonacci lattice): their density is high only in a shell around it."""
    index = torch.arange(count, dtype=torch.float32) + 0.5
    polar = torch.acos(1 - 2 * index / count)
    azimuth = math.pi * (1 + 5 ** 0.5) * index
    means = radius * torch.stack([torch.sin(polar) * torch.cos(azimuth), torch.cos(polar),
                                  torch.sin(polar) * torch.sin(azimuth)], dim=-1)
    return Gaussians(means, torch.full((count, 3), sigma), torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(count, 1),
                     torch.full((count,), 0.9), torch.full((count, 3), 0.5))


def test_extract_mesh_can_drop_the_inner_wall_of_a_shell():
    shell = _spherical_shell()
    config = MeshConfig(resolution=40, threshold=1.0, target_faces=4000, smoothing_iterations=0, cull_view_size=96)
    both_walls = extract_mesh(shell, config)
    radii = np.linalg.norm(both_walls.vertices, axis=1)
    assert radii.min() < 0.42 < 0.48 < radii.max()  # marching cubes made the shell's inner and outer walls

    outer_only = extract_mesh(shell, MeshConfig(**{**config.__dict__, "cull_unseen_faces": True}))
    assert np.linalg.norm(outer_only.vertices, axis=1).min() > 0.46
    assert 0.3 * both_walls.face_count < outer_only.face_count < 0.8 * both_walls.face_count


def test_cull_view_size_is_checked():
    with pytest.raises(ValueError, match="cull_view_size"):
        MeshConfig(cull_view_size=4)
