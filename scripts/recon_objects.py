"""Built-in objects of eval-recon that carry an image texture (bpy; imported by scripts/recon_blender.py).

Each stresses something Suzanne and the torus lack, and each is textured the way a downloaded model is: UVs
plus an image (``scripts/recon_textures.py``, procedural and deterministic) behind a Principled BSDF's base
colour, so it survives a glTF export unchanged (tests/test_eval_recon_objects.py exports, re-imports and
re-renders each one).

- ``box``: flat faces and sharp 90° edges; a checker and a printed digit on every face.
- ``mug``: a thin handle (a hole through the object: genus 1) on an open, hollow body with a thin wall.
- ``can``: a cylinder with flat caps: sharp circular rims, each also a colour edge.
- ``bowl``: a concave shell, tilted so the inside faces the cameras.

Geometry is built in Blender units before normalisation (recon_blender.py scales everything into the
evaluation's sphere); UVs are assigned per face from its vertices' positions, by the layouts the texture
module declares.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import bmesh
import bpy
import numpy as np
import recon_textures as textures

# face vertices [n, 3] (object space), face normal [3] -> UVs [n, 2]
UvRule = Callable[[np.ndarray, np.ndarray], np.ndarray]


# 1. Shared steps ---------------------------------------------------------------------------------------

def _apply_modifiers(obj: bpy.types.Object) -> None:
    bpy.context.view_layer.objects.active = obj
    for modifier in list(obj.modifiers):
        bpy.ops.object.modifier_apply(modifier=modifier.name)


def _boolean(target: bpy.types.Object, tool: bpy.types.Object, operation: str) -> None:
    """``target`` ∘= ``tool`` (exact solver, applied); the tool object is deleted."""
    modifier = target.modifiers.new(f"{operation.lower()}-{tool.name}", "BOOLEAN")
    modifier.operation, modifier.object, modifier.solver = operation, tool, "EXACT"
    _apply_modifiers(target)
    bpy.data.objects.remove(tool, do_unlink=True)


def _assign_uvs(obj: bpy.types.Object, rule: UvRule) -> None:
    """UVs of every face from ``rule`` (a fresh single UV map: glTF exports the active one as TEXCOORD_0)."""
    mesh = obj.data
    while mesh.uv_layers:
        mesh.uv_layers.remove(mesh.uv_layers[0])
    mesh.uv_layers.new(name="UVMap")
    bm = bmesh.new()
    bm.from_mesh(mesh)
    layer = bm.loops.layers.uv.active
    for face in bm.faces:
        corners = np.array([loop.vert.co[:] for loop in face.loops])
        uvs = rule(corners, np.array(face.normal[:]))
        for loop, uv in zip(face.loops, uvs, strict=True):
            loop[layer].uv = (float(uv[0]), float(uv[1]))
    bm.to_mesh(mesh)
    bm.free()


def _image_material(name: str, pixels: np.ndarray) -> bpy.types.Material:
    """A Principled BSDF whose base colour is an image texture holding ``pixels`` ([H, W, 3], row 0 at the top),
    packed into the .blend data so the glTF exporter embeds it."""
    height, width = pixels.shape[:2]
    image = bpy.data.images.new(f"{name}-texture", width, height, alpha=False)
    rgba = np.concatenate([pixels[::-1], np.ones((height, width, 1), np.float32)], axis=2)  # Blender: bottom row first
    image.pixels.foreach_set(rgba.astype(np.float32).ravel())
    image.pack()
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    tree = material.node_tree
    bsdf = next(n for n in tree.nodes if n.type == "BSDF_PRINCIPLED")
    texture = tree.nodes.new("ShaderNodeTexImage")
    texture.image = image
    texture.interpolation = "Linear"
    texture.extension = "REPEAT"  # UVs of faces across a seam run past 1 (glTF's default sampler repeats too)
    tree.links.new(texture.outputs["Color"], bsdf.inputs["Base Color"])
    return material


def _finish(obj: bpy.types.Object, name: str, rule: UvRule, rotation_deg: tuple[float, float, float]) -> bpy.types.Object:
    _assign_uvs(obj, rule)
    obj.data.materials.clear()
    obj.data.materials.append(_image_material(name, textures.TEXTURES[name]()))
    obj.name = obj.data.name = name
    obj.rotation_euler = tuple(math.radians(a) for a in rotation_deg)
    bpy.context.view_layer.update()
    return obj


def _azimuth_uvs(corners: np.ndarray) -> np.ndarray:
    """u = azimuth / 2π around the z axis, continuous across the face: a face on the seam runs past 0 or 1
    rather than across the whole texture (the sampler repeats). A corner on the axis takes the face's azimuth."""
    middle = math.atan2(corners[:, 1].mean(), corners[:, 0].mean())
    on_axis = np.hypot(corners[:, 0], corners[:, 1]) < 1e-6
    angles = np.where(on_axis, middle, np.arctan2(corners[:, 1], corners[:, 0]))
    offset = (angles - middle + math.pi) % (2 * math.pi) - math.pi
    return (middle / (2 * math.pi)) % 1.0 + offset / (2 * math.pi)


BAND_INSET = 2.0 / 512  # keep a band's texels off its neighbour's under linear filtering


def _band(t: np.ndarray, span: tuple[float, float]) -> np.ndarray:
    """t in [0, 1] → v inside the atlas band ``span`` (inset by BAND_INSET at both ends)."""
    return span[0] + BAND_INSET + np.clip(t, 0.0, 1.0) * (span[1] - span[0] - 2 * BAND_INSET)


# 2. The objects ------------------------------------------------------------------------------------------

BOX_SIZE = (1.0, 0.7, 0.5)


def build_box() -> bpy.types.Object:
    """A 1.0 × 0.7 × 0.5 box, turned so no face is square to the orbit's reference camera."""
    bpy.ops.mesh.primitive_cube_add(size=1.0, scale=BOX_SIZE)
    obj = bpy.context.active_object
    bpy.ops.object.transform_apply(location=False, rotation=False, scale=True)
    half = np.array(BOX_SIZE) / 2
    cols, rows = textures.BOX_ATLAS
    margin = textures.BOX_CELL_MARGIN

    def rule(corners: np.ndarray, normal: np.ndarray) -> np.ndarray:
        axis = int(np.argmax(np.abs(normal)))
        face = axis + (3 if normal[axis] < 0 else 0)
        s_axis, t_axis = (axis + 1) % 3, (axis + 2) % 3
        s = (corners[:, s_axis] + half[s_axis]) / (2 * half[s_axis])
        t = (corners[:, t_axis] + half[t_axis]) / (2 * half[t_axis])
        if normal[axis] < 0:
            s = 1.0 - s  # seen from outside, not mirrored
        s, t = margin + (1 - 2 * margin) * s, margin + (1 - 2 * margin) * t
        return np.stack([(face % cols + s) / cols, (face // cols + t) / rows], axis=1)

    return _finish(obj, "box", rule, (0.0, 0.0, 25.0))


CAN_RADIUS, CAN_HEIGHT = 0.5, 1.1


def build_can() -> bpy.types.Object:
    """A closed cylinder (64 sides, flat caps), tilted 20° towards the reference camera so both the top cap and
    its rim show in most views."""
    bpy.ops.mesh.primitive_cylinder_add(vertices=64, radius=CAN_RADIUS, depth=CAN_HEIGHT, end_fill_type="NGON")
    obj = bpy.context.active_object

    def rule(corners: np.ndarray, normal: np.ndarray) -> np.ndarray:
        if abs(normal[2]) > 0.5:  # a cap: a disc in UV space
            centre = textures.CAN_TOP_CENTRE if normal[2] > 0 else textures.CAN_BOTTOM_CENTRE
            x = corners[:, 0] if normal[2] > 0 else -corners[:, 0]
            scale = textures.CAN_CAP_RADIUS / CAN_RADIUS
            return np.stack([centre[0] + scale * x, centre[1] + scale * corners[:, 1]], axis=1)
        t = corners[:, 2] / CAN_HEIGHT + 0.5
        return np.stack([_azimuth_uvs(corners), _band(t, textures.CAN_SIDE_V)], axis=1)

    return _finish(obj, "can", rule, (-20.0, 0.0, 0.0))


BOWL_RADIUS, BOWL_WALL = 1.0, 0.08


def build_bowl() -> bpy.types.Object:
    """The lower half of a sphere of radius 1 with a 0.08 wall, open at the top, tilted 25° towards the reference
    camera: its inside is a concave surface the cameras see."""
    bpy.ops.mesh.primitive_uv_sphere_add(segments=64, ring_count=32, radius=BOWL_RADIUS)
    obj = bpy.context.active_object
    bm = bmesh.new()
    bm.from_mesh(obj.data)
    bmesh.ops.delete(bm, geom=[v for v in bm.verts if v.co.z > 1e-4], context="VERTS")
    bm.to_mesh(obj.data)
    bm.free()
    wall = obj.modifiers.new("wall", "SOLIDIFY")
    wall.thickness, wall.offset, wall.use_even_offset = BOWL_WALL, -1.0, True
    _apply_modifiers(obj)

    def rule(corners: np.ndarray, normal: np.ndarray) -> np.ndarray:
        centre = corners.mean(axis=0)
        radial = centre / max(np.linalg.norm(centre), 1e-9)
        polar = np.arccos(np.clip(-corners[:, 2] / np.maximum(np.linalg.norm(corners, axis=1), 1e-9), -1, 1))
        t = polar / (math.pi / 2)  # 0 at the bottom, 1 at the rim
        if normal[2] > 0.9 and centre[2] > -1e-3:  # the rim's flat top: the outer surface's colour at the rim
            return np.stack([_azimuth_uvs(corners), _band(np.ones_like(t), textures.BOWL_OUTER_V)], axis=1)
        span = textures.BOWL_OUTER_V if float(normal @ radial) > 0 else textures.BOWL_INNER_V
        return np.stack([_azimuth_uvs(corners), _band(t, span)], axis=1)

    return _finish(obj, "bowl", rule, (25.0, 0.0, 0.0))


MUG_RADIUS, MUG_HEIGHT, MUG_WALL = 0.5, 1.0, 0.06
MUG_HANDLE_CENTRE_X, MUG_HANDLE_RING, MUG_HANDLE_TUBE = 0.72, 0.26, 0.045


def build_mug() -> bpy.types.Object:
    """A mug: a solid cylinder united with a thin ring (the handle) in the xz plane, then hollowed out from the
    top, leaving a 0.06 wall and floor. The gap between handle and body is a hole through the object."""
    bpy.ops.mesh.primitive_cylinder_add(vertices=64, radius=MUG_RADIUS, depth=MUG_HEIGHT)
    body = bpy.context.active_object
    bpy.ops.mesh.primitive_torus_add(major_radius=MUG_HANDLE_RING, minor_radius=MUG_HANDLE_TUBE, major_segments=48,
                                     minor_segments=12, location=(MUG_HANDLE_CENTRE_X, 0.0, 0.0),
                                     rotation=(math.pi / 2, 0.0, 0.0))
    _boolean(body, bpy.context.active_object, "UNION")
    cavity_depth = MUG_HEIGHT  # from the floor (MUG_WALL above the base) to well past the top
    bpy.ops.mesh.primitive_cylinder_add(vertices=64, radius=MUG_RADIUS - MUG_WALL, depth=cavity_depth,
                                        location=(0.0, 0.0, -MUG_HEIGHT / 2 + MUG_WALL + cavity_depth / 2))
    _boolean(body, bpy.context.active_object, "DIFFERENCE")
    inner_radius = MUG_RADIUS - MUG_WALL

    def rule(corners: np.ndarray, normal: np.ndarray) -> np.ndarray:
        centre = corners.mean(axis=0)
        ring = corners - np.array([MUG_HANDLE_CENTRE_X, 0.0, 0.0])
        if centre[0] > MUG_RADIUS - 1e-3 and np.hypot(centre[0], centre[1]) > MUG_RADIUS + 1e-3:
            # the handle: u along its ring (angle in xz), v around its tube
            along = _azimuth_uvs(np.stack([ring[:, 0], ring[:, 2], ring[:, 1]], axis=1))
            radial = np.hypot(ring[:, 0], ring[:, 2]) - MUG_HANDLE_RING
            around = _azimuth_uvs(np.stack([radial, ring[:, 1], ring[:, 2]], axis=1))
            return np.stack([along, _band(around % 1.0, textures.MUG_HANDLE_V)], axis=1)
        if abs(normal[2]) > 0.7:  # rim top and floor (up), base (down): the body's footprint in a square
            u0, v0, side = textures.MUG_UP_SQUARE if normal[2] > 0 else textures.MUG_DOWN_SQUARE
            scale = side / (2 * MUG_RADIUS)
            return np.stack([u0 + side / 2 + scale * corners[:, 0], v0 + side / 2 + scale * corners[:, 1]], axis=1)
        t = corners[:, 2] / MUG_HEIGHT + 0.5
        outward = float(normal[:2] @ centre[:2]) > 0 and np.hypot(*centre[:2]) > inner_radius + 1e-3
        span = textures.MUG_OUTER_V if outward else textures.MUG_INNER_V
        return np.stack([_azimuth_uvs(corners), _band(t, span)], axis=1)

    return _finish(body, "mug", rule, (0.0, 0.0, -60.0))


BUILDERS = {"box": build_box, "mug": build_mug, "can": build_can, "bowl": build_bowl}
