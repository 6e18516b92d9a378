"""Bring a generated ``model.glb`` into the scene: one textured object at the 3D cursor, selected and active.

Used by the generate operator, ``scripts/batch.py`` and ``scripts/demo.py`` alike.
"""

from __future__ import annotations

import os

import bpy

from .datablock_guard import rolled_back_on_failure
from .placement import place_clear_of_others, select_only

MAX_NAME = 63  # Blender's datablock name limit (bytes; prompts are mostly ASCII)


def object_name_for(prompt: str | None, image_path: str) -> str:
    """The prompt, else the photo's file name, trimmed to what Blender can hold."""
    name = (prompt or os.path.splitext(os.path.basename(image_path))[0] or "Image to 3D").strip()
    return name.encode()[:MAX_NAME].decode(errors="ignore")


def import_generated_model(glb_path: str | os.PathLike, name: str, context=None):
    """Import ``glb_path`` through Blender's glTF importer as one mesh object called ``name``.

    The object (and its mesh) is named ``name``, its material keeps an Image Texture node whose image is
    packed into the .blend, it sits at the 3D cursor, moved beside anything it would be hidden in
    (operators/placement.py), and is the only selected object and the active one.
    On any failure everything the import created is removed again and the error re-raised.
    """
    context = context or bpy.context
    glb_path = os.fspath(glb_path)
    if not os.path.isfile(glb_path):
        from ..backend.errors import BadInputError

        raise BadInputError(f"no model file at {glb_path}")
    scene, view_layer = context.scene, context.view_layer
    with rolled_back_on_failure(view_layer):
        new_objects = _run_gltf_importer(glb_path, context)
        obj = _one_mesh_object(new_objects, context)
        obj.name = name
        obj.data.name = name
        _ensure_packed_texture(obj, name)
        obj.location = scene.cursor.location.copy()
        place_clear_of_others(obj, context)
        select_only(obj, context)
    return obj


def window_override(context) -> dict:
    """Operators called from a timer have no window in their context: lend them the first one."""
    if context.window is not None:
        return {}
    windows = context.window_manager.windows if context.window_manager is not None else ()
    return {"window": windows[0]} if len(windows) else {}


def _run_gltf_importer(glb_path: str, context) -> list:
    if not hasattr(bpy.ops.import_scene, "gltf"):
        import addon_utils

        addon_utils.enable("io_scene_gltf2", default_set=False)
    before = {obj.as_pointer() for obj in bpy.data.objects}
    with context.temp_override(**window_override(context)):
        result = bpy.ops.import_scene.gltf(filepath=glb_path)
    if "FINISHED" not in result:
        raise RuntimeError(f"Blender's glTF importer could not read {glb_path}")
    return [obj for obj in bpy.data.objects if obj.as_pointer() not in before]


def _one_mesh_object(new_objects: list, context):
    """The importer may add parent empties or split a mesh: keep exactly one mesh object, world placement kept."""
    meshes = [obj for obj in new_objects if obj.type == "MESH"]
    if not meshes:
        from ..backend.errors import ImageTo3DError

        raise ImageTo3DError("the generated model holds no mesh")
    for obj in meshes:
        world = obj.matrix_world.copy()
        obj.parent = None
        obj.matrix_world = world
    leftovers = [obj for obj in new_objects if obj.type != "MESH"]
    if leftovers:
        bpy.data.batch_remove(leftovers)
    if len(meshes) > 1:
        with context.temp_override(**window_override(context), active_object=meshes[0],
                                   selected_editable_objects=meshes):
            bpy.ops.object.join()
    return meshes[0]


def _ensure_packed_texture(obj, name: str) -> None:
    """The material must show the texture through an Image Texture node, with the image packed."""
    images = []
    for slot in obj.material_slots:
        material = slot.material
        if material is None or material.node_tree is None:
            continue
        images += [node.image for node in material.node_tree.nodes if node.type == "TEX_IMAGE" and node.image]
    if not images:
        from ..backend.errors import ImageTo3DError

        raise ImageTo3DError(f"the generated model {name!r} has no image texture")
    for image in images:
        if image.packed_file is None:
            image.pack()
    images[0].name = f"{name} texture"
    first = obj.material_slots[0].material
    if first is not None:
        first.name = name
