"""Issue 9, failures mid-job: out of GPU memory at each stage, cancel at each stage, a full disk, and errors
that are bugs. Each must end with its exit code, one line, no output files, GPU memory given back."""

from __future__ import annotations

import errno
import os
import threading

import pytest
import torch

from tests import reliability_helpers as photos
from tests.reliability_helpers import cli, command_text, generate_argv
from tests.reliability_table import expect, files_in, record

# stage → (module, function) raising CUDA OOM inside that stage
OOM_STAGES = {
    "segmentation (clipseg)": ("backend.segment.api", "compute_heatmaps"),
    "segmentation (sam embedding)": ("backend.segment.api", "embed_image"),
    "preprocess": ("backend.preprocess", "prepare_reference"),
    "load_guidance": ("backend.models.zero123", "load_zero123"),
    "stage1": ("backend.stage1", "render_views_together"),
    "mesh": ("backend.mesh.extract", "marching_cubes"),
    "uv_unwrap": ("backend.mesh", "unwrap_uvs"),
    "bake": ("backend.mesh.bake", "rasterize_uv"),
    "stage2": ("backend.mesh.refine_texture", "refine_texture"),
    "export": ("backend.export", "export_glb"),
}
CANCEL_STAGES = ["load models", "clipseg", "sam embedding", "preprocess", "load_guidance", "stage1", "mesh",
                 "uv_unwrap", "bake", "texture", "export"]
for _stage in OOM_STAGES:
    expect(__name__, f"out of GPU memory: {_stage}", "CLI generate")
expect(__name__, "out of GPU memory: segmentation (clipseg)", "CLI segment")
for _stage in CANCEL_STAGES:
    expect(__name__, f"cancel: {_stage}", "library generate")
expect(__name__, "cancel: stage1", "Blender Generate")
expect(__name__, "full disk: mid-commit", "CLI generate")
expect(__name__, "full disk: while staging", "CLI generate")
expect(__name__, "bugs: unexpected exception", "CLI generate")
expect(__name__, "bugs: unexpected exception with --debug", "CLI generate")


@pytest.fixture(scope="module")
def warm_job(tmp_path_factory):
    """One full smoke job on a small photo: its mask and stage-1 Gaussians are then in the job cache, so the
    tests of later stages only pay for the stages after stage 1."""
    from backend.generate import GenerateRequest, generate

    folder = tmp_path_factory.mktemp("warm")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMAGE_TO_3D_CACHE", str(folder / "cache"))
        photo = photos.write_png(folder / "photo.png")
        generate(GenerateRequest(str(photo), "a red blob", str(folder / "out"), preset="smoke", steps=2,
                                 models="tiny", device="cpu"))
        yield photo


def _needs_fresh(stage: str) -> bool:
    return stage.startswith("segmentation") or stage in ("stage1", "load models", "clipseg", "sam embedding")


@pytest.mark.parametrize("stage", list(OOM_STAGES))
def test_out_of_gpu_memory_at_each_stage_is_exit_5(warm_job, tmp_path, capsys, monkeypatch, stage):
    import importlib

    from backend.models.loaded import clear_loaded_models, get_or_load, loaded_keys

    # models an earlier test left loaded in this process would skip the loader this case makes run out of memory
    clear_loaded_models()
    module_name, function = OOM_STAGES[stage]
    module = importlib.import_module(module_name)
    calls = []

    def out_of_memory(*args, **kwargs):
        calls.append(function)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(module, function, out_of_memory)
    get_or_load(_sentinel_key(), lambda: object())  # a model 'kept loaded' from an earlier job
    out = tmp_path / "out"
    argv = generate_argv(warm_job, out, "a red blob", *(["--force"] if _needs_fresh(stage) else []))
    code, stderr = cli(argv, capsys)
    lines = stderr.strip().splitlines()
    assert calls and code == 5 and len(lines) == 1 and "Traceback" not in stderr
    assert lines[0] == (f"error: out of GPU memory during {stage}: try the draft preset, SAM vit_b, or half "
                        "precision")
    assert loaded_keys() == []  # the kept models were dropped so a retry starts from a free card
    assert files_in(out) == [] and not out.exists()
    record(f"out of GPU memory: {stage}", "CLI generate", command_text(argv), code, lines[0][7:], "none",
           f"OOM raised in {module_name}.{function}; cached models dropped")


def _sentinel_key():
    from backend.models.loaded import ModelKey

    return ModelKey("sentinel", "tiny", "", "cpu", "float32")


def test_out_of_gpu_memory_in_segment_command_is_exit_5(tmp_path, capsys, monkeypatch):
    from backend.models.loaded import loaded_keys
    from backend.segment import api

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(api, "compute_heatmaps", out_of_memory)
    photo, out = photos.write_png(tmp_path / "photo.png"), tmp_path / "out"
    argv = ["segment", photo, "--prompt", "a red blob", "--out", out, "--models", "tiny", "--device", "cpu", "-q"]
    code, stderr = cli(argv, capsys)
    line = stderr.strip()
    assert code == 5 and line.startswith("error: out of GPU memory during segmentation (clipseg): try the draft")
    assert loaded_keys() == [] and files_in(out) == []
    record("out of GPU memory: segmentation (clipseg)", "CLI segment", command_text([str(a) for a in argv]), code,
           line[7:], "none", "cached models dropped")


@pytest.mark.parametrize("stage", CANCEL_STAGES)
def test_cancel_at_each_stage_stops_there_and_leaves_nothing(warm_job, tmp_path, monkeypatch, stage):
    from backend.errors import CancelledError
    from backend.generate import GenerateRequest, generate, pipeline
    from backend.job_control import JobControl

    released = []
    monkeypatch.setattr(pipeline, "release_gpu_memory", lambda: released.append(1))
    control, stages = JobControl(), []

    def cancel_at(progress):
        if not stages or stages[-1] != progress.stage:
            stages.append(progress.stage)
        if progress.stage == stage:
            control.cancel()

    control.on_progress = cancel_at
    out = tmp_path / "out"
    request = GenerateRequest(str(warm_job), "a red blob", str(out), preset="smoke", steps=2, models="tiny",
                              device="cpu", force=_needs_fresh(stage))
    with pytest.raises(CancelledError) as info:
        generate(request, control)
    assert info.value.exit_code == 130 and stage in stages
    order = ["load models", "clipseg", "sam embedding", "segment", *CANCEL_STAGES[3:]]
    assert info.value.stage in order[order.index(stage):order.index(stage) + 2], (stage, info.value.stage)
    assert released and files_in(out) == [] and not out.exists()
    record(f"cancel: {stage}", "library generate", f"cancel when '{stage}' first reports", 130, str(info.value),
           "none", f"stopped in: {info.value.stage}; release_gpu_memory called")


def test_cancel_in_blender_with_the_real_backend(real_settings, monkeypatch):
    """The UI path: the worker thread ends, the scene is unchanged, the panel says cancelled."""
    import bpy
    from image_to_3d.operators import job_runner

    from tests.blender_fixtures import datablock_names

    monkeypatch.setattr(job_runner, "blocks_until_done", lambda: False)
    real_settings.prompt = "a red blob"
    before = datablock_names()
    assert bpy.ops.image_to_3d.generate() == {"FINISHED"}
    job = job_runner.current_job()
    reached = threading.Event()
    original = job.control.on_progress

    def watch(progress):
        original(progress)
        if progress.stage == "stage1":
            reached.set()

    job.control.on_progress = watch
    assert reached.wait(120)
    assert bpy.ops.image_to_3d.cancel() == {"FINISHED"}
    job.join(60)
    assert not job.alive and job.thread is not None and not job.thread.is_alive()
    assert job_runner.poll_running_job() is None
    assert datablock_names() == before
    assert real_settings.stage == "cancelled" and real_settings.last_exit_code == 130
    assert real_settings.last_message.startswith("cancelled") and real_settings.last_error == ""
    record("cancel: stage1", "Blender Generate", "Cancel button while stage1 runs", 130, real_settings.last_message,
           "scene unchanged", "worker thread ended; panel stage 'cancelled'")


def _commit_fails_on_second_move(monkeypatch, out):
    real_replace, moves = os.replace, []

    def replace(src, dst, *args, **kwargs):
        if str(dst).startswith(str(out)) and ".partial" not in str(dst) and ".previous" not in str(dst):
            moves.append(dst)
            if len(moves) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    return moves


def test_full_disk_mid_commit_keeps_the_earlier_files(warm_job, tmp_path, capsys, monkeypatch):
    from backend.atomic_output import MANIFEST_NAME, AtomicOutputDir

    out = tmp_path / "out"
    with AtomicOutputDir(out) as staging:  # an earlier result of this tool, so the new run may replace it
        (staging / "model.glb").write_bytes(b"earlier result")
    (out / "notes.txt").write_text("mine")
    moves = _commit_fails_on_second_move(monkeypatch, out)
    argv = generate_argv(warm_job, out, "a red blob")
    code, stderr = cli(argv, capsys)
    line = stderr.strip()
    assert len(moves) == 2 and code == 2 and line.startswith("error: disk full while writing")
    assert files_in(out) == [MANIFEST_NAME, "model.glb", "notes.txt"]
    assert (out / "model.glb").read_bytes() == b"earlier result"
    record("full disk: mid-commit", "CLI generate", command_text(argv), code, line[7:],
           "only the folder's earlier files (unchanged)", "OSError(ENOSPC) on the 2nd os.replace")


def test_full_disk_while_staging_is_one_line(warm_job, tmp_path, capsys, monkeypatch):
    import backend.export

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(backend.export, "export_obj", disk_full)
    out = tmp_path / "out"
    argv = generate_argv(warm_job, out, "a red blob")
    code, stderr = cli(argv, capsys)
    line = stderr.strip()
    assert code == 2 and line.startswith("error: disk full while writing") and "\n" not in line
    assert files_in(out) == [] and not out.exists()
    record("full disk: while staging", "CLI generate", command_text(argv), code, line[7:], "none",
           "OSError(ENOSPC) writing model.obj")


@pytest.mark.parametrize("debug", [False, True])
def test_unexpected_exception_is_one_line_unless_debug(warm_job, tmp_path, capsys, monkeypatch, debug):
    import backend.mesh

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(backend.mesh, "unwrap_uvs", bug)
    out = tmp_path / "out"
    argv = generate_argv(warm_job, out, "a red blob", *(["--debug"] if debug else []))
    code, stderr = cli(argv, capsys)
    assert code == 1 and files_in(out) == []
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: internal error (ZeroDivisionError: a bug); rerun with --debug")
    assert ("Traceback (most recent call last)" in stderr) == debug
    assert debug or len(stderr.strip().splitlines()) == 1
    case = "bugs: unexpected exception" + (" with --debug" if debug else "")
    record(case, "CLI generate", command_text(argv), code, stderr.strip().splitlines()[0][:60] if debug else last[7:],
           "none", "traceback printed" if debug else "no traceback")
