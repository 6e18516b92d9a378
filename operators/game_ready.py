"""Game-ready finishing of an imported object, all with Blender's own tools (no new dependency).

Applied in this order, because each step needs the previous one's result:
1. up axis: which of the object's *local* axes is up. "Y" rotates the mesh data -90° about X (local +Z becomes
   +Y, what Unity's and Godot's importers expect) and gives the object +90° about X, so it still stands the
   same way in Blender; nothing moves in the world;
2. real-world size: uniform scale of the mesh data about its origin so the bounding box's height (along the
   up axis) is ``height_m``; a photo-match camera is moved by the same change (``geometry_change``);
3. origin at the base centre: the mesh moves so the origin is the centre of the bounding box's bottom face,
   and the object keeps its place in the world (an asset then stands on the floor where it is dropped);
4. face budget: a Decimate (collapse) modifier with ratio budget / faces, applied;
5. optional quad remesh: Blender's QuadriFlow remesher (needs a manifold mesh; the texture's UVs are lost,
   so the material falls back to the object's colour; the panel says so);
6. material: one Principled BSDF whose Base Color is the baked texture (what every engine's glTF / FBX import
   reads as the albedo).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import bpy
from mathutils import Matrix, Vector

UP_AXES = (("Z", "Z up (Blender)", "Blender's own convention: +Z is up"),
           ("Y", "Y up (Unity, glTF)", "+Y is up, as Unity, Godot and glTF expect"))


@dataclass(frozen=True)
class GameReadyConfig:
    """What the user asked for; 0 / False / "Z" leaves that part of the object as imported."""

    face_budget: int = 0  # the most faces the object may keep; 0: no limit
    quad_remesh: bool = False
    height_m: float = 0.0  # the object's height in metres; 0: keep the generated size
    origin_at_base: bool = True
    up_axis: str = "Z"


@dataclass(frozen=True)
class GameReadyResult:
    faces_before: int
    faces_after: int
    height_m: float
    notes: tuple[str, ...]  # what was done, in the panel's words
    # world-space map from where the surface was to where it is now (only the size step moves it)
    geometry_change: Matrix


def make_game_ready(obj, config: GameReadyConfig, context=None) -> GameReadyResult:
    """Apply ``config`` to the mesh object ``obj`` (see the module docstring for the order and why)."""
    context = context or bpy.context
    context.view_layer.update()  # matrix_world must reflect a location set just before (it is read below)
    notes: list[str] = []
    faces_before = len(obj.data.polygons)
    geometry_change = Matrix.Identity(4)
    if config.up_axis == "Y":
        obj.data.transform(Matrix.Rotation(math.radians(-90.0), 4, "X"))
        obj.matrix_world = obj.matrix_world @ Matrix.Rotation(math.radians(90.0), 4, "X")
        notes.append("Y up")
    if config.height_m > 0:
        height = _height(obj, config.up_axis)
        if height > 0:
            scale = Matrix.Scale(config.height_m / height, 4)
            obj.data.transform(scale)
            geometry_change = obj.matrix_world @ scale @ obj.matrix_world.inverted()
            notes.append(f"{config.height_m:g} m tall")
    if config.origin_at_base:
        _move_origin_to_base(obj, config.up_axis)
        notes.append("origin at base")
    if config.face_budget > 0 and faces_before > config.face_budget:
        decimate_to_budget(obj, config.face_budget)
        notes.append(f"{len(obj.data.polygons)} faces")
    if config.quad_remesh:
        notes.append(quad_remesh(obj, config.face_budget or faces_before, context))
    ensure_principled_material(obj)
    obj.data.update()
    context.view_layer.update()  # dimensions and bounding box of the finished object, for whoever reads them next
    return GameReadyResult(faces_before, len(obj.data.polygons), _height(obj, config.up_axis), tuple(notes),
                           geometry_change)


def follow_geometry(camera, geometry_change: Matrix) -> None:
    """Move ``camera`` as the surface moved (location and rotation; a camera's scale is left at one)."""
    location, rotation, _ = (geometry_change @ camera.matrix_world).decompose()
    camera.matrix_world = Matrix.LocRotScale(location, rotation, None)


def _height(obj, up_axis: str) -> float:
    """Height of the mesh's bounding box along the up axis, in the object's local units."""
    axis = 2 if up_axis == "Z" else 1
    values = [vertex.co[axis] for vertex in obj.data.vertices]
    return (max(values) - min(values)) * abs(obj.scale[axis]) if values else 0.0


def _move_origin_to_base(obj, up_axis: str) -> None:
    """Shift the mesh so the local origin is the bottom face's centre; shift the object back by as much."""
    coords = [vertex.co for vertex in obj.data.vertices]
    if not coords:
        return
    lows = Vector(min(c[i] for c in coords) for i in range(3))
    highs = Vector(max(c[i] for c in coords) for i in range(3))
    base = (lows + highs) / 2
    up = 2 if up_axis == "Z" else 1
    base[up] = lows[up]
    obj.data.transform(Matrix.Translation(-base))
    obj.matrix_world = obj.matrix_world @ Matrix.Translation(base)


def decimate_to_budget(obj, face_budget: int) -> None:
    """A Decimate (collapse) modifier with ratio budget / faces, applied to the mesh.

    Collapse works on triangles, so the ratio is taken against the triangle count and nudged down until the
    result is within the budget (at most a few passes; each is one modifier evaluation)."""
    triangles = sum(len(polygon.vertices) - 2 for polygon in obj.data.polygons)
    ratio = min(1.0, face_budget / max(triangles, 1))
    for _ in range(4):
        modifier = obj.modifiers.new("Face budget", "DECIMATE")
        modifier.decimate_type = "COLLAPSE"
        modifier.ratio = ratio
        depsgraph = bpy.context.evaluated_depsgraph_get()
        evaluated = obj.evaluated_get(depsgraph)
        faces = len(evaluated.data.polygons)
        if faces <= face_budget:
            mesh = bpy.data.meshes.new_from_object(evaluated)
            obj.modifiers.remove(modifier)
            old = obj.data
            mesh.name = old.name
            obj.data = mesh
            bpy.data.meshes.remove(old)
            return
        obj.modifiers.remove(modifier)
        ratio *= 0.9 * face_budget / faces
    raise RuntimeError(f"Decimate could not bring {obj.name!r} under {face_budget} faces")


def quad_remesh(obj, target_faces: int, context) -> str:
    """QuadriFlow quad remesh towards ``target_faces``; returns the note for the panel (never raises)."""
    from .import_result import window_override

    try:
        with context.temp_override(**window_override(context), object=obj, active_object=obj,
                                   selected_objects=[obj], selected_editable_objects=[obj]):
            result = bpy.ops.object.quadriflow_remesh(target_faces=max(target_faces, 100), use_mesh_symmetry=False)
    except RuntimeError as exc:
        return f"quad remesh failed: {str(exc).splitlines()[0][:60]}"
    return "quads (texture UVs lost)" if "FINISHED" in result else "quad remesh skipped (mesh not manifold)"


def ensure_principled_material(obj) -> None:
    """The first material is one Principled BSDF with the baked texture in Base Color, into the output."""
    material = obj.material_slots[0].material if obj.material_slots else None
    if material is None:
        return
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    texture = next((node for node in nodes if node.type == "TEX_IMAGE" and node.image is not None), None)
    bsdf = next((node for node in nodes if node.type == "BSDF_PRINCIPLED"), None)
    if bsdf is None:
        bsdf = nodes.new("ShaderNodeBsdfPrincipled")
    output = next((node for node in nodes if node.type == "OUTPUT_MATERIAL"), None) or nodes.new(
        "ShaderNodeOutputMaterial")
    links.new(bsdf.outputs["BSDF"], output.inputs["Surface"])
    if texture is not None and not any(link.from_node == texture for link in bsdf.inputs["Base Color"].links):
        links.new(texture.outputs["Color"], bsdf.inputs["Base Color"])
