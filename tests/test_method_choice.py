"""The generation method (dreamgaussian | quick | quick+refine) through the front door: declared once in
backend.choices, a field of api.GenerateRequest, the CLI flag, the panel's menu, batch CSV rows and the job
history's "repeat" (issues 16 and 22)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from backend import api, choices
from backend.errors import BadInputError, ModelsUnavailableError

REPO_ROOT = Path(__file__).resolve().parents[1]
METHOD_NAMES = ["dreamgaussian", "quick", "quick+refine"]


def test_methods_are_declared_once_for_every_front_end():
    from backend.cli import build_parser
    from backend.quick.config import QUICK_PRESETS

    declared = api.declared_choices()
    assert choices.names(declared.methods) == METHOD_NAMES
    assert declared.default_method == "dreamgaussian" == api.GenerateRequest("x.png", "cup", "out").method
    generate_parser = build_parser()._subparsers._group_actions[0].choices["generate"]
    method_flag = next(action for action in generate_parser._actions if "--method" in action.option_strings)
    assert list(method_flag.choices) == METHOD_NAMES and method_flag.default == declared.default_method
    # the quick presets answer to the same preset names as the DreamGaussian ones
    assert list(QUICK_PRESETS) == choices.names(choices.PRESETS + choices.TEST_PRESETS)


def test_no_backend_module_imports_a_private_name_of_another():
    """In the backend, what two recipes share is a named public function (backend/generate/job_steps.py), not
    ``_object_mask`` reached into from outside."""
    offenders = []
    for path in (REPO_ROOT / "backend").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                offenders += [f"{path.relative_to(REPO_ROOT)}: {alias.name}" for alias in node.names
                              if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert offenders == []


def test_triposr_comes_from_the_catalogs_repository(monkeypatch, tmp_path):
    from backend.models import catalog, hub
    from backend.models.triposr import load_triposr

    monkeypatch.setenv(hub.LOCAL_DIR_ENV, str(tmp_path))  # an empty folder: nothing local
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelsUnavailableError, match=catalog.TRIPOSR_REPO_ID):
        load_triposr("real", "cpu")
    assert catalog.MODEL_REPOS["triposr"] == catalog.TRIPOSR_REPO_ID == "stabilityai/TripoSR"


def test_batch_csv_method_column(tmp_path):
    from backend.batch.rows import read_rows

    csv_path = tmp_path / "rows.csv"
    csv_path.write_text("image,prompt,method\na.png,cup,quick\nb.png,mug,\nc.png,pot,quick+refine\n")
    assert [row.method for row in read_rows(csv_path)] == ["quick", "dreamgaussian", "quick+refine"]
    csv_path.write_text("image,prompt\na.png,cup\n")  # the column is optional
    assert read_rows(csv_path)[0].method == "dreamgaussian"
    csv_path.write_text("image,prompt,method\na.png,cup,quick\nb.png,mug,fastest\n")
    with pytest.raises(BadInputError, match=r"row 2 .*unknown method 'fastest'"):
        read_rows(csv_path)


def test_batch_row_runs_its_method_and_a_changed_method_is_redone(tmp_path, monkeypatch):
    from backend.batch.rows import BatchRow, RowSettings
    from backend.batch.run_row import run_row

    requests = []

    def fake_generate(request, control=None):
        requests.append(request)
        out = Path(request.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.glb").write_bytes(b"glTF")
        (out / "job.json").write_text(json.dumps({"method": request.method}))

    monkeypatch.setattr(api, "generate", fake_generate)
    row = BatchRow(index=1, image="a.png", prompt="cup", method="quick")
    assert run_row(row, tmp_path, RowSettings(models="tiny", device="cpu")).status == "done"
    assert requests[-1].method == "quick"
    assert run_row(row, tmp_path, RowSettings(models="tiny", device="cpu")).status == "skipped"  # resumed
    again = BatchRow(index=1, image="a.png", prompt="cup", method="dreamgaussian")
    assert run_row(again, tmp_path, RowSettings(models="tiny", device="cpu")).status == "done"  # not the quick result
    assert requests[-1].method == "dreamgaussian"


def test_history_written_before_the_method_choice_repeats_as_dreamgaussian(addon_package, tmp_path):
    from image_to_3d.operators.job_history import HistoryEntry, read_history, record_job

    (tmp_path / "history.json").write_text(json.dumps({"jobs": [
        {"out_dir": "old", "prompt": "cup", "image_path": "p.png", "status": "done", "finished_at": "then"}]}))
    assert read_history(tmp_path)[0].method == "dreamgaussian"
    record_job(tmp_path, HistoryEntry("new", "cup", "p.png", "done", "now", method="quick"))
    assert [entry.method for entry in read_history(tmp_path)] == ["quick", "dreamgaussian"]


def test_panel_method_menu_is_the_declared_choice_and_reaches_the_request(addon_settings, tmp_path):
    import bpy
    from image_to_3d.operators.backend_jobs import generate_request

    menu = bpy.types.Scene.bl_rna.properties["image_to_3d"].fixed_type.properties["method"]
    assert [(item.identifier, item.name, item.description) for item in menu.enum_items] == \
        choices.enum_items(choices.METHODS)
    assert menu.default == choices.DEFAULT_METHOD == addon_settings.method
    addon_settings.method = "quick"
    config = addon_settings.to_config()
    assert config.method == config.request.method == "quick"
    assert generate_request(config, tmp_path / "job").method == "quick"


def test_local_triposr_folder_is_found_where_the_backend_looks(addon_settings, tmp_path, monkeypatch):
    import bpy
    from image_to_3d.backend.models import hub
    from image_to_3d.backend.models.catalog import TRIPOSR_REPO_ID
    from image_to_3d.operators.backend_jobs import job_environment

    prefs = bpy.context.preferences.addons["image_to_3d"].preferences
    triposr = tmp_path / "my triposr"
    triposr.mkdir()
    prefs.model_source = "local"
    prefs.triposr_dir = str(triposr)
    env = job_environment(addon_settings.to_config().options)
    monkeypatch.setenv(hub.LOCAL_DIR_ENV, env[hub.LOCAL_DIR_ENV])
    assert hub.local_model_dir(TRIPOSR_REPO_ID).resolve() == triposr.resolve()
