"""eval-recon's pure parts: metrics, cameras, contact sheet (no Blender, no fitting)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.camera import reference_camera
from backend.errors import BadInputError
from backend.eval_recon import metrics
from backend.eval_recon.cameras import held_out_cameras, training_cameras
from backend.eval_recon.contact_sheet import SHEET_GAP, make_contact_sheet, stack_contact_sheets


def _uv_sphere(radius: float, rings: int = 48, segments: int = 96) -> tuple[np.ndarray, np.ndarray]:
    theta = np.linspace(0, np.pi, rings + 1)
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    vertices = radius * np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], -1).reshape(-1, 3)
    faces = []
    for i in range(rings):
        for j in range(segments):
            a, b = i * segments + j, i * segments + (j + 1) % segments
            c, d = a + segments, b + segments
            faces += [[a, c, b], [b, c, d]]
    return vertices, np.array(faces)


def test_psnr_of_identical_images_is_capped_not_infinite():
    image = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    assert metrics.psnr(image, image) == metrics.MAX_PSNR_DB


def test_psnr_of_a_known_error():
    a = np.zeros((8, 8, 3), np.float32)
    assert metrics.psnr(a + 0.1, a) == pytest.approx(20.0, abs=1e-4)  # MSE 0.01 → 20 dB
    assert metrics.psnr(a + 0.01, a) == pytest.approx(40.0, abs=1e-3)


def test_psnr_mask_averages_only_inside():
    truth = np.zeros((8, 8, 3), np.float32)
    pred = truth.copy()
    pred[:4] = 0.1  # error only in the top half
    top = np.zeros((8, 8), bool)
    top[:4] = True
    assert metrics.psnr(pred, truth, top) == pytest.approx(20.0, abs=1e-4)
    assert metrics.psnr(pred, truth) == pytest.approx(20.0 + 10 * np.log10(2), abs=1e-4)  # diluted by the clean half
    with pytest.raises(BadInputError):
        metrics.psnr(pred, truth[:4])


def test_object_psnr_counts_a_missing_object_as_error():
    rgb = np.full((8, 8, 3), 0.5, np.float32)  # same colour as the metric background
    alpha = np.zeros((8, 8), np.float32)
    alpha[2:6, 2:6] = 1.0
    rgb_white = np.ones((8, 8, 3), np.float32)
    union_psnr, full_psnr = metrics.object_psnr(rgb_white, alpha, rgb_white, np.zeros((8, 8), np.float32))
    assert union_psnr == pytest.approx(-10 * np.log10(0.25), abs=1e-4)  # white vs grey on every union pixel
    assert full_psnr > union_psnr
    assert metrics.object_psnr(rgb, alpha, rgb, alpha)[0] == metrics.MAX_PSNR_DB


def test_iou_of_known_masks():
    a = np.zeros((10, 10), np.float32)
    b = np.zeros((10, 10), np.float32)
    a[0:4, 0:5] = 1.0  # 20 pixels
    b[2:6, 0:5] = 1.0  # 20 pixels, 10 shared
    assert metrics.silhouette_iou(a, b) == pytest.approx(10 / 30)
    assert metrics.silhouette_iou(a, a) == 1.0
    assert metrics.silhouette_iou(np.zeros_like(a), np.zeros_like(a)) == 1.0
    assert metrics.silhouette_iou(a, 1.0 - a) == 0.0


def test_surface_samples_lie_on_the_sphere():
    vertices, faces = _uv_sphere(1.0)
    points = metrics.sample_surface(vertices, faces, 5000, seed=3)
    radii = np.linalg.norm(points, axis=1)
    assert radii.max() <= 1.0 + 1e-6 and radii.min() > 0.995
    assert abs(points.mean(axis=0)).max() < 0.05  # uniform by area: no pile-up at the poles
    assert abs(points[:, 1]).mean() == pytest.approx(0.5, abs=0.03)  # |y| is uniform on [0, 1] for a sphere


def test_chamfer_of_sphere_and_scaled_sphere_is_the_radius_gap():
    inner, faces = _uv_sphere(1.0)
    a = metrics.sample_surface(inner, faces, 20000, seed=0)
    b = metrics.sample_surface(inner * 1.1, faces, 20000, seed=1)
    same = metrics.sample_surface(inner, faces, 20000, seed=2)
    assert metrics.chamfer_distance(a, b) == pytest.approx(0.1, abs=0.01)
    assert metrics.chamfer_distance(a, same) < 0.02
    assert metrics.bounding_box_diagonal(a) == pytest.approx(2 * np.sqrt(3), rel=0.02)


def test_training_view_zero_is_the_reference_view():
    train = training_cameras(8, 64)
    np.testing.assert_allclose(train[0].camera.c2w, reference_camera(64).c2w, atol=1e-12)
    assert [c.name for c in train] == [f"train-{i:02d}" for i in range(8)]
    assert len({round(c.azimuth_deg, 6) for c in train}) == 8


@pytest.mark.parametrize("train_count", [8, 16])
def test_held_out_views_are_never_training_views(train_count):
    train = training_cameras(train_count, 64)
    held = held_out_cameras(8, 64, train_count)
    centres_train = np.stack([c.camera.c2w[:3, 3] for c in train])
    for view in held:
        centre = view.camera.c2w[:3, 3]
        cosines = centres_train @ centre / (np.linalg.norm(centres_train, axis=1) * np.linalg.norm(centre))
        assert np.degrees(np.arccos(np.clip(cosines, -1, 1))).min() > 5.0, view.name
        assert abs(view.elevation_deg) <= 35.0  # inside the elevation band the training views cover


def test_camera_json_round_trip():
    view = held_out_cameras(8, 48, 8)[3]
    data = view.to_json()
    assert data["name"] == "heldout-03" and data["width"] == data["height"] == 48
    np.testing.assert_allclose(np.array(data["c2w"]), view.camera.c2w)


def test_contact_sheet_puts_ground_truth_above_ours():
    red = (np.tile(np.array([1.0, 0.0, 0.0], np.float32), (16, 16, 1)), np.ones((16, 16), np.float32))
    blue = (np.tile(np.array([0.0, 0.0, 1.0], np.float32), (16, 16, 1)), np.ones((16, 16), np.float32))
    sheet = make_contact_sheet([red, red, red], [blue, blue, blue], ["a", "b", "c"], title="t", min_cell=64)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3
    column = sheet[:, -10]  # inside the last view's column
    red_rows = np.flatnonzero((column[:, 0] > 200) & (column[:, 2] < 50))
    blue_rows = np.flatnonzero((column[:, 2] > 200) & (column[:, 0] < 50))
    assert len(red_rows) == 64 and len(blue_rows) == 64  # enlarged 16 → 64
    assert red_rows.max() < blue_rows.min()
    with pytest.raises(BadInputError):
        make_contact_sheet([red], [blue, blue])


def test_run_contact_sheet_shows_every_object_in_order():
    """Six objects' sheets (of different widths, as a mesh-file object may have) all appear, in run order."""
    shades = [40 * (i + 1) for i in range(6)]
    sheets = [np.full((10, 20 + 4 * i, 3), shade, np.uint8) for i, shade in enumerate(shades)]
    stacked = stack_contact_sheets(sheets)
    assert stacked.shape == (6 * (10 + SHEET_GAP), 40, 3)
    first_column = stacked[:, 0, 0]
    runs = [int(v) for i, v in enumerate(first_column) if v != 255 and (i == 0 or first_column[i - 1] != v)]
    assert runs == shades
    assert (stacked[0:10, 20:] == 255).all()  # a narrower sheet is padded with white, not stretched
    with pytest.raises(BadInputError):
        stack_contact_sheets([])
