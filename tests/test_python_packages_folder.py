"""The "Python packages folder" preference: the package check, and the folder joining sys.path at job start."""

from __future__ import annotations

import importlib.metadata
import sys
import sysconfig
from pathlib import Path

import pytest

from backend.environment_check import check_environment

MADE_UP = ("i2t_made_up_pkg", "i2t-made-up-pkg")


def _environment_with_made_up_package(folder: Path) -> Path:
    """A site-packages-like folder holding one importable package with dist-info (version 1.2.3)."""
    (folder / MADE_UP[0]).mkdir(parents=True)
    (folder / MADE_UP[0] / "__init__.py").write_text("VALUE = 42\n")
    info = folder / "i2t_made_up_pkg-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: i2t-made-up-pkg\nVersion: 1.2.3\n")
    return folder


@pytest.fixture
def restored_sys_path(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    sys.modules.pop(MADE_UP[0], None)


def test_check_reports_missing_for_empty_folder_and_found_in_environment(tmp_path, restored_sys_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    path_before = list(sys.path)
    report = check_environment(empty, query_cuda=False, required=(("torch", "torch"), MADE_UP))
    assert report.missing == ("i2t-made-up-pkg",)
    assert report.version_of("torch") == importlib.metadata.version("torch")
    assert report.torch_cuda is None and "Missing: i2t-made-up-pkg" in report.summary()
    assert sys.path == path_before  # looking changes nothing

    env = _environment_with_made_up_package(tmp_path / "env")
    report = check_environment(env, query_cuda=False, required=(("torch", "torch"), MADE_UP))
    assert report.missing == ()
    found = report.packages[1]
    assert (found.version, found.location) == ("1.2.3", str(env.resolve()))
    assert report.summary().startswith("All 2 packages found")
    assert str(env.resolve()) not in sys.path


def test_check_of_this_venv_finds_torch_and_asks_it_about_cuda(restored_sys_path):
    site_packages = Path(sysconfig.get_paths()["purelib"])
    report = check_environment(site_packages)
    assert report.version_of("torch") == importlib.metadata.version("torch")
    assert "segment-anything" not in report.missing and "scikit-image" not in report.missing
    import torch

    assert report.torch_cuda is torch.cuda.is_available()
    assert ("CUDA available" if report.torch_cuda else "CUDA not available") in report.summary()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_environment(site_packages / "no-such-folder")


def test_folder_joins_sys_path_when_a_job_starts_not_at_register(addon_settings, tmp_path, restored_sys_path):
    import bpy

    env = _environment_with_made_up_package(tmp_path / "env")
    prefs = bpy.context.preferences.addons["image_to_3d"].preferences
    prefs.python_packages_dir = str(env)
    assert str(env.resolve()) not in sys.path  # registered and configured: still untouched
    assert bpy.ops.image_to_3d.segment() == {"FINISHED"}
    assert sys.path.index(str(env.resolve())) > sys.path.index(str(Path(sysconfig.get_paths()["purelib"])))
    assert __import__(MADE_UP[0]).VALUE == 42

    assert bpy.ops.image_to_3d.check_packages() == {"FINISHED"}
    assert "torch" in prefs.package_report
    prefs.python_packages_dir = str(tmp_path / "gone")
    with pytest.raises(RuntimeError, match="Python packages folder does not exist"):
        bpy.ops.image_to_3d.segment()
    assert "Python packages folder" in addon_settings.last_error
