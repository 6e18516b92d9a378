"""The platform zip of scripts/build_extension.py installs, enables, runs and uninstalls cleanly in Blender.

The build bundles one tiny pure-Python wheel (tqdm, fetched by ``pip download``) instead of the torch stack,
so the test stays quick; the zip goes through Blender's own Install from Disk and Uninstall operators.
"""

from __future__ import annotations

import importlib.util
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

PKG_ID = "image_to_3d"
EXTENSION_MODULE = f"bl_ext.user_default.{PKG_ID}"


def _load_build_script(repo_root: Path):
    spec = importlib.util.spec_from_file_location("build_extension", repo_root / "scripts" / "build_extension.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def _registered_names() -> list[str]:
    import bpy

    return [name for name in dir(bpy.types) if name.startswith(("IMAGE_TO_3D_", "ImageTo3D"))]


@pytest.fixture
def without_checkout_copy(addon_package):
    """No registered copy of the add-on from the checkout while the installed one is tried; restored after."""
    import bpy

    was_registered = hasattr(bpy.types.Scene, "image_to_3d")
    if was_registered:
        addon_package.unregister()
    assert not _registered_names()
    try:
        yield
    finally:
        if was_registered:
            addon_package.register()


@pytest.fixture(scope="module")
def built_zip(repo_root, tmp_path_factory):
    build = _load_build_script(repo_root)
    manifest_before = (repo_root / "blender_manifest.toml").read_bytes()
    result = build.build("linux-x64", only=["tqdm"], out_dir=tmp_path_factory.mktemp("dist"))
    assert (repo_root / "blender_manifest.toml").read_bytes() == manifest_before  # the repo's manifest untouched
    return result


def test_zip_holds_addon_wheel_and_licences_only(built_zip):
    assert built_zip.zip_path.name == "image_to_3d-0.1.0-linux-x64-py311.zip"
    with zipfile.ZipFile(built_zip.zip_path) as archive:
        names = archive.namelist()
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
        licences = archive.read("THIRD_PARTY_LICENSES.txt").decode()
    wheel_names = [name for name in names if name.startswith("wheels/")]
    assert len(wheel_names) == 1 and wheel_names[0].startswith("wheels/tqdm-")
    assert manifest["platforms"] == ["linux-x64"]
    assert manifest["wheels"] == [f"./{wheel_names[0]}"]
    assert "tqdm" in licences and "MIT" in licences
    for required in ("__init__.py", "LICENSE", "backend/environment_check.py", "operators/check_packages.py",
                     "panels/preferences.py", "properties/job_config.py"):
        assert required in names
    assert not [name for name in names if name.split("/")[0] in ("tests", "scripts", "docs", ".venv", "dist")]
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_installed_zip_enables_runs_and_uninstalls_cleanly(built_zip, without_checkout_copy):
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    repos = [repo.module for repo in bpy.context.preferences.extensions.repos]
    repo = bpy.context.preferences.extensions.repos[repos.index("user_default")]
    wheel_dir = Path(repo.directory).parent / ".local" / "lib" / "python3.11" / "site-packages"

    result = bpy.ops.extensions.package_install_files(repo="user_default", filepath=str(built_zip.zip_path),
                                                      enable_on_install=True)
    try:
        assert result == {"FINISHED"}
        assert EXTENSION_MODULE in bpy.context.preferences.addons
        assert (wheel_dir / "tqdm" / "__init__.py").is_file()  # Blender unpacked the bundled wheel
        assert hasattr(bpy.ops.image_to_3d, "generate") and hasattr(bpy.types.Scene, "image_to_3d")
        assert bpy.ops.image_to_3d.generate.poll()
        assert bpy.types.IMAGE_TO_3D_OT_generate.__module__.startswith(EXTENSION_MODULE)
        # The installed code runs: its preferences button checks the packages this Python sees.
        assert bpy.ops.image_to_3d.check_packages() == {"FINISHED"}
        report = bpy.context.preferences.addons[EXTENSION_MODULE].preferences.package_report
        assert "torch" in report and ("packages found" in report or report.startswith("Missing"))
    finally:
        result = bpy.ops.extensions.package_uninstall(repo_index=repos.index("user_default"), pkg_id=PKG_ID)
    assert result == {"FINISHED"}
    assert EXTENSION_MODULE not in bpy.context.preferences.addons
    assert not _registered_names()
    assert not hasattr(bpy.types.Scene, "image_to_3d")
    assert not hasattr(bpy.ops.image_to_3d, "generate") or not _op_exists("image_to_3d.generate")
    assert not [name for name in sys.modules if name.startswith(EXTENSION_MODULE)]
    assert not (Path(repo.directory) / PKG_ID).exists()


def _op_exists(idname: str) -> bool:
    import bpy

    module, name = idname.split(".")
    try:
        getattr(getattr(bpy.ops, module), name).get_rna_type()
    except KeyError:
        return False
    return True


@pytest.fixture(scope="module")
def small_zip(repo_root, tmp_path_factory):
    build = _load_build_script(repo_root)
    return build.build("any", out_dir=tmp_path_factory.mktemp("dist-any"))


def test_small_zip_has_no_wheels_and_a_static_repository_lists_it(repo_root, small_zip, tmp_path):
    assert small_zip.zip_path.name == "image_to_3d-0.1.0.zip" and not small_zip.wheels
    with zipfile.ZipFile(small_zip.zip_path) as archive:
        names = archive.namelist()
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
    assert "platforms" not in manifest and "wheels" not in manifest  # any platform, any Python
    assert "requirements-worker.txt" in names and not [n for n in names if n.startswith("wheels/")]
    assert small_zip.zip_path.stat().st_size < 2 * 2**20
    index = _load_build_script(repo_root).generate_repository(tmp_path / "repo", [small_zip.zip_path])
    listing = __import__("json").loads(index.read_text())
    assert [(item["id"], item["archive_url"]) for item in listing["data"]] == [
        ("image_to_3d", "./image_to_3d-0.1.0.zip")]


def test_small_zip_installs_and_runs_a_job_through_a_worker(small_zip, without_checkout_copy, small_photo, tmp_path):
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    repos = [repo.module for repo in bpy.context.preferences.extensions.repos]
    result = bpy.ops.extensions.package_install_files(repo="user_default", filepath=str(small_zip.zip_path),
                                                      enable_on_install=True)
    try:
        assert result == {"FINISHED"}
        prefs = bpy.context.preferences.addons[EXTENSION_MODULE].preferences
        prefs.worker_python = "blender"  # this test's Python has torch; a user would press Set up backend
        prefs.device = "cpu"
        prefs.output_dir = str(tmp_path / "jobs")
        settings = bpy.context.scene.image_to_3d
        settings.image_path = str(small_photo)
        settings.prompt = "a coffee cup"
        assert bpy.ops.image_to_3d.segment() == {"FINISHED"}
        assert bpy.data.images["a coffee cup mask"].packed_file is not None
        client = sys.modules[f"{EXTENSION_MODULE}.operators.worker_client"]
        installed = Path(bpy.context.preferences.extensions.repos[repos.index("user_default")].directory) / PKG_ID
        assert client.BACKEND_ROOT == installed.resolve()  # the worker ran the installed copy's backend
        # no segmentation code ran in Blender: only the torch-free SAM 3 settings the api's requests declare
        declared = {f"{EXTENSION_MODULE}.backend.segment", f"{EXTENSION_MODULE}.backend.segment.sam3_config"}
        assert not [name for name in sys.modules
                    if name.startswith(f"{EXTENSION_MODULE}.backend.segment") and name not in declared]
    finally:
        result = bpy.ops.extensions.package_uninstall(repo_index=repos.index("user_default"), pkg_id=PKG_ID)
    assert result == {"FINISHED"}
