"""Our PyTorch mesh rasterizer and texture lookups (backend/mesh/rasterize.py, texture_sampling.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from backend.camera import Camera, reference_camera
from backend.mesh.rasterize import project_vertices, rasterize_mesh, rasterize_uv
from backend.mesh.texture_sampling import interpolate_attributes, render_textured, sample_texture
from tests.mesh_fixtures import one_torch_thread


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


def _sphere(radius=0.5, subdivisions=4):
    sphere = trimesh.creation.icosphere(subdivisions, radius=radius)
    return torch.tensor(sphere.vertices, dtype=torch.float32), torch.tensor(sphere.faces, dtype=torch.int64)


def _pixel_rays(camera: Camera, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """World-space unit directions through pixel centres (pixel (0, 0) centre at (0.5, 0.5))."""
    x = (xs.double() + 0.5 - camera.width / 2) / camera.focal
    y = -(ys.double() + 0.5 - camera.height / 2) / camera.focal
    d_cam = torch.stack([x, y, -torch.ones_like(x)], dim=-1)
    rot = torch.tensor(camera.c2w[:3, :3])
    return torch.nn.functional.normalize(d_cam @ rot.T, dim=-1)


def test_sphere_silhouette_depth_and_perspective_correct_barycentrics():
    vertices, faces = _sphere()
    camera = Camera.orbit(20.0, 35.0, 64)
    raster = rasterize_mesh(vertices, faces, camera)
    # Silhouette: a sphere of radius r at distance d subtends asin(r/d).
    disc_radius_px = camera.focal * math.tan(math.asin(0.5 / 2.0))
    expected_fraction = math.pi * disc_radius_px**2 / 64**2
    assert abs(raster.mask.float().mean().item() - expected_fraction) < 0.01
    assert raster.tri_id.dtype == torch.int64 and int(raster.tri_id.min()) == -1
    assert torch.all(raster.depth[~raster.mask] == 0)
    # Perspective-correct barycentrics: the interpolated point lies on the pixel's ray, at the reported depth.
    ys, xs = torch.nonzero(raster.mask, as_tuple=True)
    points = (vertices[faces[raster.tri_id[ys, xs]]] * raster.bary[ys, xs][..., None]).sum(-2).double()
    eye = torch.tensor(camera.c2w[:3, 3])
    to_point = points - eye
    along = (to_point * _pixel_rays(camera, ys, xs)).sum(-1)
    off_ray = (to_point - along[:, None] * _pixel_rays(camera, ys, xs)).norm(dim=-1)
    assert off_ray.max() < 1e-4
    _, point_depth = project_vertices(points.float(), camera)
    assert torch.allclose(point_depth, raster.depth[ys, xs], atol=1e-4)
    # The front of the sphere: depth between d - r and d (+ the polyhedron's sag).
    assert raster.depth[raster.mask].min() > 1.49 and raster.depth[raster.mask].max() < 2.0
    assert torch.allclose(raster.bary.sum(-1)[raster.mask], torch.ones(int(raster.mask.sum())))


def test_nearer_triangle_wins_regardless_of_order_and_chunking():
    # Two overlapping squares facing the reference camera (at z = +2): the one at z = 0.3 is nearer.
    square = torch.tensor([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    near = torch.cat([square + 0.2, torch.full((4, 1), 0.3)], dim=1)
    far = torch.cat([square - 0.2, torch.full((4, 1), -0.3)], dim=1)
    vertices = torch.cat([far, near])
    quad = torch.tensor([[0, 1, 2], [0, 2, 3]])
    faces = torch.cat([quad, quad + 4])  # far first, then near
    camera = reference_camera(48)
    raster = rasterize_mesh(vertices, faces, camera)
    centre = raster.tri_id[24, 24]
    assert centre in (2, 3) and abs(raster.depth[24, 24].item() - 1.7) < 1e-4
    flipped = rasterize_mesh(vertices, torch.cat([quad + 4, quad]), camera)  # near first
    assert flipped.tri_id[24, 24] in (0, 1)
    tiny_chunks = rasterize_mesh(vertices, faces, camera, pair_budget=7)
    assert torch.equal(tiny_chunks.tri_id, raster.tri_id)
    assert torch.allclose(tiny_chunks.bary, raster.bary)


def test_mesh_chunking_matches_one_pass_and_behind_camera_is_dropped():
    vertices, faces = _sphere(subdivisions=3)
    camera = Camera.orbit(-30.0, 120.0, 40)
    whole = rasterize_mesh(vertices, faces, camera)
    chunked = rasterize_mesh(vertices, faces, camera, pair_budget=50)
    assert torch.equal(whole.tri_id, chunked.tri_id)
    behind = rasterize_mesh(vertices + torch.tensor([0.0, 0.0, 3.0]), faces, reference_camera(40))
    assert not behind.mask.any()


def test_rasterizer_rejects_bad_shapes():
    vertices, faces = _sphere(subdivisions=1)
    with pytest.raises(ValueError, match=r"\[V, 3\]"):
        rasterize_mesh(vertices[:, :2], faces, reference_camera(8))
    with pytest.raises(ValueError, match="outside"):
        rasterize_mesh(vertices, faces + 1000, reference_camera(8))


def test_uv_raster_covers_the_uv_triangles():
    uvs = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    raster = rasterize_uv(uvs, torch.tensor([[0, 1, 2]]), 16)
    # Lower-left half of the texture (v up → rows near the bottom are covered across more columns).
    assert raster.mask[15, :15].all() and not raster.mask[0, 15]
    assert abs(raster.mask.float().mean().item() - 0.5) < 0.07


def test_texture_sampling_follows_the_uv_convention_and_is_differentiable():
    texture = torch.zeros(8, 8, 3)
    texture[0, 0] = torch.tensor([1.0, 0.0, 0.0])  # top-left texel: u ≈ 0, v ≈ 1
    texture[7, 7] = torch.tensor([0.0, 1.0, 0.0])  # bottom-right texel: u ≈ 1, v ≈ 0
    uv = torch.tensor([[0.5 / 8, 1 - 0.5 / 8], [1 - 0.5 / 8, 0.5 / 8]])
    assert torch.allclose(sample_texture(texture, uv), torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]))
    # Gradients reach the texture through a rendered image.
    vertices, faces = _sphere(subdivisions=2)
    uvs = (vertices[:, :2] + 0.5).clamp(0, 1)
    learnable = torch.full((16, 16, 3), 0.5, requires_grad=True)
    rgb, alpha = render_textured(vertices, faces, uvs, learnable, reference_camera(32))
    assert rgb.shape == (32, 32, 3) and alpha.shape == (32, 32)
    assert torch.allclose(rgb[alpha == 0], torch.ones(1))  # white background
    (rgb * alpha[..., None]).sum().backward()
    assert learnable.grad is not None and learnable.grad.abs().sum() > 0


def test_interpolate_attributes_reproduces_linear_functions():
    vertices, faces = _sphere(subdivisions=3)
    raster = rasterize_mesh(vertices, faces, Camera.orbit(10.0, -50.0, 32))
    values = interpolate_attributes(raster, faces, vertices @ torch.tensor([[1.0], [2.0], [-1.0]]))
    ys, xs = torch.nonzero(raster.mask, as_tuple=True)
    points = (vertices[faces[raster.tri_id[ys, xs]]] * raster.bary[ys, xs][..., None]).sum(-2)
    assert torch.allclose(values[ys, xs, 0], points @ torch.tensor([1.0, 2.0, -1.0]), atol=1e-5)
    assert torch.all(values[~raster.mask] == 0)
    assert np.isfinite(values.numpy()).all()
