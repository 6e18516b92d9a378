"""``eval-recon --phase render-gt|fit|score``: the loop split into phases that exchange files in the output folder.

The fit runs on a GPU host with no bpy, the two Blender phases here; so each phase must run alone from the files
alone, give the numbers ``--phase all`` gives, refuse (exit 2, one line) when its inputs are missing, and the fit
must neither import bpy nor start Blender.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from test_eval_recon_loop import TINY, oracle

from backend.errors import BadInputError
from backend.eval_recon.config import SMALL
from backend.eval_recon.evaluate import builtin_objects, run_eval_recon
from backend.eval_recon.reconstruction import ReconstructionResult

# the real reconstruction, cut down to seconds on the CPU
QUICK_FIT = replace(TINY, name="quick-fit", stage1_steps=20, stage1_num_init=300, views_per_step=None,
                    grid_resolution=32, texture_size=64, bake_size=32, chamfer_points=2000)


def oracle_with_gaussians(views, config, glb_path, **kwargs):
    """The true surface as the GLB, plus Gaussians on its vertices: exercises the gaussian_psnr/iou files too."""
    import torch

    from backend.gaussians.gaussians import Gaussians

    result = oracle(views, config, glb_path, **kwargs)
    means = torch.from_numpy(np.asarray(result.vertices[::4], dtype=np.float32))
    count = means.shape[0]
    gaussians = Gaussians(means=means, scales=torch.full((count, 3), 0.03),
                          quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(count, 1),
                          opacities=torch.full((count,), 0.9), colors=torch.full((count, 3), 0.5))
    return ReconstructionResult(result.glb_path, result.vertices, result.faces, count, gaussians,
                                {"oracle": 0.25})


def _without_times(document: dict) -> dict:
    document = dict(document, wall_time_s=None)
    document["objects"] = {name: dict(scores, timings=None) for name, scores in document["objects"].items()}
    return document


@pytest.mark.slow
def test_phases_run_one_by_one_give_the_numbers_of_phase_all(tmp_path):
    pytest.importorskip("trimesh")
    suzanne = builtin_objects(["suzanne"])
    whole = run_eval_recon(TINY, suzanne, tmp_path / "all", device="cpu", rebuild=oracle_with_gaussians)

    split = tmp_path / "split"
    rendered = run_eval_recon(TINY, suzanne, split, phase="render-gt")
    assert rendered.objects == ["suzanne"] and (split / "manifest.json").is_file()
    assert (split / "suzanne/ground_truth/heldout-02.png").is_file() and not (split / "suzanne/model.glb").exists()
    with pytest.raises(BadInputError, match="run --phase fit first"):
        run_eval_recon(None, None, split, phase="score")
    with pytest.raises(BadInputError, match="rendered for size 'tiny', not 'small'"):
        run_eval_recon(SMALL, None, split, phase="fit", device="cpu", rebuild=oracle_with_gaussians)

    fitted = run_eval_recon(None, None, split, phase="fit", device="cpu", rebuild=oracle_with_gaussians)
    assert fitted.fits["suzanne"].timings == {"oracle": 0.25} and fitted.fits["suzanne"].has_gaussian_views
    for name in ("model.glb", "model_surface.npz", "gaussian_views.npz", "gaussians.safetensors", "fit.json"):
        assert (split / "suzanne" / name).is_file(), name
    scored = run_eval_recon(TINY, None, split, phase="score")

    assert scored.objects[0].gaussian_psnr is not None and scored.objects[0].gaussian_iou > 0.3
    assert scored.objects[0].timings.keys() == whole.objects[0].timings.keys()
    assert [replace(o, timings={}) for o in scored.objects] == [replace(o, timings={}) for o in whole.objects]
    split_doc = json.loads((split / "metrics.json").read_text())
    all_doc = json.loads((tmp_path / "all/metrics.json").read_text())
    assert _without_times(split_doc) == _without_times(all_doc)
    assert (split / "contact_sheet.png").is_file() and (split / "suzanne/ours/heldout-02.png").is_file()
    assert not list(split.rglob(".partial-*")) and not list((tmp_path / "all").rglob(".partial-*"))


FIT_WITHOUT_BLENDER = """
import sys
import backend.eval_recon.blender_job as blender_job

def refuse(*args, **kwargs):
    raise SystemExit("the fit phase started Blender")

blender_job.run_blender_job = refuse
from backend.cli import main
code = main(["eval-recon", "--phase", "fit", "--device", "cpu", "-q", "--out", sys.argv[1]])
imported = sorted(m for m in ("bpy", "mathutils", "bmesh") if m in sys.modules)
print("imported from Blender:", imported)
sys.exit(code or (9 if imported else 0))
"""


@pytest.mark.slow
def test_fit_phase_uses_neither_bpy_nor_blender(repo_root, tmp_path):
    """bpy is installed here, so a module that imported it would leave it in sys.modules."""
    pytest.importorskip("trimesh")
    out = tmp_path / "recon"
    run_eval_recon(QUICK_FIT, builtin_objects(["torus"]), out, phase="render-gt")
    done = subprocess.run([sys.executable, "-c", FIT_WITHOUT_BLENDER, str(out)], cwd=repo_root,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-1000:] + done.stderr[-2000:]
    assert "imported from Blender: []" in done.stdout
    fit = json.loads((out / "torus/fit.json").read_text())
    assert fit["gaussian_count"] > 0 and fit["mesh_faces"] > 0 and set(fit["timings"]) >= {"stage1", "bake"}
    with np.load(out / "torus/gaussian_views.npz") as views:
        assert views["rgb"].shape == (3, 32, 32, 3) and views["alpha"].dtype == np.float32

    scored = run_eval_recon(None, None, out, phase="score")  # and Blender scores the GPU-side result here
    torus = scored.objects[0]
    assert torus.name == "torus" and torus.mesh_faces == fit["mesh_faces"] and 0.0 < torus.iou <= 1.0
    assert torus.gaussian_psnr is not None and np.isfinite(torus.chamfer_fraction)


@pytest.mark.parametrize("phase", ["fit", "score"])
def test_later_phase_without_ground_truth_is_exit_2_one_line(repo_root, tmp_path, phase):
    out = tmp_path / "never-rendered"
    done = subprocess.run([sys.executable, "-m", "backend", "eval-recon", "--phase", phase, "--out", str(out)],
                          cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: no ground truth in {out} (manifest.json missing): run --phase render-gt first"]
    assert not out.exists()


def test_object_option_is_refused_by_later_phases(repo_root, tmp_path):
    done = subprocess.run([sys.executable, "-m", "backend", "eval-recon", "--phase", "fit", "--object",
                           str(tmp_path / "a.glb"), "--out", str(tmp_path)], cwd=repo_root, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "--object is for --phase render-gt or all" in done.stderr


def _manifest_of(config, out):
    from backend.eval_recon.layout import MANIFEST_NAME, Manifest, write_json

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / MANIFEST_NAME, Manifest(config, [], 1.0).to_json())


def test_later_phases_take_fit_settings_from_config_and_only_the_ground_truth_from_the_manifest(tmp_path):
    """A change to a size's fit settings needs no new ground truth; a change to how it renders does."""
    from backend.eval_recon.config import FULL
    from backend.eval_recon.layout import read_manifest

    _manifest_of(replace(FULL, stage1_steps=FULL.stage1_steps // 2, grid_resolution=64), tmp_path / "old-fit")
    assert read_manifest(tmp_path / "old-fit").config == FULL
    assert read_manifest(tmp_path / "old-fit", FULL).config == FULL

    _manifest_of(replace(FULL, image_size=FULL.image_size // 2), tmp_path / "old-renders")
    with pytest.raises(BadInputError, match=r"image_size 128 → 256\): run --phase render-gt again"):
        read_manifest(tmp_path / "old-renders")
    with pytest.raises(BadInputError, match="other ground-truth settings"):
        read_manifest(tmp_path / "old-renders", FULL)

    _manifest_of(TINY, tmp_path / "own-size")  # a size config.py does not define keeps the manifest's settings
    assert read_manifest(tmp_path / "own-size").config == TINY


def test_score_refuses_a_fit_made_with_other_fit_settings(tmp_path):
    from backend.eval_recon.config import FULL, fit_settings
    from backend.eval_recon.layout import FitRecord, check_fit_settings

    record = FitRecord(10, 20, False, 1.0, {}, json.loads(json.dumps(fit_settings(FULL))))
    check_fit_settings(record, replace(FULL, chamfer_points=10), tmp_path)  # scoring settings are the score's own
    check_fit_settings(replace(record, config=None), replace(FULL, stage1_steps=1), tmp_path)  # older fit.json
    with pytest.raises(BadInputError, match=r"other settings than size 'full' has now \(stage1_steps\): run --phase fit"):
        check_fit_settings(record, replace(FULL, stage1_steps=1), tmp_path)
    # a setting added after the fit counts as made at its default: passes at the default, refused at another value
    older = replace(record, config={k: v for k, v in record.config.items() if k != "iso_criterion"})
    check_fit_settings(older, FULL, tmp_path)
    with pytest.raises(BadInputError, match=r"\(iso_criterion\)"):
        check_fit_settings(older, replace(FULL, iso_criterion="silhouette+depth"), tmp_path)
