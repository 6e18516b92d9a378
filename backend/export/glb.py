"""Binary glTF 2.0 (GLB): one mesh, one PBR material whose baseColor is the embedded PNG texture.

glTF is +Y up like our world (docs/design.md §7), so vertices go out as they are; trimesh flips v for glTF's
top-left UV origin. ``metadata`` lands in ``asset.extras`` (e.g. the model mode and a "meaningless" note).
The texture goes in as PNG bytes, the ones a job encodes once for this file and the OBJ's model_texture.png
(given a PIL image, trimesh would encode it again): trimesh's ``buffer_postprocessor`` hook appends them
(tests/test_export.py checks the embedded bytes, trimesh's and Blender's import, and the Khronos validator).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from trimesh.exchange.gltf import export_glb as trimesh_export_glb
from trimesh.visual.material import PBRMaterial
from trimesh.visual.texture import TextureVisuals

from ..mesh.mesh import Mesh
from .texture_image import texture_png as encode_texture_png

GENERATOR = "image_to_3d"
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963  # glTF bufferView.target values


def glb_bytes(mesh: Mesh, metadata: Mapping[str, Any] | None = None, name: str = "model",
              texture_png: bytes | None = None) -> bytes:
    """The GLB file's bytes (see :func:`export_glb`)."""
    extras = {"generator": GENERATOR, **(metadata or {})}
    json.dumps(extras)  # fail here, with the offending value, rather than deep inside the writer
    png = encode_texture_png(mesh) if texture_png is None else texture_png
    material = PBRMaterial(name=f"{name}_material", baseColorFactor=None, metallicFactor=0.0, roughnessFactor=1.0,
                           doubleSided=False)  # its texture: _embed_png below
    visual = TextureVisuals(uv=np.asarray(mesh.uvs, np.float64), material=material)
    geometry = trimesh.Trimesh(vertices=np.asarray(mesh.vertices, np.float64), faces=np.asarray(mesh.faces),
                               visual=visual, process=False)
    scene = trimesh.Scene()
    scene.add_geometry(geometry, node_name=name, geom_name=name)

    def finish_tree(tree: dict) -> None:
        tree.setdefault("asset", {})["extras"] = extras
        tree["asset"]["generator"] = GENERATOR
        _set_buffer_view_targets(tree)

    return trimesh_export_glb(scene, include_normals=True, tree_postprocessor=finish_tree,
                              buffer_postprocessor=lambda buffers, tree: _embed_png(png, buffers, tree))


def _embed_png(png: bytes, buffers, tree: dict) -> None:
    """Add ``png`` as the one material's base colour texture: a buffer view of its own (padded to 4 bytes, as
    glTF wants) in trimesh's ordered buffers, whose position is the view's index."""
    buffers[("image_to_3d", "baseColorTexture")] = png + bytes(-len(png) % 4)
    tree["images"].append({"bufferView": len(buffers) - 1, "mimeType": "image/png"})
    tree["textures"].append({"source": len(tree["images"]) - 1})
    (material,) = tree["materials"]
    material.setdefault("pbrMetallicRoughness", {})["baseColorTexture"] = {"index": len(tree["textures"]) - 1}


def _set_buffer_view_targets(tree: dict) -> None:
    """Mark vertex and index buffer views as such (the validator hints when they are unmarked)."""
    views = tree.get("bufferViews", [])
    accessors = tree.get("accessors", [])
    for mesh in tree.get("meshes", []):
        for primitive in mesh.get("primitives", []):
            for accessor in primitive.get("attributes", {}).values():
                views[accessors[accessor]["bufferView"]]["target"] = ARRAY_BUFFER
            if "indices" in primitive:
                views[accessors[primitive["indices"]]["bufferView"]]["target"] = ELEMENT_ARRAY_BUFFER


def export_glb(mesh: Mesh, path: str | Path, metadata: Mapping[str, Any] | None = None, name: str = "model",
               texture_png: bytes | None = None) -> Path:
    """Write ``mesh`` (with UVs and texture) as a GLB at ``path``; ``metadata`` goes to ``asset.extras``.
    ``texture_png``: texture_image.texture_png(mesh), when the caller encoded it already (for the OBJ too)."""
    path = Path(path)
    path.write_bytes(glb_bytes(mesh, metadata, name, texture_png))
    return path
