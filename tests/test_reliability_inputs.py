"""Issue 9, inputs: every awkward photo and prompt through `python -m backend generate` and Blender's Generate.

Failures must be one line, the documented exit code, no traceback and no output files; Blender must report the
same words (operator report and the panel's last_error) and leave the scene unchanged. Valid oddities must
work. Each test records its row of docs/reliability.md (see tests/reliability_table.py).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from tests import reliability_helpers as photos
from tests.blender_fixtures import datablock_names
from tests.reliability_helpers import cli, command_text, generate_argv
from tests.reliability_table import expect, files_in, record

CLI, BLENDER = "CLI generate", "Blender Generate"
FAILING = [  # (case, make photo, prompt, exit code, words the message must hold)
    ("input: missing file", photos.missing, "a red blob", 2, "image not found"),
    ("input: text file named .png", photos.text_as_png, "a red blob", 2, "not an image"),
    ("input: truncated JPEG", photos.truncated_jpeg, "a red blob", 2, "cannot read image"),
    ("input: 1×1 image", photos.one_pixel, "a red blob", 2, "image too small"),
    ("input: empty prompt (RGB photo)", None, "", 2, "a prompt is needed"),
    ("input: 2,000-character prompt", None, "x" * 2000, 2, "prompt too long"),
]
for _case, *_ in FAILING:
    expect(__name__, _case, CLI, BLENDER)
WORKING = ["input: 16-bit PNG", "input: CMYK JPEG", "input: palette PNG", "input: EXIF-rotated JPEG",
           "input: non-ASCII prompt"]
for _case in WORKING:
    expect(__name__, _case, CLI)
expect(__name__, "input: RGBA cut-out, no prompt", CLI, BLENDER)
expect(__name__, "input: non-ASCII prompt", BLENDER)
expect(__name__, "input: 12000×8000 photo", "library generate")
expect(__name__, "input: prompt that matches nothing", CLI, BLENDER)
expect(__name__, "input: output folder not writable", CLI, BLENDER)


@pytest.fixture(autouse=True, scope="module")
def _isolated_job_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMAGE_TO_3D_CACHE", str(tmp_path_factory.mktemp("job-cache")))
        yield


def _photo_for(make, folder):
    return make(folder) if make is not None else photos.write_png(folder / "photo.png")


def _error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in stderr, stderr
    return lines[0][len("error: "):]


@pytest.mark.parametrize(("case", "make", "prompt", "code", "words"), FAILING, ids=[c[0] for c in FAILING])
def test_bad_input_fails_in_one_line_with_no_files(tmp_path, capsys, case, make, prompt, code, words):
    photo, out = _photo_for(make, tmp_path), tmp_path / "out"
    argv = generate_argv(photo, out, prompt)
    exit_code, stderr = cli(argv, capsys)
    message = _error_line(stderr)
    assert exit_code == code and words in message
    assert files_in(out) == [] and not out.exists()
    record(case, CLI, command_text(argv), exit_code, message, files_in(out))


def _check_job_outputs(out, shape_hw=None) -> dict:
    names = set(files_in(out))
    assert {"model.glb", "model.obj", "model.mtl", "gaussians.ply", "job.json", "mask.png"} <= names, names
    assert not [n for n in names if ".partial" in n]
    if shape_hw is not None:
        with Image.open(out / "mask.png") as mask:
            assert (mask.height, mask.width) == shape_hw
    return json.loads((out / "job.json").read_text())


# The seed each case runs at. Tiny models have random weights, so whether stage 1's Gaussians reach the mesh
# threshold depends on the mask and the seed, not on the input under test: at seed 0 the non-ASCII prompt's
# mask fits Gaussians whose summed opacity peaks at 0.96 < 1, and the job rightly ends "no surface to mesh"
# (exit 2). Its prompt is handled correctly (segmentation, the mask's name, job.json), so it runs at seed 1.
@pytest.mark.parametrize(("case", "make", "prompt", "shape_hw", "seed"), [
    ("input: 16-bit PNG", photos.sixteen_bit_png, "a red blob", (32, 48), 0),
    ("input: CMYK JPEG", photos.cmyk_jpeg, "a red blob", (32, 48), 0),
    ("input: palette PNG", photos.palette_png, "a red blob", (32, 48), 0),
    ("input: EXIF-rotated JPEG", photos.exif_rotated_jpeg, "a red blob", (48, 32), 0),  # shown upright: 32 x 48
    ("input: non-ASCII prompt", None, "tasse à café ☕ 杯子", (32, 48), 1),
], ids=lambda v: v if isinstance(v, str) else None)
def test_unusual_but_valid_input_works(tmp_path, capsys, case, make, prompt, shape_hw, seed):
    photo, out = _photo_for(make, tmp_path), tmp_path / "out"
    argv = generate_argv(photo, out, prompt, *(["--seed", str(seed)] if seed else []))
    exit_code, stderr = cli(argv, capsys)
    assert exit_code == 0, stderr
    job = _check_job_outputs(out, shape_hw)
    assert job["prompt"] == prompt
    record(case, CLI, command_text(argv), exit_code, "", "model.glb, model.obj/.mtl/texture, gaussians.ply, "
           "job.json, mask.png, reference.png", f"mask.png {shape_hw[1]}×{shape_hw[0]} (W×H, as shown upright)")


def test_rgba_cutout_without_prompt_skips_segmentation(tmp_path, capsys, monkeypatch):
    import backend.segment

    def no_segmentation(*args, **kwargs):
        raise AssertionError("segmentation ran for an RGBA cut-out")

    monkeypatch.setattr(backend.segment, "segment_image", no_segmentation)
    photo, out = photos.rgba_cutout(tmp_path), tmp_path / "out"
    argv = generate_argv(photo, out, None)
    exit_code, stderr = cli(argv, capsys)
    assert exit_code == 0, stderr
    job = _check_job_outputs(out, (32, 48))
    assert job["prompt"] is None and "segment" not in job["timings_s"]
    with Image.open(photo) as img, Image.open(out / "mask.png") as mask:
        assert np.array_equal(np.asarray(mask) > 127, np.asarray(img)[..., 3] >= 128)  # the photo's own alpha
    record("input: RGBA cut-out, no prompt", CLI, command_text(argv), exit_code, "", "all outputs",
           "segmentation never called; mask.png = the alpha channel")


def test_huge_photo_segments_and_preprocesses(tmp_path):
    """12000 x 8000: load, segmentation and preprocess run at full size; the job is then cancelled at
    load_guidance to keep the test short (the later stages only ever see the 64-px reference)."""
    from backend.errors import CancelledError
    from backend.generate import GenerateRequest, generate
    from backend.job_cache import JobCache
    from backend.job_control import JobControl

    photo, out = photos.huge_jpeg(tmp_path), tmp_path / "out"
    control, seen = JobControl(), []

    def watch(progress):
        seen.append((progress.stage, progress.fraction))
        if progress.stage == "load_guidance":
            control.cancel()

    control.on_progress = watch
    request = GenerateRequest(str(photo), "a red blob", str(out), preset="smoke", models="tiny", device="cpu")
    with pytest.raises(CancelledError):
        generate(request, control)
    assert ("segment", 1.0) in seen and ("preprocess", 1.0) in seen
    masks = list(JobCache().root.glob("*/mask.png"))
    with warnings.catch_warnings():  # 96 Mpx is above Pillow's bomb warning, below its limit
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        mask = Image.open(max(masks, key=lambda p: p.stat().st_mtime))
        assert mask.size == (12000, 8000)
        mask.close()
    record("input: 12000×8000 photo", CLI.replace("CLI", "library"), "generate(huge.jpg, 'a red blob')", "0 (to "
           "preprocess)", "", "none (cancelled at load_guidance on purpose)",
           "segmentation + preprocess done at full size; cached mask 12000×8000")


def test_prompt_that_matches_nothing_is_exit_3(tmp_path, capsys, monkeypatch):
    from backend.segment import api

    monkeypatch.setattr(api, "compute_heatmaps", _empty_heatmaps(api.compute_heatmaps))
    photo, out = photos.write_png(tmp_path / "photo.png"), tmp_path / "out"
    argv = generate_argv(photo, out, "a unicorn")
    exit_code, stderr = cli(argv, capsys)
    message = _error_line(stderr)
    assert exit_code == 3 and "nothing in the image matched 'a unicorn'" in message
    assert not out.exists()
    record("input: prompt that matches nothing", CLI, command_text(argv), exit_code, message, files_in(out))


def _empty_heatmaps(compute):
    def empty(*args, **kwargs):
        return compute(*args, **kwargs) * 0.0

    return empty


def test_output_folder_not_writable_fails_before_any_work(tmp_path, capsys, monkeypatch):
    """Root ignores permission bits, so the folder is put under a regular file: mkdir fails for root too."""
    from backend.models import loaded

    monkeypatch.setattr(loaded, "get_or_load", lambda *a: pytest.fail("models were loaded"))
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    photo, out = photos.write_png(tmp_path / "photo.png"), blocker / "sub"
    argv = generate_argv(photo, out, "a red blob")
    exit_code, stderr = cli(argv, capsys)
    message = _error_line(stderr)
    assert exit_code == 2 and "cannot create output folder" in message and "is a file" in message
    assert blocker.read_text() == "a file, not a folder"
    record("input: output folder not writable", CLI, command_text(argv), exit_code, message, "none",
           "fails before loading any model")


# --- Blender: the same words in the report and the panel, the scene unchanged --------------------------------

def _blender_generate(settings) -> tuple[str, str]:
    """Run the operator (background mode); returns (result, the report's message or '')."""
    import bpy

    try:
        return next(iter(bpy.ops.image_to_3d.generate())), ""
    except RuntimeError as exc:  # bpy raises the operator's ERROR report
        text = str(exc).strip()
        return "CANCELLED", text.split(":", 1)[1].strip() if text.startswith("Error:") else text


@pytest.mark.parametrize(("case", "make", "prompt", "code", "words"), FAILING, ids=[c[0] for c in FAILING])
def test_blender_reports_the_same_words_and_changes_nothing(real_settings, tmp_path, capsys, case, make, prompt,
                                                            code, words):
    photo = _photo_for(make, tmp_path)
    _, cli_err = cli(generate_argv(photo, tmp_path / "cli-out", prompt), capsys)
    real_settings.image_path, real_settings.prompt = str(photo), prompt
    before = datablock_names()
    result, report = _blender_generate(real_settings)
    assert result == "CANCELLED" and datablock_names() == before
    assert report == real_settings.last_error == _error_line(cli_err)
    assert real_settings.last_exit_code == code and real_settings.stage == "failed"
    record(case, BLENDER, "Generate button", real_settings.last_exit_code, report, "scene unchanged",
           "report == panel last_error == CLI message")


def test_blender_nothing_matched_and_unwritable_output(real_settings, tmp_path, monkeypatch):
    import bpy
    from image_to_3d.backend.segment import api

    real_settings.image_path = str(photos.write_png(tmp_path / "photo.png"))
    real_settings.prompt = "a unicorn"
    before = datablock_names()
    with monkeypatch.context() as mp:
        mp.setattr(api, "compute_heatmaps", _empty_heatmaps(api.compute_heatmaps))
        result, report = _blender_generate(real_settings)
    assert result == "CANCELLED" and datablock_names() == before and real_settings.last_exit_code == 3
    assert report == real_settings.last_error and report.startswith("nothing in the image matched 'a unicorn'")
    record("input: prompt that matches nothing", BLENDER, "Generate button", 3, report, "scene unchanged",
           "report == panel last_error")

    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    bpy.context.preferences.addons["image_to_3d"].preferences.output_dir = str(blocker)
    real_settings.prompt = "a red blob"
    result, report = _blender_generate(real_settings)
    assert result == "CANCELLED" and datablock_names() == before and real_settings.last_exit_code == 2
    assert report == real_settings.last_error and report.startswith("cannot create output folder")
    record("input: output folder not writable", BLENDER, "Generate, output folder = a file", 2, report,
           "scene unchanged", "report == panel last_error")


@pytest.mark.parametrize(("case", "make", "prompt", "seed"), [
    ("input: RGBA cut-out, no prompt", photos.rgba_cutout, "", 0),
    ("input: non-ASCII prompt", None, "tasse à café ☕ 杯子", 1),  # seed 1: see test_unusual_but_valid_input_works
])
def test_blender_imports_valid_oddities(real_settings, tmp_path, case, make, prompt, seed):
    import bpy

    real_settings.image_path = str(_photo_for(make, tmp_path))
    real_settings.prompt = prompt
    real_settings.seed = seed
    result, report = _blender_generate(real_settings)
    assert result == "FINISHED", report or real_settings.last_error
    new = [obj for obj in bpy.data.objects if obj.type == "MESH"]
    assert len(new) == 1 and len(new[0].data.polygons) > 0
    if prompt:
        assert new[0].name == prompt
    record(case, BLENDER, "Generate button", real_settings.last_exit_code, "", f"object '{new[0].name}' imported",
           "stage 'done'")
