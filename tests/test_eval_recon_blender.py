"""eval-recon's Blender half (scripts/recon_blender.py, run in a subprocess through the bpy module).

These pin the conventions the whole evaluation rests on: Blender renders land exactly where our cameras
project the same surface, a GLB in our +Y-up world comes back at the same place, and a texture's values
come back as the rendered pixels (emission-only lighting).
"""

from __future__ import annotations

import numpy as np
import pytest

from backend.camera import Camera
from backend.errors import BadInputError
from backend.eval_recon.blender_job import load_surface, render_views
from backend.eval_recon.cameras import NamedCamera

SIZE = 48


def _views(*angles: tuple[float, float]) -> list[NamedCamera]:
    return [NamedCamera(f"v{i}", Camera.orbit(e, a, SIZE), e, a) for i, (e, a) in enumerate(angles)]


def _project(camera: Camera, points: np.ndarray) -> np.ndarray:
    """[N, 3] world → [N, 2] pixel coordinates (x right, y down), OpenGL camera."""
    cam = (np.c_[points, np.ones(len(points))] @ camera.w2c.T)[:, :3]
    x = camera.focal * cam[:, 0] / -cam[:, 2] + camera.width / 2
    y = -camera.focal * cam[:, 1] / -cam[:, 2] + camera.height / 2
    return np.stack([x, y], -1)


def _assert_same_place(camera: Camera, points: np.ndarray, alpha: np.ndarray, name: str) -> None:
    """The projected surface's extent matches the rendered silhouette's to a pixel, and they overlap."""
    projected = _project(camera, points)  # continuous pixel coordinates
    rows, cols = np.nonzero(alpha > 0.5)
    rendered_box = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], float)
    projected_box = np.r_[projected.min(0), projected.max(0)]
    assert np.abs(rendered_box - projected_box).max() <= 1.0, (name, rendered_box, projected_box)
    from scipy.ndimage import binary_dilation

    near_object = binary_dilation(alpha > 0, iterations=1)  # edge pixels may catch no Cycles sample
    pixels = np.clip(np.floor(projected).astype(int), 0, np.array(alpha.shape[::-1]) - 1)
    assert near_object[pixels[:, 1], pixels[:, 0]].mean() > 0.995, name  # every sample lands on the object


@pytest.mark.slow
def test_ground_truth_renders_where_our_cameras_project_its_surface(tmp_path):
    views = _views((0.0, 0.0), (30.0, 60.0), (-20.0, 200.0))
    images = render_views({"builtin": "torus"}, views, tmp_path / "gt", samples=4,
                          surface_out=tmp_path / "surface.npz")
    vertices, faces = load_surface(tmp_path / "surface.npz")
    assert faces.shape[1] == 3 and faces.max() < len(vertices)
    assert np.linalg.norm(vertices, axis=1).max() == pytest.approx(0.6, abs=1e-3)  # normalised into radius 0.6
    from backend.eval_recon.metrics import sample_surface

    points = sample_surface(vertices, faces, 20000)
    for view, (rgb, alpha) in zip(views, images, strict=True):
        assert rgb.shape == (SIZE, SIZE, 3) and alpha.shape == (SIZE, SIZE)
        _assert_same_place(view.camera, points, alpha, view.name)  # the torus is tilted: a flipped axis shows


@pytest.mark.slow
def test_glb_in_our_world_comes_back_in_place_with_its_texture_values(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    from PIL import Image

    # an off-centre box (so any axis flip shows) with a two-colour texture: left half orange, right half blue
    box = trimesh.creation.box(extents=(0.5, 0.3, 0.4))
    box.apply_translation((0.25, 0.15, -0.1))
    texture = np.zeros((8, 8, 3), np.uint8)
    texture[:, :4] = (230, 120, 30)
    texture[:, 4:] = (30, 90, 200)
    uv = np.full((len(box.vertices), 2), 0.25)  # every vertex samples the orange half
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(texture),
                                                    baseColorFactor=[255, 255, 255, 255])
    box.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    glb = tmp_path / "box.glb"
    box.export(glb)

    views = _views((0.0, 0.0), (35.0, 120.0))
    images = render_views({"path": str(glb), "normalise": False}, views, tmp_path / "ours", samples=4)
    points = trimesh.sample.sample_surface(box, 20000, seed=0)[0]
    for view, (rgb, alpha) in zip(views, images, strict=True):
        _assert_same_place(view.camera, points, alpha, view.name)
        inner = alpha > 0.99
        np.testing.assert_allclose(rgb[inner].mean(0), np.array([230, 120, 30]) / 255, atol=3 / 255)


def test_unknown_builtin_and_missing_file_are_bad_input(tmp_path):
    with pytest.raises(BadInputError, match="teapot"):
        render_views({"builtin": "teapot"}, _views((0.0, 0.0)), tmp_path, samples=1)
    with pytest.raises(BadInputError, match="not found"):
        render_views({"path": str(tmp_path / "nope.glb")}, _views((0.0, 0.0)), tmp_path, samples=1)
