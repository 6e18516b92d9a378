"""GLB, OBJ and 3DGS PLY writers (backend/export/)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from backend.atomic_output import AtomicOutputDir
from backend.export import export_gaussians_ply, export_glb, export_obj
from backend.export.gaussians_ply import PLY_PROPERTIES, SH_C0
from backend.mesh.mesh import Mesh
from tests.mesh_fixtures import one_torch_thread, random_gaussians, smooth_texture, uv_sphere_mesh

METADATA = {"generator": "image_to_3d", "models": "tiny", "note": "random weights: output is meaningless"}
NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def textured_mesh() -> Mesh:
    return uv_sphere_mesh(subdivisions=1, radius=0.5, texture_resolution=64).with_texture(smooth_texture(32))


@pytest.fixture(scope="module")
def glb_path(textured_mesh, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("glb")
    with AtomicOutputDir(out) as staging:
        export_glb(textured_mesh, staging / "model.glb", METADATA)
    return out / "model.glb"


def _glb_json(path: Path) -> dict:
    data = path.read_bytes()
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert magic == b"glTF" and version == 2 and length == len(data)
    chunk_length, chunk_type = struct.unpack_from("<I4s", data, 12)
    assert chunk_type == b"JSON"
    return json.loads(data[20:20 + chunk_length])


def test_glb_loads_in_trimesh_with_texture_uvs_and_metadata(glb_path, textured_mesh):
    scene = trimesh.load(glb_path)
    geometries = list(scene.geometry.values())
    assert len(geometries) == 1
    loaded = geometries[0]
    assert len(loaded.faces) == textured_mesh.face_count
    image = loaded.visual.material.baseColorTexture
    assert image.size == (32, 32)
    expected = np.clip(np.rint(textured_mesh.texture * 255), 0, 255).astype(np.uint8)
    assert np.array_equal(np.asarray(image.convert("RGB")), expected)
    # trimesh undoes glTF's v flip on load, so positions and UVs come back as we wrote them.
    assert np.allclose(loaded.vertices, textured_mesh.vertices, atol=1e-6)
    assert np.allclose(loaded.visual.uv, textured_mesh.uvs, atol=1e-6)
    tree = _glb_json(glb_path)
    assert tree["asset"]["extras"] == METADATA
    material = tree["materials"][0]["pbrMetallicRoughness"]
    assert material["baseColorTexture"]["index"] == 0 and material["metallicFactor"] == 0.0


def test_glb_passes_the_khronos_validator(glb_path):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the glTF validator runs on Node.js")
    if not (NODE_DIR / "node_modules" / "gltf-validator").is_dir():
        pytest.fail("gltf-validator is not installed: run `npm install --prefix tests/node`")
    completed = subprocess.run([node, str(NODE_DIR / "validate_gltf.mjs"), str(glb_path)], capture_output=True,
                               text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["issues"]["numErrors"] == 0, report["issues"]["messages"]
    assert report["issues"]["numWarnings"] == 0, report["issues"]["messages"]
    assert report["info"]["resources"][-1]["image"]["width"] == 32


def test_glb_imports_into_blender_with_an_image_texture(glb_path, textured_mesh):
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=str(glb_path))
    meshes = [o for o in bpy.data.objects if o.type == "MESH"]
    assert len(meshes) == 1
    obj = meshes[0]
    images = [node.image for slot in obj.material_slots for node in slot.material.node_tree.nodes
              if node.type == "TEX_IMAGE"]
    assert len(images) == 1 and tuple(images[0].size) == (32, 32)
    # Blender turns glTF's +Y up into +Z up and flips v back: each loop's (position, uv) is one of ours.
    ours = np.concatenate([textured_mesh.vertices, textured_mesh.uvs], axis=1)
    data = obj.data
    for loop, uv in zip(data.loops, data.uv_layers.active.data, strict=True):
        bx, by, bz = data.vertices[loop.vertex_index].co
        theirs = np.array([bx, bz, -by, uv.uv[0], uv.uv[1]])
        assert np.abs(ours - theirs).max(axis=1).min() < 1e-4


def test_a_job_encodes_its_texture_once_and_both_files_hold_those_png_bytes(tmp_path, textured_mesh, monkeypatch):
    """The GLB embeds the PNG that is also model_texture.png: PIL's PNG of the texture, encoded once."""
    import io

    from backend.export import texture_image
    from backend.generate.job_steps import write_mesh_files
    from backend.job_control import JobControl

    encoded = []
    real = texture_image.texture_to_image
    monkeypatch.setattr(texture_image, "texture_to_image", lambda mesh: encoded.append(mesh) or real(mesh))
    mask = np.ones((8, 8), bool)
    write_mesh_files(tmp_path, textured_mesh, dict(METADATA), mask, np.zeros((8, 8, 3), np.float32), JobControl())
    assert len(encoded) == 1
    buffer = io.BytesIO()
    real(textured_mesh).save(buffer, format="PNG")
    png = (tmp_path / "model_texture.png").read_bytes()
    assert png == buffer.getvalue()  # what the OBJ writer saved before the GLB shared it
    tree = _glb_json(tmp_path / "model.glb")
    view = tree["bufferViews"][tree["images"][0]["bufferView"]]
    data = (tmp_path / "model.glb").read_bytes()
    binary_start = 20 + struct.unpack_from("<I", data, 12)[0] + 8
    embedded = data[binary_start + view["byteOffset"]:binary_start + view["byteOffset"] + view["byteLength"]]
    assert embedded == png + bytes(-len(png) % 4)  # glTF pads every view to 4 bytes


def test_glb_needs_a_texture(tmp_path):
    mesh = uv_sphere_mesh(subdivisions=1)
    with pytest.raises(ValueError, match="texture"):
        export_glb(mesh, tmp_path / "model.glb", {})


def test_obj_writes_obj_mtl_and_png_that_load_back(tmp_path, textured_mesh):
    path = export_obj(textured_mesh, tmp_path)
    assert path == tmp_path / "model.obj"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.mtl", "model.obj", "model_texture.png"]
    assert "map_Kd model_texture.png" in (tmp_path / "model.mtl").read_text()
    lines = path.read_text().splitlines()
    assert "mtllib model.mtl" in lines
    assert sum(line.startswith("v ") for line in lines) == textured_mesh.vertex_count
    assert sum(line.startswith("vt ") for line in lines) == textured_mesh.vertex_count
    assert sum(line.startswith("f ") for line in lines) == textured_mesh.face_count
    loaded = trimesh.load(path, process=False)
    assert len(loaded.faces) == textured_mesh.face_count
    assert np.allclose(loaded.vertices, textured_mesh.vertices, atol=1e-5)
    assert np.allclose(loaded.visual.uv, textured_mesh.uvs, atol=1e-5)
    assert Image.open(tmp_path / "model_texture.png").size == (32, 32)


def _read_ply(path: Path) -> tuple[list[str], np.ndarray]:
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    assert header[1] == "format binary_little_endian 1.0"
    names = [line.split()[2] for line in header if line.startswith("property float ")]
    count = int(next(line for line in header if line.startswith("element vertex")).split()[2])
    rows = np.frombuffer(data[end:], dtype="<f4").reshape(count, len(names))
    return names, rows


def test_obj_rows_are_the_text_numpy_savetxt_writes():
    """The OBJ writer formats all rows at once; its text must be np.savetxt's, row for row."""
    import io

    from backend.export.obj import _rows

    rng = np.random.default_rng(0)
    cases = [("v", np.vstack([[-0.0, 1e-9, -1e-9], rng.normal(size=(99, 3))]), "%.6f %.6f %.6f"),
             ("vt", rng.random((50, 2)), "%.6f %.6f"), ("f", rng.integers(1, 10**6, (40, 6)), "%d/%d %d/%d %d/%d"),
             ("v", np.zeros((0, 3)), "%.6f %.6f %.6f")]
    for prefix, values, fmt in cases:
        buffer = io.StringIO()
        np.savetxt(buffer, values, fmt=f"{prefix} {fmt}")
        assert _rows(prefix, values, fmt) == buffer.getvalue()


def test_gaussians_ply_round_trips(tmp_path):
    gaussians = random_gaussians(37, seed=5)
    path = export_gaussians_ply(gaussians, tmp_path / "gaussians.ply")
    names, rows = _read_ply(path)
    assert names == PLY_PROPERTIES and rows.shape == (37, 17)
    column = {name: rows[:, i] for i, name in enumerate(names)}

    def stacked(*keys):
        return torch.tensor(np.stack([column[k] for k in keys], axis=1))

    assert torch.allclose(stacked("x", "y", "z"), gaussians.means, atol=1e-6)
    assert np.all(stacked("nx", "ny", "nz").numpy() == 0)
    assert torch.allclose(stacked("f_dc_0", "f_dc_1", "f_dc_2") * SH_C0 + 0.5, gaussians.colors, atol=1e-6)
    assert torch.allclose(torch.sigmoid(torch.tensor(column["opacity"])), gaussians.opacities, atol=1e-6)
    assert torch.allclose(stacked("scale_0", "scale_1", "scale_2").exp(), gaussians.scales, rtol=1e-5)
    assert torch.allclose(stacked("rot_0", "rot_1", "rot_2", "rot_3"), gaussians.quats, atol=1e-6)
