"""Issue 19, item 10 in Blender (bpy module): an image that exists only inside Blender leaves one copy, not a
temp folder per press; disabling the add-on mid-job blocks Blender about a second at most and leaves no worker
writing behind it. Each test records its row of docs/reliability.md (tests/reliability_table.py)."""

from __future__ import annotations

import os
import signal
import stat
import tempfile
import time

import pytest

from tests.reliability_table import expect, files_in, record

PRESSES = 3
expect(__name__, "Blender: an image only in Blender (generated, not saved), Generate pressed 3 times",
       "Blender Generate")
expect(__name__, "Blender: add-on disabled while a worker that cannot hear cancel runs stage 1", "Blender add-on")


def _temp_photo_folders() -> set[str]:
    return {name for name in os.listdir(tempfile.gettempdir()) if name.startswith("image_to_3d_photo_")}


def test_an_image_only_in_blender_is_copied_to_one_private_file_whatever_the_presses(addon_settings, tmp_path,
                                                                                       monkeypatch):
    import bpy
    from image_to_3d.operators import job_runner
    from image_to_3d.properties import scene_settings

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    seen = []  # the photo path each press handed to its job
    resolve = scene_settings.resolve_photo_path
    monkeypatch.setattr(scene_settings, "resolve_photo_path", lambda settings: seen.append(resolve(settings)) or seen[-1])
    image = bpy.data.images.new("generated photo", width=16, height=12)
    addon_settings.image = image
    temp_before = _temp_photo_folders()
    for press in range(PRESSES):
        image.pixels[:4] = (press / PRESSES, 0.0, 0.0, 1.0)  # edited in memory between presses
        assert bpy.ops.image_to_3d.generate() == {"FINISHED"}
        job_runner.poll_running_job()
    folder = tmp_path / "data" / "image_to_3d" / "photo-copies"
    assert len(seen) == PRESSES and set(seen) == {str(folder / "generated_photo.png")}, seen
    assert files_in(folder) == ["generated_photo.png"]
    assert _temp_photo_folders() == temp_before  # was: a fresh image_to_3d_photo_* folder per press
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    from PIL import Image

    with Image.open(folder / "generated_photo.png") as saved:  # the last press's pixels, not a stale copy
        assert saved.size == (16, 12)
        red = saved.convert("RGB").getpixel((0, saved.height - 1))[0]
    assert abs(red - round(255 * (PRESSES - 1) / PRESSES)) <= 2, red
    record("Blender: an image only in Blender (generated, not saved), Generate pressed 3 times", "Blender Generate",
           "Generate button x3 (image edited between presses)", 0, "", "one copy: <data>/photo-copies/generated_photo.png",
           "no temp folder per press; folder mode 0700; the copy holds the last press's pixels")


def _long_worker_job(settings, tmp_path):
    """A generate job in the worker that would run for minutes (2000 stage-1 steps, smoke sizes)."""
    import dataclasses

    import bpy
    from image_to_3d.operators import worker_client, worker_requests

    config = settings.to_config(bpy.context)
    request = worker_requests.generate_request("gen-unregister", config, tmp_path / "out")
    request = dataclasses.replace(request, request={**request.request, "preset": "smoke", "steps": 2000})
    return worker_client.WorkerJob(kind="generate", work=None, on_success=lambda _: None,
                                   scene_name=bpy.context.scene.name, request=request,
                                   launch=worker_client.blender_python_launch(),
                                   convert=worker_client.first_generated_object)


@pytest.mark.slow  # the worker's cold start imports torch
def test_disabling_the_addon_mid_job_stops_a_deaf_worker_within_a_second(addon_package, addon_settings, tmp_path,
                                                                        monkeypatch):
    from image_to_3d.operators import job_runner

    monkeypatch.setattr(job_runner, "blocks_until_done", lambda: False)
    job = _long_worker_job(addon_settings, tmp_path)
    job_runner.start_job(job, addon_settings)
    deadline = time.monotonic() + 180
    while (job.last_progress is None or job.last_progress.stage != "stage1") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.last_progress is not None and job.last_progress.stage == "stage1", job.error
    process = job.connection.process.process
    os.kill(process.pid, signal.SIGSTOP)  # the worst case: a worker that hears neither cancel nor shutdown
    try:
        started = time.monotonic()
        addon_package.unregister()
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
        addon_package.register()  # for the fixture's own unregister
    assert took <= job_runner.UNREGISTER_BLOCKS_AT_MOST_S + 0.5, f"unregister blocked {took:.2f} s (was 5.8 s)"
    assert job.cancelled, "unregister did not ask the job to cancel first"
    assert process.poll() is not None, "the worker outlived the add-on"
    left = files_in(tmp_path / "out")
    time.sleep(1.0)
    assert files_in(tmp_path / "out") == left and "model.glb" not in left  # nothing written after it was gone
    assert job_runner.current_job() is None
    record("Blender: add-on disabled while a worker that cannot hear cancel runs stage 1", "Blender add-on",
           "unregister() with the worker SIGSTOPped in stage 1", f"worker {process.returncode}", "",
           "no outputs (a killed run's staging is undone by the next run there)",
           f"unregister returned within {job_runner.UNREGISTER_BLOCKS_AT_MOST_S + 0.5:.1f} s (was 5.8 s); worker "
           "killed, nothing written after")

