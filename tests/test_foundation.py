"""The extension skeleton, the CLI contract and the layering rules."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _blender_ext_cli() -> Path:
    """The extension CLI that ships inside the bpy wheel: site-packages/bpy/5.0/scripts/addons_core/…"""
    import importlib.util

    site_bpy = Path(importlib.util.find_spec("bpy").origin).parent
    return site_bpy / "5.0" / "scripts" / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"


def test_manifest_validates_with_blender_extension_cli(repo_root):
    cli = _blender_ext_cli()
    result = subprocess.run([sys.executable, str(cli), "validate", str(repo_root)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_manifest_fields(repo_root):
    import tomllib

    manifest = tomllib.loads((repo_root / "blender_manifest.toml").read_text())
    assert manifest["id"] == "image_to_3d"
    assert manifest["schema_version"] == "1.0.0"
    assert manifest["type"] == "add-on"
    assert manifest["blender_version_min"] == "4.2.0"
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    assert set(manifest["permissions"]) == {"files", "network"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_backend_never_imports_bpy(repo_root):
    offenders = [str(p.relative_to(repo_root)) for p in (repo_root / "backend").rglob("*.py")
                 if _imports(p) & {"bpy", "mathutils", "bmesh"}]
    assert offenders == []


def test_addon_layer_imports_no_torch_at_module_level(repo_root):
    """Enabling the extension must stay instant: torch only when a job starts (inside functions)."""
    heavy = {"torch", "transformers", "diffusers", "segment_anything", "gsplat"}
    offenders = []
    for folder in ("operators", "panels", "properties"):
        for path in (repo_root / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in tree.body:  # module level only
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                    if any(m.split(".")[0] in heavy for m in mods):
                        offenders.append(str(path.relative_to(repo_root)))
    assert _imports(repo_root / "__init__.py") & heavy == set()
    assert offenders == []


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "backend", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=600)


def test_cli_help_lists_every_subcommand(repo_root):
    result = _run_cli("--help", cwd=repo_root)
    assert result.returncode == 0
    for command in ("segment", "generate", "bench", "eval-phrasecut", "eval-recon", "batch"):
        assert command in result.stdout


def test_cli_usage_error_is_exit_2_one_line(repo_root):
    result = _run_cli("segment", cwd=repo_root)  # no image, no prompt
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_model_mode_from_env(monkeypatch):
    from backend.errors import BadInputError
    from backend.models import ModelMode, resolve_model_mode

    monkeypatch.setenv("IMAGE_TO_3D_MODELS", "full-random")
    assert resolve_model_mode(None) is ModelMode.FULL_RANDOM
    assert resolve_model_mode("tiny") is ModelMode.TINY
    monkeypatch.delenv("IMAGE_TO_3D_MODELS")
    assert resolve_model_mode(None) is ModelMode.REAL
    with pytest.raises(BadInputError):
        resolve_model_mode("huge")


def test_atomic_output_dir_leaves_nothing_on_failure(tmp_path):
    from backend.atomic_output import AtomicOutputDir

    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("the user's file")
    with pytest.raises(RuntimeError):
        with AtomicOutputDir(out) as staging:
            (staging / "model.glb").write_bytes(b"half")
            raise RuntimeError("boom")
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    with AtomicOutputDir(out) as staging:
        (staging / "model.glb").write_bytes(b"whole")
    assert (out / "model.glb").read_bytes() == b"whole"
    assert (out / "mine.txt").read_text() == "the user's file"


def test_reference_camera_convention():
    import numpy as np

    from backend.camera import orbit_camera, reference_camera

    cam = reference_camera(256)
    np.testing.assert_allclose(cam.c2w[:3, 3], [0, 0, 2], atol=1e-12)
    np.testing.assert_allclose(cam.c2w[:3, 2], [0, 0, 1], atol=1e-12)  # looks down -Z
    above = orbit_camera(30, 0, 2)
    assert above[1, 3] > 0  # positive elevation is above
    right = orbit_camera(0, 90, 2)
    np.testing.assert_allclose(right[:3, 3], [2, 0, 0], atol=1e-12)
    # A point at the origin projects to the image centre.
    p = cam.K @ (cam.viewmat_opencv @ np.array([0, 0, 0, 1.0]))[:3]
    np.testing.assert_allclose(p[:2] / p[2], [128, 128])


def test_register_unregister_register_leaves_no_stale_classes(addon_package):
    import bpy

    from tests.blender_harness import registered_class_names

    before = registered_class_names()
    addon_package.register()
    first = registered_class_names()
    assert hasattr(bpy.types.Scene, "image_to_3d")
    addon_package.unregister()
    assert registered_class_names() == before
    assert not hasattr(bpy.types.Scene, "image_to_3d")
    addon_package.register()
    assert registered_class_names() == first
    addon_package.unregister()
