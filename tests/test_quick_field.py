"""The quick method's field → mesh and field → texture steps, on analytic fields."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import trimesh

from backend.mesh import Mesh, UnwrapConfig, unwrap_uvs
from backend.mesh.texture_sampling import sample_texture
from backend.models.triposr import FieldSample, load_triposr
from backend.quick.field_bake import bake_colour_field
from backend.quick.field_mesh import density_on_grid, extract_field_mesh
from backend.quick.field_mesh_config import FieldMeshConfig


def _analytic_colour(points: torch.Tensor) -> torch.Tensor:
    """A smooth colour field with a few periods across the unit sphere."""
    return 0.5 + 0.4 * torch.sin(torch.stack([3 * points[:, 0] + 1, 2.5 * points[:, 1], 2 * points[:, 2] - 1], -1))


def test_colour_field_bake_reproduces_a_known_field_above_30_db():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.8)
    mesh = unwrap_uvs(Mesh(vertices=sphere.vertices.astype(np.float32), faces=sphere.faces.astype(np.int64)),
                      UnwrapConfig(resolution=256))
    baked = bake_colour_field(mesh, _analytic_colour, texture_size=256, chunk=5000)

    # random points on random faces (not texel centres): their UV → the baked texture, vs the field itself
    rng = np.random.default_rng(0)
    faces = rng.integers(0, mesh.face_count, 4000)
    bary = rng.dirichlet(np.ones(3), 4000).astype(np.float32)
    points = (mesh.vertices[mesh.faces[faces]] * bary[..., None]).sum(1)
    uv = (mesh.uvs[mesh.faces[faces]] * bary[..., None]).sum(1)
    looked_up = sample_texture(torch.from_numpy(baked.texture), torch.from_numpy(uv)[None])[0]
    expected = _analytic_colour(torch.from_numpy(points))
    mse = float(((looked_up - expected) ** 2).mean())
    psnr = 10 * np.log10(1.0 / mse)
    assert psnr >= 30.0, f"baked colour field PSNR {psnr:.1f} dB"


def test_density_grid_is_indexed_x_y_z_over_the_triplane_box_and_chunking_does_not_matter():
    loaded = load_triposr("tiny", "cpu")
    triplane = torch.randn(3, 8, 8, 8)
    grid = density_on_grid(loaded.model, triplane, 9, chunk=50)
    assert torch.allclose(grid, density_on_grid(loaded.model, triplane, 9, chunk=10_000))
    axis = torch.linspace(-loaded.config.radius, loaded.config.radius, 9)
    point = torch.stack([axis[1], axis[5], axis[7]])[None]
    assert torch.allclose(grid[1, 5, 7], loaded.model.query_field(triplane, point).density[0], rtol=1e-5)


class _Ellipsoid:
    """A stand-in model whose density is high inside an ellipsoid long along TripoSR's up axis (+Z)."""

    config = SimpleNamespace(radius=0.87)

    def query_field(self, triplane, points):
        inside = (points[:, 0] / 0.3) ** 2 + (points[:, 1] / 0.3) ** 2 + (points[:, 2] / 0.6) ** 2
        return FieldSample(density=50.0 * torch.exp(-inside), colour=torch.zeros(len(points), 3))


def test_field_mesh_comes_out_in_our_frame_up_is_y_and_scaled():
    config = FieldMeshConfig(resolution=40, threshold=25.0, target_faces=0, smoothing_iterations=0)
    surface = extract_field_mesh(_Ellipsoid(), torch.zeros(3, 1, 2, 2), world_scale=2.0, config=config)
    mesh = surface.mesh
    assert surface.level == 25.0
    extent = mesh.vertices.max(0) - mesh.vertices.min(0)
    # density 50·exp(-q) = 25 at q = ln 2: semi-axes √ln2 · (0.3, 0.3, 0.6); TripoSR's z → our y, × 2
    expected = 2 * 2 * np.sqrt(np.log(2)) * np.array([0.3, 0.6, 0.3])
    np.testing.assert_allclose(extent, expected, rtol=0.06)
    volume = trimesh.Trimesh(mesh.vertices, mesh.faces).volume
    assert volume > 0  # outward normals survive the change of frame


def test_triposr_frame_meets_our_reference_camera_as_its_own_input_camera():
    """TripoSR's input camera: on +X, 1.9 away, 40° fov, +Z up, image right = +Y (its renderer's orbit at
    azimuth 0). After triposr_to_world our reference camera must see the same layout, scaled from its 85 %
    framing to our 60 % (border 0.2)."""
    import math

    from backend.camera import reference_camera
    from backend.mesh.rasterize import project_vertices
    from backend.models.triposr import triposr_to_world, world_scale

    camera = reference_camera(256)
    scale = world_scale(0.2)
    right, up, front = triposr_to_world(np.array([[0, 0.3, 0], [0, 0, 0.3], [0.3, 0, 0]]), scale)
    xy, depth = project_vertices(torch.tensor(np.stack([right, up, front]), dtype=torch.float32), camera)
    assert xy[0, 0] > 128 and abs(float(xy[0, 1]) - 128) < 1e-3  # its image-right is our image-right
    assert xy[1, 1] < 128 and abs(float(xy[1, 0]) - 128) < 1e-3  # its up is our up
    assert depth[2] < 2.0  # towards its camera is towards ours
    # apparent size: a point 0.3 to the right, as a fraction of the half image, in each camera
    theirs = 0.3 / (1.9 * math.tan(math.radians(20)))
    ours = (float(xy[0, 0]) - 128) / 128
    assert abs(ours / theirs - 0.6 / 0.85) < 1e-3


def test_random_weights_mesh_a_lumpy_ball_not_the_froth_of_a_flat_field():
    """Full-random TripoSR's density is flat up to rounding (all 2·10⁶ samples of a 128³ grid lie within 10⁻⁶ of
    e⁻¹): meshing its own level sets gave 1.3 M faces at 128³ and minutes of cleanup. The stand-in is one ball
    of STAND_IN_RADIUS with a few lumps, whatever the noise, and the density level leaves some grid inside."""
    from backend.quick.field_mesh import STAND_IN_BUMP, STAND_IN_RADIUS, mesh_from_grid, random_weights_stand_in

    generator = torch.Generator().manual_seed(0)
    density = 0.3679 + 1e-7 * torch.randn(64, 64, 64, generator=generator)
    field, density_level = random_weights_stand_in(density, 0.87)
    assert 0.0 < float((density >= density_level).float().mean()) < 1.0
    mesh = mesh_from_grid(field.numpy(), 1.0, 0.87, world_scale=1.0,
                          config=FieldMeshConfig(resolution=64, target_faces=0, smoothing_iterations=0))
    surface = trimesh.Trimesh(mesh.vertices, mesh.faces)
    assert len(surface.split(only_watertight=False)) == 1
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert STAND_IN_RADIUS * (1 - 3 * STAND_IN_BUMP) - 0.03 <= radii.min()
    assert radii.max() <= STAND_IN_RADIUS * (1 + 3 * STAND_IN_BUMP) + 0.03
    assert radii.std() > 1e-3  # lumpy: the model's field still shapes it
    # a smooth ball of this radius has about 4π(r/cell)²·2 ≈ 9·10³ marching-cubes faces at 64³; no froth
    assert mesh.face_count < 3 * 4 * np.pi * (STAND_IN_RADIUS / (1.74 / 63)) ** 2 * 2


@pytest.mark.parametrize("with_fragment", [False, True])
def test_decimating_before_cleanup_keeps_the_surface_and_the_face_budget(with_fragment):
    """FieldMeshConfig.decimate_first (cleanup on the decimated surface, for speed) gives the surface the
    clean-then-decimate order gives: the same object within a fraction of a cell, at most target_faces faces,
    one closed piece, and a small floater still dropped."""
    from backend.quick.field_mesh import mesh_from_grid

    axis = np.linspace(-0.87, 0.87, 96, dtype=np.float32)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    field = 1.5 - np.sqrt(x * x + y * y + z * z) / 0.5 + 0.1 * np.sin(9 * x) * np.cos(7 * y)
    if with_fragment:  # a speck far from the ball: under min_component_fraction of the faces
        field = np.maximum(field, 1.2 - np.sqrt((x - 0.75) ** 2 + (y - 0.75) ** 2 + (z - 0.75) ** 2) / 0.03)
    field = field.astype(np.float32)
    meshes = {}
    for first in (False, True):
        config = FieldMeshConfig(resolution=96, target_faces=4000, smoothing_iterations=3, decimate_first=first)
        meshes[first] = mesh_from_grid(field, 1.0, 0.87, world_scale=1.0, config=config)
    fast, reference = meshes[True], meshes[False]
    assert fast.face_count <= 4000
    surface = trimesh.Trimesh(fast.vertices, fast.faces)
    assert len(surface.split(only_watertight=False)) == 1 and surface.is_watertight
    assert np.linalg.norm(fast.vertices, axis=1).max() < 0.7  # the speck at 1.3 from the centre is gone
    cell = 1.74 / 95
    from scipy.spatial import cKDTree

    dense, _ = trimesh.sample.sample_surface_even(trimesh.Trimesh(reference.vertices, reference.faces), 60_000,
                                                  seed=0)
    distance, _ = cKDTree(dense).query(fast.vertices)
    assert distance.mean() < 0.25 * cell and distance.max() < 0.75 * cell
