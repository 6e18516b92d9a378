"""UV unwrapping, texture baking and stage-2 texture refinement (backend/mesh/uv_unwrap.py, bake.py,
refine_texture.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.camera import Camera, orbit_angles, reference_camera
from backend.errors import CancelledError
from backend.job_control import JobControl
from backend.mesh.bake import bake_cameras, bake_texture, fill_texture, mesh_tensors
from backend.mesh.mesh import Mesh
from backend.mesh.rasterize import rasterize_mesh, rasterize_uv
from backend.mesh.refine_texture import refine_texture
from backend.mesh.texture_config import TextureConfig
from backend.mesh.texture_sampling import interpolate_attributes, render_textured
from backend.mesh.uv_unwrap import UnwrapConfig, unwrap_uvs
from tests.mesh_fixtures import View, one_torch_thread, smooth_texture, smooth_vertex_colours, uv_sphere_mesh


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean().clamp_min(1e-12)))


@pytest.mark.parametrize("faces_per_part", [0, 60])
def test_unwrap_gives_non_overlapping_uvs_in_unit_square_and_a_consistent_vmapping(faces_per_part):
    import trimesh

    sphere = trimesh.creation.icosphere(2, radius=0.6)
    mesh = unwrap_uvs(Mesh(sphere.vertices.astype(np.float32), sphere.faces.astype(np.int64)),
                      UnwrapConfig(resolution=256, faces_per_part=faces_per_part))
    assert UnwrapConfig(faces_per_part=faces_per_part).parts_per_axis(320) == (1 if faces_per_part == 0 else 2)
    assert mesh.uvs is not None and mesh.uvs.dtype == np.float32
    assert mesh.uvs.min() >= 0 and mesh.uvs.max() <= 1
    assert mesh.vertex_count > len(sphere.vertices)  # split along seams
    assert np.allclose(mesh.vertices, sphere.vertices[mesh.vmapping], atol=1e-6)
    assert mesh.face_count == len(sphere.faces)
    # Charts do not overlap: the texels covered add up to the summed UV triangle areas.
    tri = mesh.uvs[mesh.faces]
    area = 0.5 * np.abs(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]))
    assert (area > 0).all() and 0.3 < area.sum() <= 1.0
    covered = rasterize_uv(torch.as_tensor(mesh.uvs), torch.as_tensor(mesh.faces), 512).mask.float().mean()
    assert abs(float(covered) - area.sum()) < 0.03 * area.sum()


def test_bake_cameras_cover_the_sphere():
    cameras = bake_cameras(32)
    assert len(cameras) == 26 and all(c.width == 32 for c in cameras)
    directions = np.array([c.c2w[:3, 3] / np.linalg.norm(c.c2w[:3, 3]) for c in cameras])
    probe = np.random.default_rng(0).normal(size=(500, 3))
    probe /= np.linalg.norm(probe, axis=1, keepdims=True)
    assert (probe @ directions.T).max(axis=1).min() > np.cos(np.radians(40))  # every direction within 40° of a view


def test_bake_reproduces_vertex_colours_at_the_bake_views():
    mesh = uv_sphere_mesh(subdivisions=3, texture_resolution=256)
    vertices, faces, uvs = mesh_tensors(mesh, "cpu")
    colours = smooth_vertex_colours(vertices)

    def render_view(camera):
        raster = rasterize_mesh(vertices, faces, camera)
        alpha = raster.mask.float()
        rgb = interpolate_attributes(raster, faces, colours) * alpha[..., None] + (1 - alpha[..., None])
        return rgb, alpha

    cameras = bake_cameras(64)
    events = []
    baked = bake_texture(mesh, render_view, cameras, 256, control=JobControl(on_progress=events.append))
    assert baked.texture.shape == (256, 256, 3) and baked.texture.dtype == np.float32
    assert np.array_equal(baked.uvs, mesh.uvs)
    texture = torch.as_tensor(baked.texture)
    worst = min(_psnr(render_textured(vertices, faces, uvs, texture, c)[0], render_view(c)[0]) for c in cameras)
    assert worst >= 30.0, worst
    assert events[-1].fraction == 1.0 and events[-1].stage == "bake"
    # Texels outside the charts were filled from their neighbours: nothing black is left.
    assert baked.texture.min() > 0.05


@pytest.mark.parametrize("ownership, owner_of_view_1", [("first", 0), ("best", 1)])
def test_bake_ownership_picks_the_first_or_the_most_head_on_view(ownership, owner_of_view_1):
    """Each bake view renders one flat colour of its own. The sphere's point facing view 1 (azimuth 45°) is seen
    by view 0 too, at cos 45° > 0.5: "first" gives it view 0's colour, "best" view 1's, its most head-on view."""
    mesh = uv_sphere_mesh(subdivisions=3, texture_resolution=256)
    vertices, faces, uvs = mesh_tensors(mesh, "cpu")
    cameras = bake_cameras(64)
    colours = {id(c): torch.tensor([i / len(cameras), 1 - i / len(cameras), 0.5]) for i, c in enumerate(cameras)}

    def render_view(camera):
        alpha = rasterize_mesh(vertices, faces, camera).mask.float()
        return colours[id(camera)].expand(camera.height, camera.width, 3).clone(), alpha

    baked = bake_texture(mesh, render_view, cameras, 256, ownership=ownership)
    rgb = render_textured(vertices, faces, uvs, torch.as_tensor(baked.texture), cameras[1])[0]
    torch.testing.assert_close(rgb[32, 32], colours[id(cameras[owner_of_view_1])], atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="ownership"):
        bake_texture(mesh, render_view, cameras, 256, ownership="last")


def test_bake_rejects_renders_of_the_wrong_size():
    mesh = uv_sphere_mesh(subdivisions=1, texture_resolution=64)
    with pytest.raises(ValueError, match="expected"):
        bake_texture(mesh, lambda c: (torch.zeros(5, 5, 3), torch.zeros(5, 5)), bake_cameras(16), 32)
    with pytest.raises(ValueError, match="UVs"):
        bake_texture(Mesh(mesh.vertices, mesh.faces), lambda c: None, bake_cameras(16), 32)


def test_fill_texture_keeps_known_texels_and_fills_the_rest():
    texture = torch.zeros(16, 16, 3)
    known = torch.zeros(16, 16, dtype=torch.bool)
    texture[4:8, 4:8] = torch.tensor([0.2, 0.4, 0.6])
    known[4:8, 4:8] = True
    texture[12, 12] = torch.tensor([1.0, 1.0, 1.0])
    known[12, 12] = True
    filled = fill_texture(texture, known, dilation=2)
    assert torch.equal(filled[known], texture[known])
    assert torch.allclose(filled[2, 5], torch.tensor([0.2, 0.4, 0.6]))  # dilated
    assert torch.all(filled[0, 15] > 0.15)  # far corner: push-pull, no black left
    assert torch.all((filled >= 0) & (filled <= 1))


def _reference(mesh: Mesh, texture: np.ndarray, size: int = 48) -> View:
    vertices, faces, uvs = mesh_tensors(mesh, "cpu")
    camera = reference_camera(size)
    rgb, alpha = render_textured(vertices, faces, uvs, torch.as_tensor(texture), camera)
    return View(camera, rgb, alpha)


def test_refine_without_guidance_fits_the_reference_view():
    mesh = uv_sphere_mesh(subdivisions=3, texture_resolution=64)
    reference = _reference(mesh, smooth_texture(64))
    start = mesh.with_texture(np.full((64, 64, 3), 0.5, np.float32))
    vertices, faces, uvs = mesh_tensors(mesh, "cpu")

    def reference_loss(m: Mesh) -> float:
        rgb, _ = render_textured(vertices, faces, uvs, torch.as_tensor(m.texture), reference.camera)
        return float(((rgb - reference.rgb) ** 2).mean())

    refined = refine_texture(start, reference, None, TextureConfig(steps=30, lr=0.1))
    assert refined.texture.shape == (64, 64, 3)
    assert reference_loss(refined) < 0.2 * reference_loss(start)
    assert np.array_equal(refined.vertices, mesh.vertices)  # geometry untouched
    assert np.array_equal(refine_texture(start, reference, None, TextureConfig(steps=0)).texture, start.texture)


class RedGuidance:
    """Stand-in for Zero123Guidance.refine: records its arguments and asks for a red object."""

    def __init__(self):
        self.calls = []

    def refine(self, images, d_elevation_deg, d_azimuth_deg, d_radius, strength=0.8, steps=50, guidance_scale=5.0):
        self.calls.append((images.shape, d_elevation_deg.clone(), d_azimuth_deg.clone(), d_radius.clone(), strength))
        target = torch.ones(images.shape[0], 3, 32, 32)  # another size than the renders: refine resizes
        target[:, 1:, 8:24, 8:24] = 0.0
        return target


@pytest.mark.parametrize("target_views", [4, 0])
def test_refine_with_guidance_pulls_novel_views_towards_the_targets(target_views):
    mesh = uv_sphere_mesh(subdivisions=2, texture_resolution=64).with_texture(np.full((64, 64, 3), 0.5, np.float32))
    reference = _reference(mesh, mesh.texture, size=32)
    guidance = RedGuidance()
    config = TextureConfig(steps=15, lr=0.1, render_size=32, target_views=target_views, batch_size=2,
                           refine_strength=0.6)
    refined = refine_texture(mesh, reference, guidance, config)
    calls = guidance.calls
    assert len(calls) == (2 if target_views else 15)
    assert calls[0][0] == (2, 3, 32, 32) and calls[0][4] == (0.6 if target_views else config.strength_at(0))
    d_elevation = torch.cat([c[1] for c in calls])
    d_azimuth = torch.cat([c[2] for c in calls])
    assert d_elevation.abs().max() <= 30.0 and d_azimuth.abs().max() <= 180.0
    assert torch.allclose(torch.cat([c[3] for c in calls]), torch.zeros(1), atol=1e-5)
    red_minus_green = refined.texture[..., 0] - refined.texture[..., 1]
    assert red_minus_green.max() > 0.2  # texels seen by the novel views turned red


def test_orbit_angles_inverts_camera_orbit():
    elevation, azimuth, radius = orbit_angles(Camera.orbit(25.0, -130.0, 8, radius=2.5))
    assert abs(elevation - 25.0) < 1e-6 and abs(azimuth + 130.0) < 1e-6 and abs(radius - 2.5) < 1e-9


def test_refine_honours_cancel():
    mesh = uv_sphere_mesh(subdivisions=1, texture_resolution=32).with_texture(np.full((32, 32, 3), 0.5, np.float32))
    control = JobControl()
    control.cancel()
    with pytest.raises(CancelledError):
        refine_texture(mesh, _reference(mesh, mesh.texture, 16), None, TextureConfig(steps=5), control)
