"""Photo match: a flat card of a known shape, imported like a generated model, rendered through the photo-match
camera (Cycles, CPU), must cover the photo's mask.

The card is what stage 1 would ideally build from the mask: the reference camera (distance 2, fov 49.1°)
sees the plane z = 0 of our world as the reference square, so each mask corner (photo pixels) maps to
our world through the reference crop. An L shape catches mirrors and quarter turns; it is off-centre
in a 3:2 photo, so the lens shift matters; the object is moved and scaled, so the camera must follow.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.test_artist_backend import _l_shape

BOXES = ((14, 20, 50, 32), (38, 20, 50, 56))  # (top, left, bottom, right) of the L's two bars, as in _l_shape


def write_card_glb(path: Path, crop, boxes=BOXES) -> Path:
    """Quads in our z = 0 plane where the reference camera sees the photo's ``boxes``; a plain texture."""
    import trimesh
    from PIL import Image

    half = 2.0 * math.tan(math.radians(49.1) / 2)  # half the plane's extent seen at distance 2
    x0, y0, side = crop

    def world(px, py):
        return (((px - x0) / side - 0.5) * 2 * half, (0.5 - (py - y0) / side) * 2 * half, 0.0)

    vertices, faces = [], []
    for top, left, bottom, right in boxes:
        base = len(vertices)
        vertices += [world(left, bottom), world(right, bottom), world(right, top), world(left, top)]
        faces += [(base, base + 1, base + 2), (base, base + 2, base + 3)]
    mesh = trimesh.Trimesh(vertices=np.array(vertices), faces=np.array(faces), process=False)
    uv = np.array([(0, 0), (1, 0), (1, 1), (0, 1)] * len(boxes), float)
    texture = Image.fromarray(np.full((4, 4, 3), (200, 60, 40), np.uint8))
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv, material=trimesh.visual.material.PBRMaterial(
        baseColorTexture=texture))
    path.write_bytes(mesh.export(file_type="glb"))
    return path


@pytest.fixture
def l_photo(tmp_path) -> tuple[Path, np.ndarray]:
    from PIL import Image

    mask = _l_shape()
    rgb = np.full((*mask.shape, 3), (90, 140, 90), np.uint8)
    rgb[mask] = (200, 60, 40)
    path = tmp_path / "l-photo.png"
    Image.fromarray(rgb).save(path)
    return path, mask


def render_silhouette(scene, path: Path) -> np.ndarray:
    """[H, W] bool: where the render's alpha covers more than half the pixel (Cycles, CPU, 2 samples)."""
    import bpy
    from PIL import Image

    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 2
    scene.cycles.use_denoising = False
    scene.cycles.filter_width = 0.01  # box-like: coverage of the pixel itself
    scene.render.film_transparent = True
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    return np.asarray(Image.open(path))[..., 3] > 127


def test_card_rendered_through_photo_match_camera_covers_the_mask(registered_addon, l_photo, tmp_path):
    import bpy
    from image_to_3d.backend.preprocess import reference_crop
    from image_to_3d.operators.import_result import import_generated_model
    from image_to_3d.operators.photo_match import add_photo_match_camera, photo_datablock

    photo_path, mask = l_photo
    crop = reference_crop(mask, 256, 0.2)
    glb = write_card_glb(tmp_path / "card.glb", (crop.x0, crop.y0, crop.side))
    bpy.context.scene.cursor.location = (1.0, -0.5, 0.25)
    obj = import_generated_model(glb, "card")
    obj.scale = (1.5, 1.5, 1.5)
    obj.rotation_euler = (0.0, 0.0, math.radians(30))  # the camera follows the object's turn too
    bpy.context.view_layer.update()

    camera = add_photo_match_camera(obj, photo_datablock(None, str(photo_path)), (crop.x0, crop.y0, crop.side),
                                    (96, 64))
    scene = bpy.context.scene
    assert scene.camera == camera and (scene.render.resolution_x, scene.render.resolution_y) == (96, 64)
    assert camera.data.show_background_images
    assert camera.data.background_images[0].image.filepath == str(photo_path)
    assert (camera.location - obj.location).length == pytest.approx(2.0 * 1.5, rel=1e-5)

    silhouette = render_silhouette(scene, tmp_path / "render.png")
    iou = (silhouette & mask).sum() / (silhouette | mask).sum()
    print(f"photo-match silhouette IoU {iou:.3f}")
    assert iou >= 0.8, f"photo-match silhouette IoU {iou:.3f}"
