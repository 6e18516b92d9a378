"""Blender half of ``eval-recon``: build or import an object, render it from given cameras.

This script is the only part of the fidelity evaluation that touches ``bpy``; ``backend/eval_recon``
runs it in a subprocess and talks to it through files (docs/design.md §6)::

    python scripts/recon_blender.py --job JOB.json               # the bpy module in this interpreter
    blender -b --factory-startup --python scripts/recon_blender.py -- --job JOB.json

``JOB.json``::

    {"object": {"builtin": "suzanne"} | {"path": "thing.glb", "normalise": true},
     "cameras": [{"name": "train-00", "c2w": [[4 x 4]], "fovy_deg": 49.1, "width": 64, "height": 64}, …],
     "samples": 16, "out_dir": "…", "surface_out": "gt_surface.npz" | null, "target_radius": 0.6,
     "glb_out": "object.glb" | null}

Outputs: ``out_dir/<camera name>.png`` (RGBA, straight alpha, sRGB) and, if asked, the object's
triangulated surface in OUR world coordinates as ``.npz`` (``vertices`` [V, 3] float32, ``faces`` [F, 3] int64),
and the normalised object as a GLB (``glb_out``; for the image-textured built-ins of scripts/recon_objects.py,
whose texture must survive a glTF export).

Conventions:
- Our world is +Y up (OpenGL cameras); Blender's is +Z up. A point is converted exactly as Blender's glTF
  importer converts glTF: ours (x, y, z) = Blender (x, z, -y). Blender cameras also look down their local
  -Z with +Y up, so a camera-to-world matrix converts by the same rotation on the left.
- Appearance is view-independent on purpose: every material becomes an Emission shader of its base colour
  (strength 1, no lights, "Standard" view transform). A rendered pixel is then the surface's base colour,
  which is what our Gaussians (view-independent colour) and our baked texture can represent. The ground
  truth and our re-imported GLB go through the same conversion, so both are lit identically.
- Cycles on the CPU, a 1-pixel box filter (a pixel is the average over its own area), no denoising,
  transparent film.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import bpy
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `blender --python` does not add the script's folder
import recon_objects  # noqa: E402  (needs the path above)

# ours = OURS_FROM_BLENDER @ blender  (glTF importer's axis conversion, inverted)
OURS_FROM_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
BLENDER_FROM_OURS = OURS_FROM_BLENDER.T

BUILTIN_OBJECTS = ("suzanne", "torus", *recon_objects.BUILDERS)  # backend/eval_recon/config.py: the same
EXIT_BAD_JOB = 2  # the caller turns this exit code into a bad-input error with our last stderr line


class BadJobError(Exception):
    """The job asks for something that cannot be done (unknown object, unreadable mesh file)."""


# 1. Scene -------------------------------------------------------------------------------------------

def reset_scene(samples: int) -> bpy.types.Scene:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.use_denoising = False
    scene.cycles.pixel_filter_type = "BOX"
    scene.cycles.filter_width = 1.0
    scene.cycles.max_bounces = 0  # emission only: the camera ray's first hit is the whole answer
    scene.cycles.transparent_max_bounces = 8
    scene.render.film_transparent = True
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.image_settings.color_depth = "8"
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0
    world = bpy.data.worlds.new("black")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.0
    scene.world = world
    return scene


# 2. Materials: everything becomes an emission of its base colour -----------------------------------

def _emission_material(name: str) -> tuple[bpy.types.Material, bpy.types.NodeTree, bpy.types.Node]:
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    tree = mat.node_tree
    tree.nodes.clear()
    out = tree.nodes.new("ShaderNodeOutputMaterial")
    emission = tree.nodes.new("ShaderNodeEmission")
    emission.inputs["Strength"].default_value = 1.0
    tree.links.new(emission.outputs["Emission"], out.inputs["Surface"])
    return mat, tree, emission


def make_unlit(obj: bpy.types.Object) -> None:
    """Replace each material's BSDF by an Emission shader fed by whatever fed its base colour."""
    if obj.type != "MESH":
        return
    if not obj.data.materials:
        mat, tree, emission = _emission_material(f"{obj.name}-unlit")
        if obj.data.color_attributes:  # e.g. a coloured PLY: use its vertex colours
            attr = tree.nodes.new("ShaderNodeVertexColor")
            attr.layer_name = obj.data.color_attributes[0].name
            tree.links.new(attr.outputs["Color"], emission.inputs["Color"])
        else:
            emission.inputs["Color"].default_value = (0.8, 0.8, 0.8, 1.0)
        obj.data.materials.append(mat)
        return
    for mat in obj.data.materials:
        if mat is None or not mat.use_nodes:
            continue
        tree = mat.node_tree
        out = next((n for n in tree.nodes if n.type == "OUTPUT_MATERIAL"), None)
        bsdf = next((n for n in tree.nodes if n.type == "BSDF_PRINCIPLED"), None)
        if out is None or bsdf is None:
            continue
        emission = tree.nodes.new("ShaderNodeEmission")
        emission.inputs["Strength"].default_value = 1.0
        base = bsdf.inputs["Base Color"]
        if base.is_linked:
            tree.links.new(base.links[0].from_socket, emission.inputs["Color"])
        else:
            emission.inputs["Color"].default_value = base.default_value
        tree.links.new(emission.outputs["Emission"], out.inputs["Surface"])
        # glTF alpha (blend/clip) would punch holes our pipeline never makes; keep surfaces opaque
        if hasattr(mat, "surface_render_method"):
            mat.surface_render_method = "DITHERED"


# 3. Objects -----------------------------------------------------------------------------------------

def _checker_suzanne() -> bpy.types.Object:
    """Suzanne, smoothed, with a coarse orange/teal 3-D checker in object space (cells of 1 unit before scaling)."""
    bpy.ops.mesh.primitive_monkey_add(size=2.0)
    obj = bpy.context.active_object
    mod = obj.modifiers.new("smooth", "SUBSURF")
    mod.levels = mod.render_levels = 1
    bpy.ops.object.shade_smooth()
    mat, tree, emission = _emission_material("suzanne-checker")
    coords = tree.nodes.new("ShaderNodeTexCoord")
    checker = tree.nodes.new("ShaderNodeTexChecker")
    checker.inputs["Scale"].default_value = 1.0
    checker.inputs["Color1"].default_value = (0.85, 0.35, 0.05, 1.0)
    checker.inputs["Color2"].default_value = (0.05, 0.45, 0.5, 1.0)
    tree.links.new(coords.outputs["Object"], checker.inputs["Vector"])
    tree.links.new(checker.outputs["Color"], emission.inputs["Color"])
    obj.data.materials.append(mat)
    return obj


def _striped_torus() -> bpy.types.Object:
    """A torus tilted towards the cameras, with smooth colour bands around its ring."""
    bpy.ops.mesh.primitive_torus_add(major_radius=1.0, minor_radius=0.4, major_segments=64, minor_segments=24,
                                     rotation=(math.radians(60), 0.0, math.radians(20)))
    obj = bpy.context.active_object
    bpy.ops.object.shade_smooth()
    mat, tree, emission = _emission_material("torus-bands")
    coords = tree.nodes.new("ShaderNodeTexCoord")
    gradient = tree.nodes.new("ShaderNodeTexGradient")
    gradient.gradient_type = "RADIAL"
    ramp = tree.nodes.new("ShaderNodeValToRGB")
    elements = ramp.color_ramp.elements
    elements[0].position, elements[0].color = 0.0, (0.9, 0.85, 0.2, 1.0)
    elements[1].position, elements[1].color = 0.33, (0.75, 0.1, 0.25, 1.0)
    third = elements.new(0.66)
    third.color = (0.1, 0.25, 0.8, 1.0)
    fourth = elements.new(1.0)
    fourth.color = (0.9, 0.85, 0.2, 1.0)
    tree.links.new(coords.outputs["Object"], gradient.inputs["Vector"])
    tree.links.new(gradient.outputs["Fac"], ramp.inputs["Fac"])
    tree.links.new(ramp.outputs["Color"], emission.inputs["Color"])
    obj.data.materials.append(mat)
    return obj


def build_builtin(name: str) -> list[bpy.types.Object]:
    builders = {"suzanne": _checker_suzanne, "torus": _striped_torus, **recon_objects.BUILDERS}
    if name not in builders:
        raise BadJobError(f"unknown built-in object {name!r} (choose from {', '.join(BUILTIN_OBJECTS)})")
    return [builders[name]()]


def import_mesh_file(path: Path) -> list[bpy.types.Object]:
    """Import anything Blender reads by extension; return the mesh objects it made."""
    if not path.is_file():
        raise BadJobError(f"mesh file not found: {path}")
    before = set(bpy.data.objects)
    suffix = path.suffix.lower()
    if suffix in (".glb", ".gltf"):
        bpy.ops.import_scene.gltf(filepath=str(path))
    elif suffix == ".obj":
        bpy.ops.wm.obj_import(filepath=str(path))
    elif suffix == ".ply":
        bpy.ops.wm.ply_import(filepath=str(path))
    elif suffix == ".stl":
        bpy.ops.wm.stl_import(filepath=str(path))
    elif suffix == ".fbx":
        bpy.ops.import_scene.fbx(filepath=str(path))
    elif suffix in (".usd", ".usda", ".usdc", ".usdz"):
        bpy.ops.wm.usd_import(filepath=str(path))
    elif suffix == ".abc":
        bpy.ops.wm.alembic_import(filepath=str(path))
    else:
        raise BadJobError(f"cannot import {path}: unknown mesh file type {suffix!r}")
    objects = [o for o in bpy.data.objects if o not in before and o.type == "MESH"]
    if not objects:
        raise BadJobError(f"{path} holds no mesh")
    return objects


def _world_vertices(objects: list[bpy.types.Object]) -> np.ndarray:
    """Evaluated (modifiers applied) vertices of all objects, Blender world space, [V, 3]."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    chunks = []
    for obj in objects:
        evaluated = obj.evaluated_get(depsgraph)
        mesh = evaluated.to_mesh()
        co = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
        mesh.vertices.foreach_get("co", co)
        matrix = np.array(evaluated.matrix_world)
        chunks.append(co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3])
        evaluated.to_mesh_clear()
    return np.concatenate(chunks)


def normalise(objects: list[bpy.types.Object], target_radius: float) -> None:
    """Centre the bounding box on the origin and scale so every vertex lies within ``target_radius``."""
    vertices = _world_vertices(objects)
    centre = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
    radius = float(np.linalg.norm(vertices - centre, axis=1).max())
    if radius <= 0:
        raise BadJobError("the object has no extent")
    scale = target_radius / radius
    fix = np.eye(4)
    fix[:3, :3] *= scale
    fix[:3, 3] = -scale * centre
    roots = [o for o in objects if o.parent is None or o.parent not in objects]
    for obj in roots:
        obj.matrix_world = _to_blender_matrix(fix @ np.array(obj.matrix_world))
    bpy.context.view_layer.update()


def write_surface(objects: list[bpy.types.Object], path: Path) -> None:
    """Triangulated evaluated surface in OUR world coordinates → ``.npz``."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    all_vertices, all_faces, offset = [], [], 0
    for obj in objects:
        evaluated = obj.evaluated_get(depsgraph)
        mesh = evaluated.to_mesh()
        mesh.calc_loop_triangles()
        co = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
        mesh.vertices.foreach_get("co", co)
        tris = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int64)
        mesh.loop_triangles.foreach_get("vertices", tris)
        matrix = np.array(evaluated.matrix_world)
        world = co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]
        all_vertices.append(world @ OURS_FROM_BLENDER.T)
        all_faces.append(tris.reshape(-1, 3) + offset)
        offset += len(world)
        evaluated.to_mesh_clear()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, vertices=np.concatenate(all_vertices).astype(np.float32), faces=np.concatenate(all_faces))


def export_glb(objects: list[bpy.types.Object], path: Path) -> None:
    """The objects as one GLB (images embedded, +Y up as glTF wants; modifiers applied)."""
    bpy.ops.object.select_all(action="DESELECT")
    for obj in objects:
        obj.select_set(True)
    path.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLB", use_selection=True, export_apply=True,
                              export_yup=True, export_image_format="AUTO")


# 4. Cameras and rendering ---------------------------------------------------------------------------

def _to_blender_matrix(matrix: np.ndarray):
    import mathutils

    return mathutils.Matrix([list(map(float, row)) for row in matrix])


def blender_c2w(c2w_ours: np.ndarray) -> np.ndarray:
    """Our OpenGL camera-to-world (+Y up world) → Blender camera matrix_world (+Z up world)."""
    convert = np.eye(4)
    convert[:3, :3] = BLENDER_FROM_OURS
    return convert @ np.asarray(c2w_ours, dtype=np.float64)


def render_views(scene: bpy.types.Scene, cameras: list[dict], out_dir: Path) -> None:
    cam_data = bpy.data.cameras.new("eval-camera")
    cam_data.sensor_fit = "VERTICAL"
    cam_data.sensor_height = 24.0
    cam_data.clip_start, cam_data.clip_end = 0.01, 100.0
    cam = bpy.data.objects.new("eval-camera", cam_data)
    scene.collection.objects.link(cam)
    scene.camera = cam
    out_dir.mkdir(parents=True, exist_ok=True)
    for view in cameras:
        fovy = math.radians(float(view["fovy_deg"]))
        cam_data.lens = cam_data.sensor_height / (2.0 * math.tan(fovy / 2.0))
        cam.matrix_world = _to_blender_matrix(blender_c2w(np.array(view["c2w"], dtype=np.float64)))
        scene.render.resolution_x = int(view["width"])
        scene.render.resolution_y = int(view["height"])
        scene.render.filepath = str(out_dir / f"{view['name']}.png")
        bpy.ops.render.render(write_still=True)


# 5. Entry point -------------------------------------------------------------------------------------

def run_job(job: dict) -> None:
    scene = reset_scene(int(job.get("samples", 16)))
    spec = job["object"]
    if "builtin" in spec:
        objects = build_builtin(spec["builtin"])
        normalise(objects, float(job.get("target_radius", 0.6)))
    else:
        objects = import_mesh_file(Path(spec["path"]))
        if spec.get("normalise", True):
            normalise(objects, float(job.get("target_radius", 0.6)))
    if job.get("glb_out"):  # before make_unlit: the export carries the Principled BSDF's base-colour texture
        export_glb(objects, Path(job["glb_out"]))
    for obj in objects:
        make_unlit(obj)
    if job.get("surface_out"):
        write_surface(objects, Path(job["surface_out"]))
    render_views(scene, job["cameras"], Path(job["out_dir"]))


def main(argv: list[str]) -> int:
    if "--" in argv:  # blender -b --python this.py -- --job JOB.json
        argv = argv[argv.index("--") + 1:]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", required=True, help="JSON job file (see the module docstring)")
    args = parser.parse_args(argv)
    try:
        run_job(json.loads(Path(args.job).read_text()))
    except BadJobError as exc:
        print(f"recon_blender: error: {exc}", file=sys.stderr)
        return EXIT_BAD_JOB
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
