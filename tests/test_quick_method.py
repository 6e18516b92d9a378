"""``generate --method quick`` end to end through the CLI, on CPU with tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from tests.reliability_helpers import cli

QUICK = ["--method", "quick", "--preset", "smoke", "--models", "tiny", "--device", "cpu", "-q"]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def cutout_png(path: Path) -> Path:
    """An RGBA cut-out (no prompt needed): an orange disc on a transparent background."""
    yy, xx = np.mgrid[0:40, 0:56]
    rgba = np.zeros((40, 56, 4), np.uint8)
    disc = ((xx - 30) / 14.0) ** 2 + ((yy - 18) / 12.0) ** 2 < 1
    rgba[disc] = (230, 120, 30, 255)
    Image.fromarray(rgba, "RGBA").save(path)
    return path


def test_quick_method_writes_a_textured_glb_obj_and_job_json(tmp_path, capsys):
    out = tmp_path / "out"
    code, err = cli(["generate", cutout_png(tmp_path / "cutout.png"), "--out", out, *QUICK], capsys)
    assert code == 0, err
    job = json.loads((out / "job.json").read_text())
    assert job["method"] == "quick"
    assert job["models"] == "tiny" and "meaningless" in job["note"]
    from backend.models.mode import ModelMode
    from backend.models.triposr import triposr_provenance

    provenance = triposr_provenance(ModelMode.TINY)  # what quick+refine records: the same as the loaded model's
    assert {key: job["triposr"][key] for key in provenance} == provenance
    assert {"load_triposr", "preprocess", "triposr", "mesh", "uv_unwrap", "bake"} <= set(job["timings_s"])
    assert "stage1" not in job["timings_s"] and not (out / "gaussians.ply").exists()
    scene = trimesh.load(out / "model.glb")
    geometry = next(iter(scene.geometry.values()))
    assert len(geometry.faces) > 0
    material = geometry.visual.material
    texture = np.asarray(material.baseColorTexture)
    assert texture.shape[:2] == (64, 64)
    assert texture[..., :3].std() > 0  # the colour field varies: the bake wrote something
    assert (out / "model.obj").is_file() and (out / "mask.png").is_file()
    reference = np.asarray(Image.open(out / "reference.png"))
    assert reference.shape[:2] == (24, 24)  # the tiny model's input size: TripoSR's framing was used


def test_quick_method_keeps_the_output_contract(tmp_path, capsys, monkeypatch):
    """The user's own model.glb stops the quick job before TripoSR loads (exit 2, naming it, untouched); with
    --overwrite the job replaces it and writes only quick's declared names (no gaussians.ply) plus the manifest.
    """
    from backend.atomic_output import MANIFEST_NAME
    from backend.generate.pipeline import OUTPUT_NAMES as DREAMGAUSSIAN_NAMES
    from backend.quick.pipeline import OUTPUT_NAMES

    out = tmp_path / "out"
    out.mkdir()
    (out / "model.glb").write_bytes(b"the user's own file")
    argv = ["generate", cutout_png(tmp_path / "cutout.png"), "--out", out, *QUICK]
    import backend.quick.pipeline

    def no_model(*args, **kwargs):
        raise AssertionError("TripoSR loaded although the output folder holds the user's model.glb")

    with monkeypatch.context() as patch:
        patch.setattr(backend.quick.pipeline, "load_triposr_cached", no_model)
        code, err = cli(argv, capsys)
    assert code == 2 and "model.glb" in err, err
    assert (out / "model.glb").read_bytes() == b"the user's own file"
    code, err = cli([*argv, "--overwrite"], capsys)
    assert code == 0, err
    assert set(OUTPUT_NAMES) == set(DREAMGAUSSIAN_NAMES) - {"gaussians.ply"}
    assert {p.name for p in out.iterdir()} == set(OUTPUT_NAMES) | {MANIFEST_NAME}


def test_unknown_method_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:  # argparse's own usage error
        cli(["generate", cutout_png(tmp_path / "c.png"), "--out", tmp_path / "o", "--method", "fast"], capsys)
    assert info.value.code == 2
    assert "--method" in capsys.readouterr().err


def test_unknown_method_in_a_request_is_bad_input_before_any_work(tmp_path):
    from backend import api

    with pytest.raises(api.ImageTo3DError, match="unknown method 'fast'") as info:
        api.GenerateRequest(image_path=str(cutout_png(tmp_path / "c.png")), prompt=None, out_dir=str(tmp_path / "o"),
                            method="fast", models="tiny", device="cpu")
    assert api.describe_error(info.value)[0] == 2
    assert not (tmp_path / "o").exists()


def test_quick_refine_runs_stage_1_from_triposr_and_the_usual_mesh_and_stage_2(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["generate", cutout_png(tmp_path / "cutout.png"), "--out", out, "--method", "quick+refine",
            "--preset", "smoke", "--steps", "4", "--models", "tiny", "--device", "cpu", "-q"]
    code, err = cli(argv, capsys)
    assert code == 0, err
    job = json.loads((out / "job.json").read_text())
    assert job["method"] == "quick+refine"
    assert job["triposr"]["model"] == "triposr (tiny)" and job["triposr"]["licence"].startswith("MIT")
    assert {"triposr", "triposr_mesh", "gaussian_start", "stage1", "mesh", "bake", "stage2"} <= set(job["timings_s"])
    # an explicit --steps is kept (the 40 % cut of a preset's steps: test_quick_refine.py); SDS noise capped
    assert job["config"]["stage1"]["steps"] == 4 and job["config"]["guidance"]["t_max"] == 0.5
    assert (out / "gaussians.ply").is_file() and (out / "model.glb").is_file()


def test_quick_from_the_blender_panel_imports_a_textured_object(real_settings, tmp_path, monkeypatch):
    """The Generate button with Method = Quick: the real tiny-model backend, the object imported with its
    baked texture."""
    import bpy
    from image_to_3d.backend.quick import config as quick_config

    monkeypatch.setitem(quick_config.QUICK_PRESETS, "draft", quick_config.QUICK_PRESETS["smoke"])
    real_settings.image_path = str(cutout_png(tmp_path / "cutout.png"))
    real_settings.prompt = ""
    real_settings.method = "quick"
    assert next(iter(bpy.ops.image_to_3d.generate())) == "FINISHED", real_settings.last_error
    meshes = [obj for obj in bpy.data.objects if obj.type == "MESH"]
    assert len(meshes) == 1 and len(meshes[0].data.polygons) > 0
    images = [node.image for node in meshes[0].active_material.node_tree.nodes if node.type == "TEX_IMAGE"]
    assert images and tuple(images[0].size) == (64, 64)
    assert real_settings.stage == "done"
    jobs = list((tmp_path / "jobs").rglob("job.json"))  # the add-on's output folder (addon_settings)
    assert len(jobs) == 1 and json.loads(jobs[0].read_text())["method"] == "quick"


def test_quick_job_cancelled_at_the_bake_leaves_no_output(tmp_path):
    from backend.api import GenerateRequest, JobControl, generate
    from backend.errors import CancelledError

    control = JobControl()

    def on_progress(progress):
        if progress.stage == "bake":
            control.cancel()

    control.on_progress = on_progress
    out = tmp_path / "out"
    request = GenerateRequest(image_path=str(cutout_png(tmp_path / "c.png")), prompt=None, out_dir=str(out),
                              preset="smoke", models="tiny", device="cpu", method="quick")
    with pytest.raises(CancelledError):
        generate(request, control)
    assert not out.exists()
