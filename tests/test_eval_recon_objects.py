"""eval-recon's image-textured built-in objects (scripts/recon_objects.py, scripts/recon_textures.py).

Each must build in Blender, carry its texture through a glTF export (an embedded image that Blender imports
back and renders as the built object rendered), and have the property it is there to stress: the box's sharp
90° edges, the mug's hole (genus 1), the can's flat caps with their rims, the bowl's concavity.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from backend.camera import Camera
from backend.errors import BadInputError
from backend.eval_recon.blender_job import load_render, load_surface, render_job, render_views, run_blender_job
from backend.eval_recon.cameras import NamedCamera
from backend.eval_recon.config import BUILTIN_OBJECTS
from backend.eval_recon.evaluate import builtin_objects, chosen_objects

SIZE = 40
TEXTURED = ("box", "mug", "can", "bowl")


@pytest.fixture(scope="module")
def textures(repo_root):
    sys.path.insert(0, str(repo_root / "scripts"))
    try:
        import recon_textures
    finally:
        sys.path.remove(str(repo_root / "scripts"))
    return recon_textures


def _views() -> list[NamedCamera]:
    angles = ((10.0, 30.0), (35.0, 160.0), (-20.0, 280.0))
    return [NamedCamera(f"v{i}", Camera.orbit(e, a, SIZE), e, a) for i, (e, a) in enumerate(angles)]


def _trimesh(vertices: np.ndarray, faces: np.ndarray):
    trimesh = pytest.importorskip("trimesh")
    mesh = trimesh.Trimesh(vertices, faces, process=True)  # merges vertices: the topology, not the UV seams
    assert mesh.is_watertight and mesh.body_count == 1
    return mesh


def _stress_property(name: str, mesh) -> None:
    angles = np.degrees(mesh.face_adjacency_angles)
    # the share of its convex hull's volume the object fills (1 - the share of points in the hull outside it)
    hull_fraction = mesh.volume / mesh.convex_hull.volume
    if name == "box":  # flat faces meeting at sharp 90° edges, nothing in between
        assert np.all((angles < 1e-3) | (np.abs(angles - 90.0) < 1e-3)), np.unique(angles.round(3))
        assert np.sum(np.abs(angles - 90.0) < 1e-3) == 12
    elif name == "mug":  # a handle with a hole: χ = 2 - 2g = 0; and hollow: most of its hull is empty
        assert mesh.euler_number == 0
        assert hull_fraction < 0.5
    elif name == "can":  # two flat caps of the full disc's area, with sharp 90° rims all round
        assert np.sum(np.abs(angles - 90.0) < 1e-3) >= 2 * 64
        parallel = np.abs(mesh.face_normals @ mesh.face_normals.T) > 0.999
        axis = mesh.face_normals[int(np.argmax(parallel @ mesh.area_faces))]  # the direction with most flat area
        caps = mesh.area_faces[np.abs(mesh.face_normals @ axis) > 0.999].sum()
        radius = np.linalg.norm(np.cross(mesh.vertices - mesh.vertices.mean(0), axis), axis=1).max()
        assert caps == pytest.approx(2 * np.pi * radius**2, rel=0.01)
        assert hull_fraction > 0.99  # convex: the rims are the stress, not concavity
    elif name == "bowl":  # concave: most of its convex hull lies outside it
        assert hull_fraction < 0.4


@pytest.mark.slow
@pytest.mark.parametrize("name", TEXTURED)
def test_textured_object_survives_gltf_and_has_its_stress_property(name, textures, tmp_path):
    trimesh = pytest.importorskip("trimesh")
    views = _views()
    # 1. Build, export the GLB, render the built object
    job = render_job({"builtin": name}, views, tmp_path / "built", samples=4, surface_out=tmp_path / "surface.npz")
    job["glb_out"] = str(tmp_path / f"{name}.glb")
    run_blender_job(job)
    built = [load_render(tmp_path / "built" / f"{v.name}.png") for v in views]

    # 2. The GLB embeds the procedural texture (exactly, up to 8-bit rounding)
    scene = trimesh.load(tmp_path / f"{name}.glb")
    (mesh,) = scene.geometry.values()
    image = mesh.visual.material.baseColorTexture
    assert image is not None, "no base-colour image in the GLB"
    expected = textures.TEXTURES[name]()
    assert image.size == (expected.shape[1], expected.shape[0])
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    assert np.abs(pixels - expected).max() <= 1.0 / 255 + 1e-6

    # 3. Blender imports it back, and it renders as the built object did
    reimported = render_views({"path": str(tmp_path / f"{name}.glb"), "normalise": False}, views,
                              tmp_path / "reimported", samples=4)
    for (rgb_b, alpha_b), (rgb_r, alpha_r) in zip(built, reimported, strict=True):
        assert alpha_b.mean() > 0.05  # the object is in view
        assert ((alpha_b > 0.5) == (alpha_r > 0.5)).mean() > 0.995
        inside = (alpha_b > 0.99) & (alpha_r > 0.99)
        assert np.abs(rgb_b[inside] - rgb_r[inside]).mean() < 0.01
        assert len(np.unique((rgb_b[inside] * 8).astype(int), axis=0)) >= 3  # textured, not one flat colour

    # 4. The property the object is there to stress, on the surface the evaluation scores against
    _stress_property(name, _trimesh(*load_surface(tmp_path / "surface.npz")))


def test_textures_are_deterministic_and_print_their_glyphs(textures):
    for name, paint in textures.TEXTURES.items():
        first, second = paint(), paint()
        assert first.dtype == np.float32 and first.min() >= 0.0 and first.max() <= 1.0, name
        np.testing.assert_array_equal(first, second)
    u, v = textures.uv_grid(5, 7)  # one texel per glyph cell: the mask is the bitmap itself
    ink = textures.text_mask(u, v, "1", (0.0, 0.0, 1.0, 1.0))
    np.testing.assert_array_equal(ink, [[c == "#" for c in row] for row in textures.GLYPHS["1"]])


def test_blender_script_and_backend_list_the_same_builtins(tmp_path):
    """The script's refusal names its own list: it must be the backend's, in the same order."""
    with pytest.raises(BadInputError) as refused:
        render_views({"builtin": "teapot"}, _views()[:1], tmp_path, samples=1)
    assert str(refused.value).endswith(f"(choose from {', '.join(BUILTIN_OBJECTS)})")
    assert set(TEXTURED) <= set(BUILTIN_OBJECTS)


def test_object_option_takes_builtin_names_and_files(tmp_path):
    glb = tmp_path / "thing.glb"
    glb.write_bytes(b"")
    specs = chosen_objects(["mug", str(glb), "suzanne"])
    assert [(s.name, s.builtin) for s in specs] == [("mug", "mug"), ("thing", None), ("suzanne", "suzanne")]
    assert [s.name for s in builtin_objects()] == list(BUILTIN_OBJECTS)
    (tmp_path / "mug.glb").write_bytes(b"")
    with pytest.raises(BadInputError, match="share the folder name 'mug'"):
        chosen_objects(["mug", str(tmp_path / "mug.glb")])
    with pytest.raises(BadInputError, match="no such file"):
        chosen_objects(["teapot"])
