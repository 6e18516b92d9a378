"""The add-on driving a real worker process (bpy module, tiny models, CPU): segment and generate to imported
data, cancel, a killed worker, the drain's cost, and Blender's process staying free of torch."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.blender_fixtures import datablock_names

pytestmark = pytest.mark.slow  # each worker's cold start imports torch (seconds on a busy CPU)
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def module_worker(addon_package):
    """One worker serves the module's tests (as one serves a Blender session); shut down at the end."""
    yield
    addon_package.operators.worker_client.stop_worker()


@pytest.fixture
def worker_jobs(module_worker, addon_settings):
    """The add-on's job runner and worker modules."""
    from image_to_3d.operators import job_runner, worker_client, worker_requests

    return job_runner, worker_client, worker_requests


def smoke(job, steps=None):
    """A generate message shrunk to the smoke preset and ``steps`` steps (its api request's fields)."""
    import dataclasses

    return dataclasses.replace(job, request={**job.request, "preset": "smoke", "steps": steps})


def _generate_job(modules, settings, steps=None, on_success=None):
    import bpy

    job_runner, worker_client, worker_requests = modules
    config = settings.to_config(bpy.context)
    request = smoke(worker_requests.generate_request("gen-1", config, Path(config.options.output_dir) / "gen"), steps)
    imported = []
    return imported, worker_client.WorkerJob(
        kind="generate", work=None, on_success=on_success or imported.append, scene_name=bpy.context.scene.name,
        request=request, launch=worker_client.blender_python_launch(), convert=worker_client.first_generated_object)


def test_generate_through_the_worker_imports_the_object_and_drain_stays_under_5_ms(worker_jobs, addon_settings,
                                                                                     monkeypatch):
    import bpy

    job_runner, worker_client, _ = worker_jobs
    from image_to_3d.operators.import_result import import_generated_model

    monkeypatch.setattr(job_runner, "blocks_until_done", lambda: False)  # the UI path: the timer drains
    _, job = _generate_job(worker_jobs, addon_settings, steps=3,
                           on_success=lambda obj: import_generated_model(obj.glb_path, "a coffee cup"))
    job_runner.start_job(job, addon_settings)
    drains, stages = [], set()  # (wall seconds, this thread's CPU seconds) per drain
    # The test process holds every earlier test's objects (torch's among them), which Blender's would not: a
    # cyclic-GC pass over them could land inside any drain. Freeze them out of the collector while measuring.
    gc.collect()
    gc.freeze()
    try:
        while job_runner.current_job() is not None:
            wall, cpu = time.perf_counter(), time.thread_time()
            job_runner.poll_running_job()
            drains.append((time.perf_counter() - wall, time.thread_time() - cpu))
            stages.add(addon_settings.stage)
            time.sleep(0.05)
    finally:
        gc.unfreeze()
    assert job.error is None, job.error
    assert bpy.data.objects["a coffee cup"].type == "MESH" and addon_settings.stage == "done"
    # the drain moved the worker's progress into the scene (which stages a 50 ms poll catches varies)
    assert len(stages & {"segment", "preprocess", "load_guidance", "stage1", "mesh", "uv_unwrap", "bake", "texture",
                         "export", "clipseg", "load models", "sam embedding"}) >= 2, stages
    running = drains[:-1]  # the last call imports the object: that is the import's time, not the drain's
    assert len(running) > 20
    # The main thread's own work per drain; the wall time on a loaded 2-core box also holds time the OS gave
    # other processes, so it is held to the bound at the 95th percentile.
    # Alone, the slowest of ~100 drains takes 0.3 ms of CPU; in `make test`'s two parallel workers on 2 cores one
    # drain took 5.6 ms, and in a later CI run the second-slowest took 6.0 ms (the thread's CPU time also stretches
    # when another process thrashes the caches). So 90 % of the drains are held to 5 ms and every one to 20 ms.
    cpus = sorted(cpu for _, cpu in running)
    p90 = cpus[int(0.9 * (len(cpus) - 1))]
    assert p90 <= 0.005, f"90th percentile drain {p90 * 1000:.1f} ms CPU"
    assert cpus[-1] <= 0.020, f"slowest drain {cpus[-1] * 1000:.1f} ms CPU"
    walls = sorted(wall for wall, _ in running)
    assert walls[int(0.95 * (len(walls) - 1))] <= 0.005, f"95th percentile drain {walls[-1] * 1000:.1f} ms"


def test_cancel_ends_the_job_at_once_scene_untouched_and_a_stuck_worker_is_killed(worker_jobs, addon_settings):
    job_runner, worker_client, _ = worker_jobs
    before = datablock_names()
    _, job = _generate_job(worker_jobs, addon_settings, steps=2000)
    job_runner.start_job(job, addon_settings)
    worker = job.connection
    deadline = time.monotonic() + 120
    while (job.last_progress is None or job.last_progress.stage != "stage1") and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(worker.process.process.pid, signal.SIGSTOP)  # a worker that cannot hear the cancel
    try:
        started = time.monotonic()
        job.cancel()
        assert job.cancelled
        job.join(worker_client.CANCEL_KILL_AFTER_S + 10)
        took = time.monotonic() - started
    finally:
        if worker.process.alive:
            os.kill(worker.process.process.pid, signal.SIGCONT)
    assert not job.alive and worker.exited is not None and not worker.alive
    assert worker_client.CANCEL_KILL_AFTER_S <= took <= worker_client.CANCEL_KILL_AFTER_S + 5
    job_runner.poll_running_job()
    assert addon_settings.stage == "cancelled" and addon_settings.last_exit_code == 130
    assert datablock_names() == before
    assert worker_client.worker_for(job.launch) is not worker  # the next job gets a fresh worker


def test_a_worker_that_dies_mid_job_gives_one_line_and_an_untouched_scene(worker_jobs, addon_settings):
    job_runner, _, _ = worker_jobs
    before = datablock_names()
    _, job = _generate_job(worker_jobs, addon_settings, steps=2000)
    job_runner.start_job(job, addon_settings)
    deadline = time.monotonic() + 120
    while job.connection.hello is None and time.monotonic() < deadline:  # the worker is up and took the job
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(job.connection.process.process.pid, signal.SIGSEGV)
    job_runner.run_to_end(job)
    assert addon_settings.stage == "failed" and addon_settings.last_exit_code == 1
    assert "segmentation fault" in addon_settings.last_error and "\n" not in addon_settings.last_error
    assert datablock_names() == before


def test_blender_never_imports_torch_for_jobs_through_the_worker(tmp_path, small_photo):
    """A fresh process (the test process has torch loaded already): bpy, the add-on, Segment and Generate
    through the operators, as a user would run them."""
    script = tmp_path / "job.py"
    script.write_text(f"""
import sys
sys.path.insert(0, {str(REPO_ROOT)!r})
import bpy
from tests.blender_harness import import_addon_from_checkout
addon = import_addon_from_checkout(__import__("pathlib").Path({str(REPO_ROOT)!r}))
addon.register()
from image_to_3d.operators import worker_requests
build = worker_requests.generate_request
worker_requests.generate_request = lambda *a: (lambda job: type(job)(job.id, {{**job.request, "preset": "smoke",
    "steps": 3}}, job.prompts, job.mask_path, job.settings))(build(*a))
entry = bpy.context.preferences.addons.new()
entry.module = "image_to_3d"
entry.preferences.worker_python = "blender"
entry.preferences.device = "cpu"
entry.preferences.output_dir = {str(tmp_path / "jobs")!r}
settings = bpy.context.scene.image_to_3d
settings.image_path = {str(small_photo)!r}
settings.prompt = "a coffee cup"
assert bpy.ops.image_to_3d.segment() == {{"FINISHED"}}
assert bpy.ops.image_to_3d.generate() == {{"FINISHED"}}
heavy = sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "triton", "transformers",
               "segment_anything", "diffusers", "gsplat", "scipy", "skimage", "trimesh", "xatlas"))
backend = sorted(n for n in sys.modules if n.startswith("image_to_3d.backend."))
print("RESULT", settings.stage, bpy.data.objects["a coffee cup"].type, heavy, backend)
addon.unregister()
""")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    line = next((line for line in run.stdout.splitlines() if line.startswith("RESULT")), run.stderr[-2000:])
    assert line.startswith("RESULT done MESH [] "), line
    # only torch-free declarations: the api's request types, the choices, the catalog, and the reference camera
    # that the photo-match camera reads when the object lands (numpy only)
    assert set(eval(line.split("] ", 1)[1])) <= {  # noqa: S307 - our own printed list
        "image_to_3d.backend.api", "image_to_3d.backend.camera", "image_to_3d.backend.choices", "image_to_3d.backend.errors",
        "image_to_3d.backend.generate", "image_to_3d.backend.generate.request", "image_to_3d.backend.job_control",
        "image_to_3d.backend.models", "image_to_3d.backend.models.catalog", "image_to_3d.backend.models.mode",
        "image_to_3d.backend.segment", "image_to_3d.backend.segment.sam3_config", "image_to_3d.backend.worker",
        "image_to_3d.backend.worker.client", "image_to_3d.backend.worker.messages",
        "image_to_3d.backend.stage_labels", "image_to_3d.backend.models.cache_state",
        "image_to_3d.backend.models.download",  # these three: stdlib only (huggingface_hub only when fetching)
        # stdlib only: the package's OpenMP setting (a no-op inside Blender), the api's pre-import input checks
        # and the output-folder rules they use
        "image_to_3d.backend.openmp_wait", "image_to_3d.backend.input_checks", "image_to_3d.backend.atomic_output"}


@pytest.fixture
def worker_settings(worker_jobs, addon_settings, monkeypatch):
    """The operators on the worker path (Blender's Python), generate shrunk to the smoke preset, 3 steps."""
    import bpy

    _, _, worker_requests = worker_jobs
    prefs = bpy.context.preferences.addons["image_to_3d"].preferences
    prefs.debug_in_process_jobs = False
    prefs.worker_python = "blender"
    build = worker_requests.generate_request
    monkeypatch.setattr(worker_requests, "generate_request", lambda *args: smoke(build(*args), 3))
    return addon_settings


def test_operators_run_segment_and_several_objects_through_the_worker(worker_settings):
    import bpy

    worker_settings.prompt = "a coffee cup\nthe saucer"
    assert bpy.ops.image_to_3d.segment() == {"FINISHED"}
    assert bpy.data.images["the saucer mask"].packed_file is not None
    assert bpy.ops.image_to_3d.generate() == {"FINISHED"}
    cup, saucer = bpy.data.objects["a coffee cup"], bpy.data.objects["the saucer"]
    assert cup.type == saucer.type == "MESH"
    assert saucer.location.x > cup.location.x  # laid out side by side as each object arrived
    assert worker_settings.stage == "done" and worker_settings.last_exit_code == 0


def test_operator_cancel_says_cancelling_at_once_and_leaves_the_scene(worker_settings, worker_jobs, monkeypatch):
    import bpy

    job_runner, _, worker_requests = worker_jobs
    build = worker_requests.generate_request
    monkeypatch.setattr(worker_requests, "generate_request", lambda *args: smoke(build(*args), 2000))
    monkeypatch.setattr(job_runner, "blocks_until_done", lambda: False)
    before = datablock_names()
    assert bpy.ops.image_to_3d.generate() == {"FINISHED"}
    job = job_runner.current_job()
    deadline = time.monotonic() + 120
    while worker_settings.stage != "stage1" and time.monotonic() < deadline:
        job_runner.poll_running_job()
        time.sleep(0.05)
    assert bpy.ops.image_to_3d.cancel() == {"FINISHED"}
    assert worker_settings.stage == "Cancelling…"  # before any event came back
    job_runner.poll_running_job()
    assert worker_settings.stage == "Cancelling…"  # late progress does not overwrite it
    job.join(10)
    assert job_runner.poll_running_job() is None
    assert worker_settings.stage == "cancelled" and worker_settings.last_exit_code == 130
    assert datablock_names() == before


def test_a_missing_managed_environment_is_one_clear_line(worker_settings, tmp_path, monkeypatch):
    import bpy
    from image_to_3d.operators import backend_setup

    monkeypatch.setattr(backend_setup, "managed_env_dir", lambda: tmp_path / "no-env")
    bpy.context.preferences.addons["image_to_3d"].preferences.worker_python = "managed"
    with pytest.raises(RuntimeError, match="not set up yet"):
        bpy.ops.image_to_3d.generate()
    assert worker_settings.last_exit_code == 4 and "Set up backend" in worker_settings.last_error


def test_set_up_backend_needs_online_access_and_says_how_to_allow_it(worker_settings):
    import bpy
    from image_to_3d.operators.backend_setup import ONLINE_ACCESS_NEEDED

    assert not bpy.app.online_access  # the bpy module here runs offline
    with pytest.raises(RuntimeError, match="Allow Online Access"):
        bpy.ops.image_to_3d.setup_backend()
    assert bpy.context.preferences.addons["image_to_3d"].preferences.setup_report == ONLINE_ACCESS_NEEDED


def test_check_backend_shows_python_torch_and_device(worker_settings):
    import bpy

    assert bpy.ops.image_to_3d.check_backend() == {"FINISHED"}
    report = bpy.context.preferences.addons["image_to_3d"].preferences.check_report
    assert report.startswith(f"Python {'.'.join(map(str, sys.version_info[:3]))} · torch ") and "jobs run on" in report


def test_an_interpreter_that_cannot_run_fails_the_job_in_one_line(worker_settings, tmp_path):
    import bpy

    not_executable = tmp_path / "python"
    not_executable.write_text("not a program")
    prefs = bpy.context.preferences.addons["image_to_3d"].preferences
    prefs.worker_python, prefs.existing_python = "existing", str(not_executable)
    before = datablock_names()
    with pytest.raises(RuntimeError, match="cannot start the backend worker"):
        bpy.ops.image_to_3d.segment()
    assert worker_settings.last_exit_code == 4 and datablock_names() == before


def test_blenders_python_as_backend_also_sees_the_packages_folder(addon_settings, tmp_path):
    import bpy
    from image_to_3d.operators.backend_setup import worker_launch

    prefs = bpy.context.preferences.addons["image_to_3d"].preferences
    prefs.worker_python, prefs.python_packages_dir = "blender", str(tmp_path)
    launch = worker_launch(prefs)
    assert launch.python == sys.executable and launch.extra_paths[-1] == str(tmp_path)


def test_sam3_instance_choice_then_quick_generate_through_the_worker(worker_settings):
    """SAM 3 Segment lists its instances, Choose Instance (in the worker: no numpy in Blender) makes #2 the mask,
    and a Quick Generate builds the object from that mask."""
    import bpy
    import numpy as np
    from PIL import Image

    worker_settings.segmenter = "sam3"
    bpy.context.preferences.addons["image_to_3d"].preferences.accept_sam3_license = True
    assert bpy.ops.image_to_3d.segment() == {"FINISHED"}
    saved = [Path(item.mask_path) for item in worker_settings.sam3_instances]
    assert len(saved) >= 2 and all(path.is_file() for path in saved)
    assert bpy.ops.image_to_3d.choose_instance(rank=2) == {"FINISHED"}
    chosen = Path(worker_settings.corrected_mask_path)
    assert chosen.parent != saved[1].parent and worker_settings.sam3_instance_chosen == 2

    def mask_of(path):
        with Image.open(path) as image:
            return np.asarray(image.convert("L")) > 127

    np.testing.assert_array_equal(mask_of(chosen), mask_of(saved[1]))
    worker_settings.method = "quick"
    assert bpy.ops.image_to_3d.generate() == {"FINISHED"}
    assert bpy.data.objects["a coffee cup"].type == "MESH"
    done = [item for item in worker_settings.history if item.status == "done"]
    assert [item.method for item in done] == ["quick"]
    out_dir = Path(done[0].out_dir)
    assert not (out_dir / "gaussians.ply").exists()  # the quick method makes no Gaussians
    np.testing.assert_array_equal(mask_of(out_dir / "mask.png"), mask_of(chosen))  # the chosen instance was used
