"""scripts/batch.py (run as ``python scripts/batch.py -- …`` with the bpy module) and scripts/demo.py."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from tests.blender_fakes import USE_REAL_BACKEND, write_textured_box_glb

# Runs scripts/batch.py with the fake backend jobs installed first (the subprocess has no pytest fixtures).
_WITH_FAKES = """
import runpy, sys
sys.path[:0] = [{repo!r}, {scripts!r}]
from checkout_addon import import_addon
import_addon()
from image_to_3d.operators import backend_jobs
from tests.blender_fakes import install_fakes
install_fakes(backend_jobs)
sys.argv = [{script!r}] + sys.argv[1:]
runpy.run_path({script!r}, run_name="__main__")
"""


def _run_batch(repo_root: Path, *args: str) -> subprocess.CompletedProcess:
    script = str(repo_root / "scripts" / "batch.py")
    if USE_REAL_BACKEND:
        command = [sys.executable, script, "--", *args]
    else:
        code = _WITH_FAKES.format(repo=str(repo_root), scripts=str(repo_root / "scripts"), script=script)
        command = [sys.executable, "-c", code, "--", *args, "--in-process"]  # the fakes live in this process
    return subprocess.run(command, cwd=repo_root, capture_output=True, text=True, env=dict(os.environ), timeout=300)


def _object_names(blend: Path) -> list[str]:
    import bpy

    with bpy.data.libraries.load(str(blend)) as (data_from, _):
        return list(data_from.objects)


def test_batch_csv_with_one_bad_row_fails_but_saves_the_good_object(repo_root, small_photo, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text(f"image,prompt,preset,seed,method\n{small_photo},a coffee cup,draft,3,quick\n"
                    f"{tmp_path / 'gone.png'},a cup\n")
    blend = tmp_path / "scene.blend"
    result = _run_batch(repo_root, "--csv", str(rows), "--out", str(blend), "--device", "cpu",
                        "--jobs-dir", str(tmp_path / "jobs"))
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("row ")]
    assert len(lines) == 2, result.stdout
    assert lines[0].startswith("row 1: ok") and "'a coffee cup'" in lines[0]
    assert lines[1].startswith("row 2: FAILED (exit 2)") and "gone.png" in lines[1]
    assert _object_names(blend) == ["a coffee cup"]
    assert len(list((tmp_path / "jobs").iterdir())) >= 1  # the good row's job files went where asked
    history = json.loads((tmp_path / "jobs" / "history.json").read_text())["jobs"]
    assert [job["method"] for job in history if job["status"] == "done"] == ["quick"]  # the row's method column


def test_batch_rejects_a_bad_csv_with_exit_2(repo_root, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("image,prompt,preset\nphoto.png,a cup,ultra\n")
    result = _run_batch(repo_root, "--csv", str(rows), "--out", str(tmp_path / "x.blend"))
    assert result.returncode == 2
    assert "unknown preset 'ultra'" in result.stderr and "line 2" in result.stderr


@pytest.fixture
def demo(repo_root):
    return runpy.run_path(str(repo_root / "scripts" / "demo.py"))


def test_demo_imports_the_glb_and_saves_a_blend(demo, addon_package, tmp_path):
    glb = write_textured_box_glb(tmp_path / "model.glb")
    import bpy

    blend = demo["import_and_save"](glb, tmp_path / "scene.blend")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    try:
        assert [obj.name for obj in bpy.data.objects] == ["a coffee cup"]
        images = [image for image in bpy.data.images if image.users]
        assert images and all(image.packed_file is not None for image in images)
    finally:
        bpy.ops.wm.read_factory_settings(use_empty=True)


def test_demo_adds_nothing_to_the_generate_commands_models_missing_line(demo, tmp_path, capfd):
    """When the weights go missing past the demo's own check, the command's one line (which says what to do)
    stays the only one (issue 24: the demo used to repeat it in other words). The demo's own check:
    tests/test_command_line_mistakes.py."""
    said = "error: model ashawkey/zero123-xl-diffusers is not available offline; … IMAGE_TO_3D_MODELS=tiny"
    code = demo["main"]([sys.executable, "-c", f"import sys; print({said!r}, file=sys.stderr); sys.exit(4)"],
                        tmp_path)
    assert code == 4
    assert capfd.readouterr().err.strip().splitlines() == [said]


def test_demo_generate_command_runs_the_backend_cli(demo):
    command = demo["generate_command"](Path("out/demo"))
    assert command[1:4] == ["-m", "backend", "generate"]
    assert Path(command[4]).name == "coffee.png" and Path(command[4]).is_file()
    assert command[command.index("--prompt") + 1] == "a coffee cup"


def test_batch_goes_through_the_worker_blocks_and_keeps_the_exit_codes(repo_root, tmp_path):
    """No fakes: a real worker (Blender's Python) gets the row; a missing photo is exit 2 in one line."""
    script = str(repo_root / "scripts" / "batch.py")
    result = subprocess.run([sys.executable, script, "--", "--image", str(tmp_path / "gone.png"), "--prompt", "a cup",
                             "--out", str(tmp_path / "x.blend"), "--device", "cpu", "--backend-python", "blender",
                             "--jobs-dir", str(tmp_path / "jobs")], cwd=repo_root, capture_output=True, text=True,
                            env=dict(os.environ), timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("row 1:"))
    assert row.startswith("row 1: FAILED (exit 2)") and "gone.png" in row
    assert "Image to 3D: backend worker ready (Python" in result.stderr  # the job ran in the worker
