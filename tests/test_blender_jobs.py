"""Segment and generate through the operators: background mode, the UI (threaded) path, cancel, failures.

The backend is the fake of tests/blender_fakes.py (the real tiny-model one when USE_REAL_BACKEND).
"""

from __future__ import annotations

import time

import pytest

from tests.blender_fakes import GatedWork
from tests.blender_fixtures import datablock_names


def _texture_images(obj) -> list:
    return [node.image for slot in obj.material_slots for node in slot.material.node_tree.nodes
            if node.type == "TEX_IMAGE" and node.image is not None]


def test_segment_in_background_mode_makes_packed_images_and_preview_plane(addon_settings):
    import bpy

    addon_settings.prompt = "a coffee cup\nthe saucer"
    addon_settings.make_preview_plane = True
    assert bpy.ops.image_to_3d.segment() == {"FINISHED"}
    for slug in ("a coffee cup", "the saucer"):  # images are named after the prompt
        for kind in ("mask", "cut-out", "overlay"):
            image = bpy.data.images[f"{slug} {kind}"]
            assert image.packed_file is not None
            assert tuple(image.size) == (64, 48)
        plane = bpy.data.objects[f"{slug} preview"]
        width, _, height = plane.dimensions
        assert width / height == pytest.approx(64 / 48)
        nodes = plane.active_material.node_tree.nodes
        texture = next(node for node in nodes if node.type == "TEX_IMAGE")
        assert texture.image == bpy.data.images[f"{slug} cut-out"]
        bsdf = next(node for node in nodes if node.type == "BSDF_PRINCIPLED")
        assert bsdf.inputs["Alpha"].links[0].from_node == texture
    assert addon_settings.preview_image == bpy.data.images["a coffee cup overlay"]
    assert addon_settings.stage == "done" and addon_settings.last_error == ""


def test_segment_again_replaces_images_instead_of_piling_up(addon_settings):
    import bpy

    bpy.ops.image_to_3d.segment()
    count = len(bpy.data.images)
    bpy.ops.image_to_3d.segment()
    assert len(bpy.data.images) == count
    assert "a coffee cup mask.001" not in bpy.data.images


def test_generate_in_background_mode_imports_textured_object_at_cursor(addon_settings):
    import bpy

    bpy.context.scene.cursor.location = (1.0, 2.0, 3.0)
    assert bpy.ops.image_to_3d.generate() == {"FINISHED"}
    obj = bpy.data.objects["a coffee cup"]
    assert obj.type == "MESH" and obj.data.name == "a coffee cup"
    assert tuple(obj.location) == pytest.approx((1.0, 2.0, 3.0))
    assert obj.select_get() and bpy.context.view_layer.objects.active == obj
    images = _texture_images(obj)
    assert images and all(image.packed_file is not None for image in images)
    assert images[0].size[0] > 0
    assert [o.name for o in bpy.data.objects] == ["a coffee cup"]
    assert (addon_settings.stage, addon_settings.progress, addon_settings.last_exit_code) == ("done", 1.0, 0)


def test_failing_job_leaves_scene_unchanged_and_says_why(addon_settings, tmp_path):
    import bpy

    addon_settings.image_path = str(tmp_path / "no such photo.png")
    before = datablock_names()
    with pytest.raises(RuntimeError, match="no such photo"):
        bpy.ops.image_to_3d.generate()
    assert datablock_names() == before
    assert "no such photo" in addon_settings.last_error
    assert addon_settings.last_exit_code == 2 and addon_settings.stage == "failed"


def test_failure_after_import_started_removes_everything_it_made(addon_settings, monkeypatch):
    import bpy
    from image_to_3d.operators import import_result

    def broken(obj, name):
        raise RuntimeError("disk full while packing")

    monkeypatch.setattr(import_result, "_ensure_packed_texture", broken)
    before = datablock_names()
    with pytest.raises(RuntimeError, match="disk full"):
        bpy.ops.image_to_3d.generate()
    assert datablock_names() == before
    assert "disk full" in addon_settings.last_error


@pytest.fixture
def ui_mode(monkeypatch):
    from image_to_3d.operators import job_runner

    monkeypatch.setattr(job_runner, "blocks_until_done", lambda: False)
    return job_runner


@pytest.fixture
def gated_generate(job_backend, monkeypatch):
    """Generate work that reports progress until released (or cancelled), then runs the (fake or real) job."""
    gates = []
    inner = job_backend.build_generate_work

    def build(config, out_dir):
        gates.append(GatedWork(inner(config, out_dir)))
        return gates[-1]

    monkeypatch.setattr(job_backend, "build_generate_work", build)
    return gates


def test_ui_path_returns_at_once_then_timer_moves_progress_and_imports(addon_settings, ui_mode, gated_generate):
    import os

    import bpy

    os.environ.pop("HF_HUB_OFFLINE", None)
    try:
        started = time.perf_counter()
        assert bpy.ops.image_to_3d.generate() == {"FINISHED"}
        elapsed = time.perf_counter() - started
        assert elapsed <= 0.1, f"starting a job took {elapsed:.3f} s"
        job = ui_mode.current_job()
        assert job is not None and job.alive
        if not bpy.app.online_access:
            assert os.environ["HF_HUB_OFFLINE"] == "1"  # set for the job only

        # One job at a time.
        with pytest.raises(RuntimeError, match="already running"):
            bpy.ops.image_to_3d.segment()

        assert gated_generate[0].reported.wait(5)
        assert ui_mode.poll_running_job() == ui_mode.POLL_INTERVAL_S
        assert (addon_settings.stage, addon_settings.progress) == ("stage 1", 0.25)
        assert "a coffee cup" not in bpy.data.objects

        gated_generate[0].release.set()
        job.join(30)
        assert ui_mode.poll_running_job() is None
        assert ui_mode.current_job() is None
        assert bpy.data.objects["a coffee cup"].select_get()
        assert addon_settings.stage == "done"
        assert "HF_HUB_OFFLINE" not in os.environ  # restored
    finally:
        os.environ["HF_HUB_OFFLINE"] = "1"


def test_cancel_during_job_leaves_scene_unchanged(addon_settings, ui_mode, gated_generate):
    import bpy

    before = datablock_names()
    bpy.ops.image_to_3d.generate()
    job = ui_mode.current_job()
    assert gated_generate[0].reported.wait(5)
    assert bpy.ops.image_to_3d.cancel() == {"FINISHED"}
    job.join(10)
    assert not job.alive
    assert ui_mode.poll_running_job() is None
    assert datablock_names() == before
    assert addon_settings.stage == "cancelled" and addon_settings.last_exit_code == 130
    assert "cancelled" in addon_settings.last_message and addon_settings.last_error == ""
    assert not bpy.ops.image_to_3d.cancel.poll()  # nothing left to cancel


def test_cancel_after_work_finished_still_imports_nothing(addon_settings, ui_mode, gated_generate):
    import bpy

    before = datablock_names()
    bpy.ops.image_to_3d.generate()
    job = ui_mode.current_job()
    gated_generate[0].release.set()
    job.join(30)
    job.cancel()  # the user pressed Cancel before the timer brought the result in
    ui_mode.poll_running_job()
    assert datablock_names() == before
    assert addon_settings.stage == "cancelled"
