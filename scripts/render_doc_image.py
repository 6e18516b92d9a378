"""Render docs/images/imported-result.png: a GLB imported by the add-on's import function, Cycles CPU.

    python scripts/render_doc_image.py [model.glb]   # default: a stand-in textured box made with trimesh

Low samples on purpose: the picture shows what an import looks like, not the quality of a model.
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checkout_addon import REPO_ROOT, import_addon  # noqa: E402

OUT = REPO_ROOT / "docs" / "images" / "imported-result.png"


def stand_in_glb() -> Path:
    sys.path.insert(0, str(REPO_ROOT))
    from tests.blender_fakes import write_textured_box_glb

    return write_textured_box_glb(Path(tempfile.mkdtemp()) / "model.glb", size=64)


def add_studio(scene, camera_location: tuple[float, float, float], camera_rotation_deg: tuple[float, float, float],
               world_strength: float = 1.0) -> None:
    """The set every doc picture shares: a camera where asked, one sun, a grey-blue world."""
    import bpy

    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    camera.location = camera_location
    camera.rotation_euler = tuple(math.radians(a) for a in camera_rotation_deg)
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", type="SUN"))
    sun.rotation_euler = (math.radians(40), math.radians(10), math.radians(30))
    sun.data.energy = 4.0
    for extra in (camera, sun):
        scene.collection.objects.link(extra)
    scene.camera = camera
    scene.world = bpy.data.worlds.new("World")
    scene.world.use_nodes = True
    background = scene.world.node_tree.nodes["Background"]
    background.inputs["Color"].default_value = (0.55, 0.58, 0.65, 1.0)
    background.inputs["Strength"].default_value = world_strength


def render(glb: Path, out: Path = OUT) -> Path:
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    import_addon()
    from image_to_3d.operators.import_result import import_generated_model

    obj = import_generated_model(glb, "a coffee cup")
    obj.rotation_euler = (0.0, 0.0, math.radians(30))
    scene = bpy.context.scene
    add_studio(scene, (3.2, -3.2, 2.4), (63.0, 0.0, 45.0), world_strength=0.8)
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 16
    scene.render.resolution_x, scene.render.resolution_y = 480, 320
    scene.render.filepath = str(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.render.render(write_still=True)
    return out


if __name__ == "__main__":
    print(render(Path(sys.argv[1]) if len(sys.argv) > 1 else stand_in_glb()))
