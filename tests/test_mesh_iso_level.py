"""The auto iso-level's criteria (backend/mesh/iso_level.py): silhouettes alone cannot see a level that closes a
concavity; silhouettes with depth (expected or median) can."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from backend.camera import Camera
from backend.gaussians.gaussians import Gaussians
from backend.mesh.extract import extract_mesh
from backend.mesh.iso_level import GaussianView, choose_iso_level, depth_agreeing_iou, view_agreements
from backend.mesh.mesh_config import DEPTH_CRITERION, MEDIAN_DEPTH_CRITERION, SILHOUETTE_CRITERION, MeshConfig
from backend.mesh.rasterize import rasterize_mesh
from tests.mesh_fixtures import one_torch_thread

BOWL_RADIUS = 0.5


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


def bowl_gaussians(count: int = 4000) -> Gaussians:
    """Opaque flat Gaussians tangent to the lower half of a sphere (y ≤ 0, y is up): a bowl open to the sky.
    Flat as fitted surfaces are: round ones would widen the silhouette by a few pixels where rays graze the shell."""
    index = torch.arange(count, dtype=torch.float32) + 0.5
    y = -index / count  # evenly spread over the lower hemisphere's area (Fibonacci spiral)
    ring = torch.sqrt(1 - y * y)
    angle = index * math.pi * (3 - math.sqrt(5))
    means = BOWL_RADIUS * torch.stack([ring * torch.cos(angle), y, ring * torch.sin(angle)], dim=-1)
    scales = torch.tensor([[0.018, 0.018, 0.002]]).expand(count, 3).contiguous()
    normal = means / BOWL_RADIUS  # the rotation taking local z to the normal: (1 + z·n, z × n), normalised
    quats = torch.nn.functional.normalize(
        torch.stack([1 + normal[:, 2], -normal[:, 1], normal[:, 0], torch.zeros(count)], dim=-1), dim=-1)
    return Gaussians(means, scales, quats, torch.full((count,), 0.95), torch.full((count, 3), 0.5))


def bowl_mesh(lid: bool, segments: int = 48, rings: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """The bowl's hemisphere (rim at y = 0), with ``lid`` a disc closing it at the rim: the same silhouette from
    every direction (a ray through the disc crosses the hemisphere too), another depth wherever the inside shows."""
    vertices = [(0.0, -BOWL_RADIUS, 0.0)]  # the bottom pole
    for r in range(1, rings + 1):  # ring `rings` is the rim
        polar = math.pi - (math.pi / 2) * r / rings
        vertices += [(BOWL_RADIUS * math.sin(polar) * math.cos(2 * math.pi * s / segments),
                      BOWL_RADIUS * math.cos(polar), BOWL_RADIUS * math.sin(polar) * math.sin(2 * math.pi * s / segments))
                     for s in range(segments)]
    faces = [(0, 1 + s, 1 + (s + 1) % segments) for s in range(segments)]
    for r in range(rings - 1):
        a, b = 1 + r * segments, 1 + (r + 1) * segments
        for s in range(segments):
            t = (s + 1) % segments
            faces += [(a + s, b + s, b + t), (a + s, b + t, a + t)]
    if lid:
        centre = len(vertices)
        vertices.append((0.0, 0.0, 0.0))
        rim = 1 + (rings - 1) * segments
        faces += [(centre, rim + (s + 1) % segments, rim + s) for s in range(segments)]
    return np.asarray(vertices, dtype=np.float32), np.asarray(faces, dtype=np.int64)


def test_depth_sees_the_lid_that_silhouettes_cannot():
    gaussians = bowl_gaussians()
    # level 1.0 closes the bowl, level 0.3 leaves it open: the silhouette criterion ties them and takes the level
    # nearest 1.0, the lid; the depth criterion sees the lid in front of the inside the Gaussians render
    surfaces = {0.3: bowl_mesh(lid=False), 1.0: bowl_mesh(lid=True), 1.5: None}
    silhouette = choose_iso_level(surfaces.get, gaussians, view_size=48, candidates=(0.3, 1.0, 1.5),
                                  criterion=SILHOUETTE_CRITERION)
    depth = choose_iso_level(surfaces.get, gaussians, view_size=48, candidates=(0.3, 1.0, 1.5),
                             criterion=DEPTH_CRITERION)
    assert set(silhouette.iou_by_level) == {0.3, 1.0}  # no surface at 1.5: skipped
    assert silhouette.iou_by_level[0.3] == silhouette.iou_by_level[1.0] > 0.75  # 48² views: the rim's pixels count
    assert silhouette.level == 1.0
    assert depth.level == 0.3 and depth.criterion == DEPTH_CRITERION
    # both scores are measured whatever the criterion, from the same renders
    assert depth.iou_by_level == silhouette.iou_by_level
    assert depth.depth_iou_by_level == silhouette.depth_iou_by_level
    # the open bowl is nowhere in front of what the Gaussians show; the lid is, over the inside seen from above
    assert depth.depth_iou_by_level[0.3] > depth.iou_by_level[0.3] - 0.01
    assert depth.depth_iou_by_level[1.0] < depth.depth_iou_by_level[0.3] - 0.05


def test_median_depth_sees_the_lid_too():
    gaussians = bowl_gaussians()
    surfaces = {0.3: bowl_mesh(lid=False), 1.0: bowl_mesh(lid=True)}
    median = choose_iso_level(surfaces.get, gaussians, view_size=48, candidates=(0.3, 1.0),
                              criterion=MEDIAN_DEPTH_CRITERION)
    assert median.level == 0.3 and median.criterion == MEDIAN_DEPTH_CRITERION
    assert set(median.median_depth_iou_by_level) == {0.3, 1.0}
    assert median.median_depth_iou_by_level[1.0] < median.median_depth_iou_by_level[0.3] - 0.05
    # the median depth is rendered only when the criterion asks for it
    silhouette = choose_iso_level(surfaces.get, gaussians, view_size=48, candidates=(0.3, 1.0))
    assert silhouette.median_depth_iou_by_level == {}
    assert silhouette.iou_by_level == pytest.approx(median.iou_by_level, abs=1e-6)  # the same silhouettes


def test_depth_agreement_one_and_two_sided():
    covered = torch.tensor([[True, True, True, False]])
    target = torch.tensor([[True, True, False, True]])  # union 4, both 2
    mesh_depth = torch.tensor([[2.0, 3.0, 2.0, 0.0]])
    reference = torch.tensor([[2.02, 2.5, 9.0, 9.0]])  # pixel 0 within 0.05; pixel 1 behind by 0.5
    assert depth_agreeing_iou(covered, mesh_depth, target, None, 0.05, False) == 0.5
    assert depth_agreeing_iou(covered, mesh_depth, target, reference, 0.05, False) == 0.5
    assert depth_agreeing_iou(covered, mesh_depth, target, reference, 0.05, True) == 0.25
    assert depth_agreeing_iou(covered, mesh_depth, target, reference + 1.0, 0.05, False) == 0.0  # mesh in front at both
    empty = torch.zeros(1, 4, dtype=torch.bool)
    assert depth_agreeing_iou(empty, mesh_depth, empty, reference, 0.05, True) == 1.0


def test_only_a_mesh_in_front_of_the_gaussians_depth_disagrees():
    """A square facing the camera 2 units away, against Gaussians that cover the same pixels at other depths."""
    camera = Camera.orbit(0.0, 0.0, 32, 2.0, 40.0)  # at +z, looking at the origin
    vertices = np.array([[-0.3, -0.3, 0.0], [0.3, -0.3, 0.0], [0.3, 0.3, 0.0], [-0.3, 0.3, 0.0]], dtype=np.float32)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    covered = rasterize_mesh(torch.from_numpy(vertices), torch.from_numpy(faces), camera).mask
    assert 50 < int(covered.sum()) < 32 * 32

    def agreement(gaussian_depth: float):
        view = GaussianView(covered.clone(), torch.full((32, 32), gaussian_depth))
        return view_agreements(vertices, faces, [view], [camera], tolerance=0.05)[0]

    assert agreement(2.0).iou == agreement(2.0).depth_iou == 1.0
    assert agreement(2.04).depth_iou == 1.0  # in front, but within the tolerance
    assert agreement(2.3).iou == 1.0 and agreement(2.3).depth_iou == 0.0  # a lid before what the Gaussians show
    assert agreement(1.7).depth_iou == 1.0  # behind their expected depth: a thick or sloped shell's, not counted
    assert agreement(2.0).median_depth_iou is None  # no median depth rendered

    def median_agreement(median_depth: float):
        view = GaussianView(covered.clone(), torch.full((32, 32), 2.0), torch.full((32, 32), median_depth))
        return view_agreements(vertices, faces, [view], [camera], tolerance=0.05, median_tolerance=0.2)[0]

    assert median_agreement(2.15).median_depth_iou == 1.0  # its own tolerance, not the expected depth's
    assert median_agreement(2.3).median_depth_iou == 0.0 and median_agreement(2.3).depth_iou == 1.0


@pytest.mark.parametrize("criterion", [DEPTH_CRITERION, MEDIAN_DEPTH_CRITERION])
def test_depth_criteria_mesh_through_extract_mesh(criterion):
    mesh = extract_mesh(bowl_gaussians(600), MeshConfig(resolution=32, threshold="auto", iso_criterion=criterion,
                                                        target_faces=0))
    assert len(mesh.faces) > 100


def test_depth_criteria_need_auto():
    with pytest.raises(ValueError, match="iso_criterion 'silhouette\\+depth' needs threshold 'auto'"):
        MeshConfig(threshold=0.3, iso_criterion=DEPTH_CRITERION)
    with pytest.raises(ValueError, match="iso_criterion 'silhouette\\+median-depth' needs threshold 'auto'"):
        MeshConfig(threshold=0.3, iso_criterion=MEDIAN_DEPTH_CRITERION)
    with pytest.raises(ValueError, match="iso_criterion must be one of"):
        MeshConfig(threshold="auto", iso_criterion="depth")
    with pytest.raises(ValueError, match="unknown iso-level criterion"):
        choose_iso_level(lambda level: None, bowl_gaussians(10), criterion="depth")
