"""backend.api, the one door: torch-free requests, one seed, one error description, the loaded-model cache,
and the add-on using what the backend returned (issue 16's defects, each with a regression test)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backend import api, choices
from backend.errors import BadInputError, ModelsUnavailableError, OutOfGPUMemoryError, describe_error

REPO_ROOT = Path(__file__).resolve().parents[1]


# What a front end may import to build a request or read a preset. Blender ships numpy, so numpy is allowed;
# the heavy pipeline modules are not.
TORCH_FREE_MODULES = (
    "backend.api", "backend.choices", "backend.generate.request", "backend.generate.presets",
    "backend.segment.config", "backend.models.catalog", "backend.stage1_config", "backend.gaussians.learning_rates",
    "backend.gaussians.densify_config", "backend.guidance.config", "backend.mesh.mesh_config",
    "backend.mesh.texture_config", "backend.quick.config", "backend.quick.field_mesh_config",
    "backend.quick.refine_config",
)
FORBIDDEN_MODULES = ("torch", "transformers", "diffusers", "trimesh", "mcubes", "skimage", "xatlas", "gsplat")


@pytest.mark.parametrize("module", TORCH_FREE_MODULES)
def test_request_config_and_preset_modules_import_without_torch(module):
    code = (f"import sys; import {module}; "
            f"print(sorted(m for m in {FORBIDDEN_MODULES!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"importing {module} loads {out.stdout.strip()}"


def test_presets_build_without_torch_and_keep_their_defaults():
    """The presets are real objects in a torch-free process, and equal to the ones the pipeline sees."""
    from backend.generate.presets import PRESETS

    code = ("import sys; from backend.generate.presets import PRESETS; from backend.quick.config import QUICK_PRESETS; "
            "print(repr(PRESETS)); print(repr(QUICK_PRESETS)); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    presets, quick_presets, torch_loaded = out.stdout.strip().splitlines()
    import backend.stage1  # noqa: F401  (the stage modules loaded too: the configs must not change)
    from backend.quick.config import QUICK_PRESETS

    assert (presets, quick_presets, torch_loaded) == (repr(PRESETS), repr(QUICK_PRESETS), "False")


@pytest.mark.parametrize("package", ["backend.mesh", "backend.gaussians"])
def test_lazy_package_names_stay_what_they_name_after_every_submodule_loads(package):
    """Regression: a lazily exported name equal to a submodule's (``refine_texture``) turned into the module."""
    import importlib
    import pkgutil
    import types

    root = importlib.import_module(package)
    for info in pkgutil.iter_modules(root.__path__):
        importlib.import_module(f"{package}.{info.name}")
    assert [name for name in root.__all__ if isinstance(getattr(root, name), types.ModuleType)] == []


def test_every_declared_preset_has_a_pipeline_config():
    from backend.generate.presets import PRESETS

    assert list(PRESETS) == choices.names(choices.PRESETS + choices.TEST_PRESETS)
    declared = api.declared_choices()
    assert declared.default_preset in choices.names(declared.presets)
    assert declared.default_sam_variant == declared.sam_variants[0].name


@pytest.mark.parametrize("seed", [-1, 2**64, 2**63, 1.5, True])
def test_unusable_seeds_are_bad_input(seed):
    with pytest.raises(BadInputError, match="--seed"):
        api.GenerateRequest(image_path="x.png", prompt="cup", out_dir="out", seed=seed)


def test_negative_seed_on_the_command_line_exits_2(tmp_path, bundled_photo, capsys):
    """Regression: a negative --seed ended as exit 1 'internal error' (numpy refused it deep in the job)."""
    from backend.cli import main

    code = main(["generate", str(bundled_photo), "--prompt", "cup", "--seed", "-3", "--out", str(tmp_path / "o")])
    assert code == 2
    assert capsys.readouterr().err.strip().startswith("error: --seed must be")


def test_one_seed_drives_guidance_and_texture(monkeypatch, tmp_path, bundled_photo):
    """Regression: GuidanceConfig.seed (SDS noise) and TextureConfig.seed (stage-2 views) stayed 0."""
    import numpy as np

    import backend.guidance
    import backend.models.zero123
    from backend.images import load_image

    seen = {}

    class Stop(Exception):
        pass

    def fake_guidance(models, config):
        seen["guidance"] = config.seed
        raise Stop

    monkeypatch.setattr(backend.models.zero123, "load_zero123_cached", lambda *a, **k: None)
    monkeypatch.setattr(backend.guidance, "Zero123Guidance", fake_guidance)
    image = load_image(bundled_photo)
    mask = np.zeros(image.rgb.shape[:2], bool)
    mask[100:300, 200:400] = True
    request = api.GenerateRequest(image_path=str(bundled_photo), prompt="cup", out_dir=str(tmp_path / "o"),
                                  preset="smoke", seed=1234, mask=mask, device="cpu")
    with pytest.raises(Stop):
        api.generate(request)
    assert seen["guidance"] == 1234

    from backend.generate.presets import pipeline_config, seeded

    config = seeded(pipeline_config("smoke"), 1234)
    assert (config.guidance.seed, config.texture.seed) == (1234, 1234)


def test_describe_error_gives_each_failure_its_code_and_one_line():
    assert describe_error(BadInputError("no photo")) == (2, "no photo")
    assert describe_error(ModelsUnavailableError("no weights"))[0] == 4
    assert describe_error(KeyboardInterrupt()) == (130, "cancelled")
    code, message = describe_error(ZeroDivisionError("a bug"))
    assert (code, message) == (1, "internal error (ZeroDivisionError: a bug)")
    import torch

    assert describe_error(torch.cuda.OutOfMemoryError("oom"), "stage1") == (5, str(OutOfGPUMemoryError("stage1")))


def test_model_cache_key_follows_the_local_folder(tmp_path, monkeypatch):
    """Regression: the cache key left out the local folder, so a changed folder was ignored until restart."""
    from backend.models import hub
    from backend.models.catalog import SAM_REPO_ID

    first, second = tmp_path / "sam-a", tmp_path / "sam-b"
    for folder in (first, second):
        folder.mkdir()
    keys = []
    for target in (first, first, second):
        root = Path(os.path.join(tmp_path, f"links-{len(keys)}"))
        root.mkdir()
        os.symlink(target, root / SAM_REPO_ID.replace("/", "--"), target_is_directory=True)
        monkeypatch.setenv(hub.LOCAL_DIR_ENV, str(root))
        keys.append(hub.model_source(SAM_REPO_ID))
    assert keys[0] == keys[1] == str(first.resolve())  # a fresh link to the same folder reuses the loaded model
    assert keys[2] == str(second.resolve())
    monkeypatch.delenv(hub.LOCAL_DIR_ENV)
    assert hub.model_source(SAM_REPO_ID) == ""


def test_keep_models_loaded_off_empties_the_model_cache(addon_package):
    """Regression: the add-on's release after a job did not clear the loaded-model cache."""
    from image_to_3d.backend.models.loaded import ModelKey, clear_loaded_models, get_or_load, loaded_keys
    from image_to_3d.operators import backend_jobs
    from image_to_3d.properties.job_config import AddonOptions

    for keep, expected in ((True, 1), (False, 0)):
        clear_loaded_models()
        get_or_load(ModelKey("sam", "tiny", "tiny", "cpu", "float32"), object)
        with backend_jobs._explained_model_errors(AddonOptions(keep_models_loaded=keep)):
            pass
        assert len(loaded_keys()) == expected


def test_segment_preview_uses_the_files_the_backend_wrote(addon_package, tmp_path, bundled_photo):
    """Regression: the add-on rebuilt mask paths with slugify, so "a cup" and "A Cup!" (a-cup, a-cup-2) both
    loaded a-cup."""
    from image_to_3d.operators import backend_jobs
    from image_to_3d.properties.job_config import AddonOptions, JobConfig
    from PIL import Image

    photo = tmp_path / "photo.png"
    with Image.open(bundled_photo) as image:
        image.convert("RGB").resize((64, 48)).save(photo)
    config = JobConfig.build(str(photo), ("a cup", "A Cup!"), mode="fast", preset="smoke", seed=0,
                             options=AddonOptions(device="cpu"), make_preview_plane=False)
    preview = backend_jobs.build_segment_work(config, tmp_path / "seg")(api.JobControl())
    paths = [Path(item.mask_path) for item in preview.prompts]
    assert [p.name for p in paths] == ["a-cup.mask.png", "a-cup-2.mask.png"]
    assert all(p.is_file() for p in paths)


def test_photo_match_reads_the_backends_reference_camera(addon_package, monkeypatch):
    """Regression: photo_match kept its own copy of the reference camera's field of view and radius."""
    from image_to_3d.backend import camera
    from image_to_3d.operators.photo_match import photo_match_lens

    before = photo_match_lens((10.0, 20.0, 100.0), (200, 150))["lens"]
    monkeypatch.setattr(camera, "REFERENCE_FOVY_DEG", 30.0)
    after = photo_match_lens((10.0, 20.0, 100.0), (200, 150))["lens"]
    assert after > before  # a narrower field of view is a longer lens


@pytest.mark.parametrize("body,message", [("image,prompt,preset\nx.png,cup,ultra\n", "unknown preset 'ultra'"),
                                          ("image,prompt,seed\nx.png,cup,-1\n", "--seed must be")])
def test_batch_csv_rules_refuse_bad_rows_before_any_work(tmp_path, body, message):
    """Regression: backend/batch/rows.py let an unknown preset or a negative seed through (scripts/batch.py, with
    its own reader, refused the preset): one reader, one set of rules."""
    from backend.batch.rows import read_rows

    (tmp_path / "rows.csv").write_text(body)
    with pytest.raises(BadInputError, match=message):
        read_rows(tmp_path / "rows.csv")


def test_the_texture_is_baked_in_one_place():
    """Regression: generate, bench and eval-recon each wired the bake (and baked different colours); now they
    all call backend.generate.stages.bake_gaussian_texture, the one caller of mesh.bake_texture."""
    callers = sorted(str(path.relative_to(REPO_ROOT)) for path in (REPO_ROOT / "backend").rglob("*.py")
                     if "bake_texture(" in path.read_text(encoding="utf-8") and path.name != "bake.py")
    assert callers == ["backend/generate/stages.py"]
    for tool in ("backend/generate/pipeline.py", "backend/bench.py", "backend/eval_recon/reconstruct.py"):
        assert "bake_gaussian_texture(" in (REPO_ROOT / tool).read_text(encoding="utf-8"), tool
