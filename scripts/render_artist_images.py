"""Render the user guide's artist-workflow pictures with the bpy module (Cycles, CPU, few samples):

    python scripts/render_artist_images.py

- docs/images/photo-match.png: left, the photo (an L-shaped object); right, the object imported like a
  generated model, rendered through its photo-match camera over the photo.
- docs/images/several-objects.png: three imported stand-in models laid out side by side.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checkout_addon import REPO_ROOT, import_addon  # noqa: E402
from render_doc_image import add_studio  # noqa: E402

IMAGES = REPO_ROOT / "docs" / "images"


def _cycles(scene, samples: int, transparent: bool) -> None:
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.render.film_transparent = transparent
    scene.render.image_settings.file_format = "PNG"


def photo_match_picture(work: Path) -> Path:
    import bpy
    from PIL import Image

    sys.path.insert(0, str(REPO_ROOT))
    import_addon()
    from image_to_3d.backend.preprocess import reference_crop
    from image_to_3d.operators.import_result import import_generated_model
    from image_to_3d.operators.photo_match import add_photo_match_camera, photo_datablock

    from tests.test_artist_backend import _l_shape
    from tests.test_artist_photo_match import write_card_glb

    scale = 3  # the test's 96x64 photo, 3x larger
    mask = np.kron(_l_shape(), np.ones((scale, scale), bool))
    photo = np.full((*mask.shape, 3), (96, 140, 100), np.uint8)
    photo[mask] = (205, 70, 45)
    photo_path = work / "photo.png"
    Image.fromarray(photo).save(photo_path)
    crop = reference_crop(mask, 256, 0.2)
    boxes = tuple(tuple(v * scale for v in box) for box in ((14, 20, 50, 32), (38, 20, 50, 56)))
    glb = write_card_glb(work / "card.glb", (crop.x0, crop.y0, crop.side), boxes)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    import_addon()
    obj = import_generated_model(glb, "L")
    add_photo_match_camera(obj, photo_datablock(None, str(photo_path)), (crop.x0, crop.y0, crop.side),
                           (photo.shape[1], photo.shape[0]))
    scene = bpy.context.scene
    _cycles(scene, 4, transparent=True)
    scene.render.filepath = str(work / "render.png")
    bpy.ops.render.render(write_still=True)
    render = np.asarray(Image.open(work / "render.png").convert("RGBA"), np.float32) / 255
    tint = np.array([0.2, 0.5, 1.0], np.float32)  # the render shown as a blue wash over the photo
    over = photo / 255 * (1 - 0.6 * render[..., 3:]) + tint * 0.6 * render[..., 3:]
    sheet = np.concatenate([photo, np.full((photo.shape[0], 8, 3), 255, np.uint8),
                            (over * 255).astype(np.uint8)], axis=1)
    out = IMAGES / "photo-match.png"
    Image.fromarray(sheet).save(out, optimize=True)
    return out


def several_objects_picture(work: Path) -> Path:
    import bpy

    sys.path.insert(0, str(REPO_ROOT))
    import_addon()
    from image_to_3d.operators.generate_job import place_beside
    from image_to_3d.operators.import_result import import_generated_model

    from tests.blender_fakes import write_textured_box_glb

    bpy.ops.wm.read_factory_settings(use_empty=True)
    import_addon()
    placed: list[str] = []
    for index, name in enumerate(("the mug", "the spoon", "the saucer")):
        obj = import_generated_model(write_textured_box_glb(work / f"{index}.glb", size=32), name)
        obj.scale = (1.0, 1.0, 0.6 + 0.3 * index)
        bpy.context.view_layer.update()
        place_beside(obj, placed)
        placed.append(obj.name)
    scene = bpy.context.scene
    add_studio(scene, (2.6, -6.0, 2.8), (68.0, 0.0, 8.0))
    _cycles(scene, 8, transparent=False)
    scene.render.resolution_x, scene.render.resolution_y = 420, 220
    out = IMAGES / "several-objects.png"
    scene.render.filepath = str(out)
    bpy.ops.render.render(write_still=True)
    from PIL import Image

    with Image.open(out) as rendered:  # 128 colours: well under 100 KB
        rendered.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    return out


if __name__ == "__main__":
    folder = Path(tempfile.mkdtemp())
    for path in (photo_match_picture(folder), several_objects_picture(folder)):
        print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
