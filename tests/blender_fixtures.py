"""Fixtures of the bpy tests: the add-on registered with preferences, the fake (or real) backend, a small photo."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.blender_fakes import USE_REAL_BACKEND, fake_generate_work, fake_segment_work

# Datablock kinds a job could leave behind.
SCENE_KINDS = ("objects", "meshes", "materials", "images", "textures", "node_groups", "collections")


def datablock_names() -> dict[str, set[str]]:
    import bpy

    return {kind: {block.name for block in getattr(bpy.data, kind)} for kind in SCENE_KINDS}


@pytest.fixture
def job_backend(monkeypatch, addon_package):
    """The add-on's backend_jobs module, with the fake jobs swapped in unless USE_REAL_BACKEND."""
    from image_to_3d.operators import backend_jobs

    if not USE_REAL_BACKEND:
        monkeypatch.setattr(backend_jobs, "build_segment_work", fake_segment_work)
        monkeypatch.setattr(backend_jobs, "build_generate_work", fake_generate_work)
    return backend_jobs


@pytest.fixture
def small_photo(bundled_photo, tmp_path_factory) -> Path:
    """coffee.png shrunk to 64 x 48 so jobs stay quick."""
    from PIL import Image

    path = tmp_path_factory.mktemp("photo") / "coffee-small.png"
    with Image.open(bundled_photo) as image:
        image.convert("RGB").resize((64, 48)).save(path)
    return path


@pytest.fixture
def addon_settings(registered_addon, job_backend, tmp_path, small_photo):
    """``scene.image_to_3d`` of a fresh scene, preferences entry present (CPU, output under tmp_path)."""
    import bpy
    from image_to_3d.operators import job_runner

    entry = bpy.context.preferences.addons.new()
    entry.module = "image_to_3d"
    entry.preferences.device = "cpu"
    entry.preferences.output_dir = str(tmp_path / "jobs")
    # The fake (and the patched real) jobs are callables in this process: the debugging in-process path runs
    # them. The worker path has its own tests (test_blender_worker.py).
    entry.preferences.debug_in_process_jobs = True
    entry.preferences.worker_python = "blender"
    settings = bpy.context.scene.image_to_3d
    settings.image_path = str(small_photo)
    settings.prompt = "a coffee cup"
    try:
        yield settings
    finally:
        job = job_runner.current_job()
        if job is not None:
            job.cancel()
            job.join(10)
            job_runner.poll_running_job()
        bpy.context.preferences.addons.remove(entry)
