"""Density grid, marching cubes, cleanup and decimation (backend/mesh/density_grid.py, extract.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from backend.errors import BadInputError
from backend.gaussians.gaussians import covariances, quat_to_rotmat
from backend.job_control import JobControl
from backend.mesh.density_grid import density_grid, grid_coordinates
from backend.mesh.extract import NoSurfaceError, clean_mesh, decimate, extract_mesh, marching_cubes
from backend.mesh.mesh_config import MeshConfig
from tests.mesh_fixtures import one_gaussian, one_torch_thread, random_gaussians


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


def brute_force_density(gaussians, points: torch.Tensor) -> torch.Tensor:
    """Σ opacity·exp(-½dᵀΣ⁻¹d), every Gaussian against every point, float64, truncated at the 3σ box like ours."""
    cov = covariances(gaussians).double()
    d = points.double()[:, None, :] - gaussians.means.double()[None]
    m = torch.einsum("pgi,gij,pgj->pg", d, torch.linalg.inv(cov), d)
    in_box = (d.abs() <= 3 * torch.diagonal(cov, dim1=-2, dim2=-1).sqrt()[None]).all(-1)
    return (torch.exp(-0.5 * m) * gaussians.opacities.double() * in_box).sum(-1)


def test_density_grid_matches_brute_force_and_block_size_does_not_matter():
    gaussians = random_gaussians(120, seed=1, scale_range=(0.04, 0.12))
    axis = grid_coordinates(16, 0.8)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
    expected = brute_force_density(gaussians, points).reshape(16, 16, 16)
    small_blocks = density_grid(gaussians, 16, 0.8, block=6, pair_budget=5000)
    one_block = density_grid(gaussians, 16, 0.8, block=32)
    assert expected.max() > 1.0
    # Within a block we evaluate Gaussians past their 3σ box too: the difference is below exp(-4.5) per Gaussian.
    assert torch.allclose(small_blocks.double(), expected, atol=0.02)
    assert torch.allclose(small_blocks, one_block, atol=0.02)


def test_density_grid_rejects_bad_arguments():
    with pytest.raises(ValueError, match="resolution"):
        density_grid(one_gaussian(), resolution=1)
    with pytest.raises(ValueError, match="bound"):
        density_grid(one_gaussian(), bound=0.0)


def test_isotropic_gaussian_gives_sphere_of_the_predicted_radius():
    # density = exp(-r²/2σ²) crosses t at r = σ·sqrt(2 ln(1/t)).
    sigma, threshold = 0.3, 0.5
    mesh = extract_mesh(one_gaussian((sigma,) * 3), MeshConfig(resolution=32, threshold=threshold, target_faces=0))
    expected = sigma * math.sqrt(2 * math.log(1 / threshold))
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert abs(radii.mean() - expected) / expected < 0.05
    assert radii.max() < 1.05 * expected and radii.min() > 0.95 * expected
    assert mesh.vertices.dtype == np.float32 and mesh.faces.dtype == np.int64
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    assert tm.is_watertight
    assert tm.volume > 0  # normals point outwards
    assert abs(tm.volume - 4 / 3 * math.pi * expected**3) / (4 / 3 * math.pi * expected**3) < 0.1


def test_marching_cubes_normals_point_out_of_the_dense_region_even_on_open_surfaces():
    # A blob cut open by the grid's border: cleanup cannot fix the orientation of a surface that is not closed
    # (trimesh's fix_inversion needs a watertight mesh), so marching cubes itself must wind faces outwards.
    axis = np.linspace(-1.0, 1.0, 24)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    grid = np.exp(-4.0 * ((x - 0.1) ** 2 + y**2 + z**2))
    vertices, faces = marching_cubes(grid, 0.5, 1.0)
    closed = trimesh.Trimesh(vertices, faces, process=True)
    assert closed.is_watertight and closed.volume > 0
    open_half = clean_mesh(vertices, faces[closed.triangles_center[:, 0] > 0.1], 0.0)
    assert not open_half.is_watertight
    outward = open_half.triangles_center - np.array([0.1, 0.0, 0.0])
    assert (np.einsum("ij,ij->i", open_half.face_normals, outward) > 0).mean() > 0.99


def test_taubin_smoothing_takes_out_the_voxel_scale_roughness_and_keeps_the_volume():
    # A fitted cloud's density is a sum of many small Gaussians: rough at the voxel scale, and marching cubes
    # follows every wrinkle. Smoothing should flatten the wrinkles (smaller angles between neighbouring faces)
    # without shrinking the surface.
    cloud = random_gaussians(400, seed=3, scale_range=(0.03, 0.06))
    rough, smooth = (extract_mesh(cloud, MeshConfig(resolution=48, threshold=0.5, target_faces=0, grid_box="fixed",
                                                    smoothing_iterations=iterations)) for iterations in (0, 10))
    rough, smooth = (trimesh.Trimesh(m.vertices, m.faces, process=False) for m in (rough, smooth))
    assert smooth.face_adjacency_angles.mean() < 0.9 * rough.face_adjacency_angles.mean()
    assert abs(smooth.area - rough.area) / rough.area < 0.1
    with pytest.raises(ValueError, match="smoothing_iterations"):
        MeshConfig(smoothing_iterations=-1)


def test_rotated_anisotropic_gaussian_gives_the_rotated_ellipsoid():
    scales = np.array([0.35, 0.15, 0.25])
    quat = np.array([0.9, 0.3, -0.2, 0.25])
    quat /= np.linalg.norm(quat)
    gaussian = one_gaussian(tuple(scales), tuple(quat), opacity=0.9, mean=(0.1, -0.05, 0.0))
    threshold = 0.4
    mesh = extract_mesh(gaussian, MeshConfig(resolution=40, threshold=threshold, target_faces=0))
    rot = quat_to_rotmat(torch.tensor(quat, dtype=torch.float64)).numpy()
    local = (mesh.vertices.astype(np.float64) - [0.1, -0.05, 0.0]) @ rot  # world → local frame
    level = np.sqrt(2 * np.log(0.9 / threshold))
    ellipsoid_radius = np.linalg.norm(local / (scales * level), axis=1)  # 1 on the exact surface
    assert np.abs(ellipsoid_radius - 1).max() < 0.05


def test_cleanup_drops_a_small_floating_component():
    body = trimesh.creation.icosphere(3, radius=0.5)
    floater = trimesh.creation.icosphere(0, radius=0.05)  # 20 faces, 1.5% of the total
    floater.apply_translation([0.8, 0.0, 0.0])
    both = trimesh.util.concatenate([body, floater])
    # Duplicate every vertex so that cleanup has to merge them back into one connected surface.
    faces = np.arange(len(both.faces) * 3).reshape(-1, 3)
    vertices = both.vertices[both.faces.reshape(-1)]
    cleaned = clean_mesh(vertices, faces, min_component_fraction=MeshConfig().min_component_fraction)
    assert len(cleaned.faces) == len(body.faces)
    assert np.linalg.norm(cleaned.vertices, axis=1).max() < 0.51
    assert cleaned.is_watertight and len(cleaned.vertices) == len(body.vertices)


def test_cleanup_removes_degenerate_and_duplicate_faces():
    body = trimesh.creation.icosphere(2)
    faces = np.concatenate([body.faces, body.faces[:5], [[0, 0, 1], [3, 3, 3]]])
    cleaned = clean_mesh(body.vertices, faces, min_component_fraction=0.0)
    assert len(cleaned.faces) == len(body.faces)


def test_decimation_reaches_the_target_and_keeps_the_shape():
    sphere = trimesh.creation.icosphere(4, radius=0.5)
    target = 600
    simplified = decimate(sphere, target)
    assert 0.5 * target <= len(simplified.faces) <= target
    assert abs(simplified.volume - sphere.volume) / sphere.volume < 0.05
    assert decimate(sphere, 0) is sphere


def test_extract_mesh_from_a_ball_of_gaussians_reaches_target_and_reports_progress():
    events = []
    control = JobControl(on_progress=events.append)
    config = MeshConfig(resolution=32, threshold=0.5, target_faces=800)
    mesh = extract_mesh(random_gaussians(400, seed=3, scale_range=(0.05, 0.12)), config, control)
    assert 0 < mesh.face_count <= 800
    assert np.linalg.norm(mesh.vertices, axis=1).max() < 0.75
    assert [e.fraction for e in events][-1] == 1.0 and {e.stage for e in events} == {"mesh"}


def test_no_surface_raises_a_clear_bad_input_error():
    faint = one_gaussian(opacity=0.2)
    with pytest.raises(NoSurfaceError, match="below the threshold") as info:
        extract_mesh(faint, MeshConfig(resolution=16, threshold=1.0))
    assert isinstance(info.value, BadInputError) and info.value.exit_code == 2
    with pytest.raises(NoSurfaceError):
        marching_cubes(np.zeros((8, 8, 8)), 0.5, 1.0)


def test_cleanup_leaves_no_edge_shared_by_more_than_two_faces():
    body = trimesh.creation.icosphere(2)
    a, b = body.faces[0][:2]
    fin_tip = len(body.vertices)
    vertices = np.concatenate([body.vertices, [body.vertices[a] * 1.5]])
    faces = np.concatenate([body.faces, [[a, b, fin_tip]]])  # a third face on edge (a, b)
    cleaned = clean_mesh(vertices, faces, min_component_fraction=0.0)
    _, counts = np.unique(cleaned.edges_sorted, axis=0, return_counts=True)
    assert counts.max() == 2
    assert len(cleaned.faces) >= len(body.faces) - 2


def test_extract_mesh_honours_cancel_during_the_density_grid():
    from backend.errors import CancelledError

    control = JobControl()
    control.cancel()
    with pytest.raises(CancelledError, match="mesh"):
        density_grid(one_gaussian(), 16, control=control)


def test_auto_iso_level_picks_the_level_whose_silhouettes_match_the_gaussians():
    from backend.mesh.iso_level import CANDIDATE_LEVELS, choose_iso_level

    cloud = random_gaussians(300, seed=5, scale_range=(0.03, 0.07))
    grid = density_grid(cloud, 40, 1.0).numpy()

    def mesh_at(level):
        try:
            return marching_cubes(grid, level, 1.0)
        except NoSurfaceError:
            return None

    choice = choose_iso_level(mesh_at, cloud, view_size=48)
    assert set(choice.iou_by_level) <= set(CANDIDATE_LEVELS) and len(choice.iou_by_level) >= 3
    assert choice.iou_by_level[choice.level] == max(choice.iou_by_level.values()) > 0.85
    # the silhouettes really differ between levels: the worst candidate is clearly worse than the pick
    assert min(choice.iou_by_level.values()) < choice.iou_by_level[choice.level] - 0.05
    mesh = extract_mesh(cloud, MeshConfig(resolution=40, threshold="auto", target_faces=0))
    assert len(mesh.faces) > 100


def test_auto_iso_level_rejects_bad_values_and_reports_no_surface():
    with pytest.raises(ValueError, match="positive number or 'auto'"):
        MeshConfig(threshold="automatic")
    faint = random_gaussians(50, seed=2)
    faint = type(faint)(faint.means, faint.scales, faint.quats, faint.opacities * 0.001, faint.colors)
    with pytest.raises(NoSurfaceError, match="every candidate iso-level"):
        extract_mesh(faint, MeshConfig(resolution=16, threshold="auto"))


@pytest.mark.parametrize("centre", [(0.0, 0.1, -0.2), (0.8, -0.8, 0.8)])  # inside, and cut by the grid's border
def test_marching_cubes_on_the_box_around_the_object_gives_the_whole_grids_triangles(centre):
    """marching_cubes meshes only the box around the inside cells: the triangles of scikit-image on the whole
    zero-padded grid, in the same world coordinates (as sorted corner lists, vertex numbering aside)."""
    from skimage import measure

    axis = np.linspace(-1.0, 1.0, 48, dtype=np.float32)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    grid = 10 * np.exp(-((x - centre[0]) ** 2 + (y - centre[1]) ** 2 / 0.5 + (z - centre[2]) ** 2) / 0.1)
    vertices, faces = marching_cubes(grid, 2.0, 1.0)
    whole_v, whole_f, _, _ = measure.marching_cubes(np.pad(grid, 1), 2.0, gradient_direction="ascent",
                                                    allow_degenerate=False)
    whole_v = (whole_v - 1.0) * (2.0 / 47) - 1.0
    assert len(faces) == len(whole_f) > 100
    ours = np.sort(vertices[faces].reshape(len(faces), -1), axis=0)
    theirs = np.sort(whole_v[whole_f].reshape(len(whole_f), -1), axis=0)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
