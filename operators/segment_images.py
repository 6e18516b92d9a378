"""Bring a segment job's PNGs into Blender: packed image datablocks and, if asked, a preview plane."""

from __future__ import annotations

import bpy

from .datablock_guard import rolled_back_on_failure

_KINDS = (("mask", "mask_path", "Non-Color"), ("cut-out", "cutout_path", "sRGB"), ("overlay", "overlay_path", "sRGB"))


MAX_BASE_NAME = 50  # bytes of the prompt kept, leaving room for " cut-out" in Blender's 63-byte names


def image_base_name(prompt: str, slug: str, taken: set[str]) -> str:
    """The prompt as typed ("a coffee cup"), trimmed; the file slug where two prompts of one job read alike."""
    base = " ".join(prompt.split()).encode()[:MAX_BASE_NAME].decode(errors="ignore") or slug
    return slug if base in taken else base


def image_name(base: str, kind: str) -> str:
    return f"{base} {kind}"  # e.g. "a coffee cup mask"


def load_segment_images(preview, make_preview_plane: bool, context=None) -> dict[str, dict[str, object]]:
    """Packed images "<prompt> mask" / "<prompt> cut-out" / "<prompt> overlay" for every prompt (replacing older
    ones of the same name), named after the prompt so the Image Editor's list reads as what was asked.

    Returns ``{slug: {"mask": Image, "cut-out": Image, "overlay": Image, "plane": Object|None}}``.
    """
    context = context or bpy.context
    loaded: dict[str, dict[str, object]] = {}
    taken: set[str] = set()
    with rolled_back_on_failure(context.view_layer):
        for item in preview.prompts:
            base = image_base_name(item.prompt, item.slug, taken)
            taken.add(base)
            images = {kind: _load_packed(getattr(item, attr), image_name(base, kind), colorspace)
                      for kind, attr, colorspace in _KINDS}
            plane = add_preview_plane(images["cut-out"], f"{base} preview", context) if make_preview_plane \
                else None
            loaded[item.slug] = {**images, "plane": plane}
    for images in loaded.values():
        try:
            images["overlay"].preview_ensure()  # the panel shows its icon
        except (RuntimeError, AttributeError):
            pass
    return loaded


def _load_packed(path, name: str, colorspace: str):
    image = bpy.data.images.load(str(path), check_existing=False)
    image.colorspace_settings.name = colorspace
    image.pack()
    old = bpy.data.images.get(name)
    if old is not None and old != image:
        old.user_remap(image)  # materials and the panel now show the new one
        bpy.data.images.remove(old)
    image.name = name
    return image


def add_preview_plane(cutout, name: str, context):
    """A standing plane with the photo's aspect (1 m tall) at the 3D cursor, textured with the cut-out's alpha."""
    width, height = cutout.size
    half_w, half_h = 0.5 * width / max(height, 1), 0.5
    old = bpy.data.objects.get(name)
    if old is not None:
        bpy.data.batch_remove([old])
    mesh = bpy.data.meshes.new(name)
    # In the XZ plane, facing -Y: the front view sees it as the photo.
    mesh.from_pydata([(-half_w, 0, -half_h), (half_w, 0, -half_h), (half_w, 0, half_h), (-half_w, 0, half_h)],
                     [], [(0, 1, 2, 3)])
    uv = mesh.uv_layers.new(name="UVMap")
    for loop, coords in zip(uv.data, ((0, 0), (1, 0), (1, 1), (0, 1)), strict=True):
        loop.uv = coords
    mesh.materials.append(_alpha_material(cutout, name))
    obj = bpy.data.objects.new(name, mesh)
    context.collection.objects.link(obj)
    obj.location = context.scene.cursor.location.copy()
    return obj


def _alpha_material(image, name: str):
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = next(node for node in nodes if node.type == "BSDF_PRINCIPLED")
    texture = nodes.new("ShaderNodeTexImage")
    texture.image = image
    texture.location = (bsdf.location.x - 300, bsdf.location.y)
    links.new(texture.outputs["Color"], bsdf.inputs["Base Color"])
    links.new(texture.outputs["Alpha"], bsdf.inputs["Alpha"])
    if hasattr(material, "surface_render_method"):  # EEVEE Next (4.2+)
        material.surface_render_method = "BLENDED"
    if hasattr(material, "blend_method"):
        material.blend_method = "BLEND"
    return material
