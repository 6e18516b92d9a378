"""Issue 19, what a hostile user found: a native crash on degenerate geometry, the output contract (nothing of
the user's ever lost or replaced, interrupted runs leave the folder as it was), SIGTERM, and NaN anywhere."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests import reliability_helpers as photos
from tests.reliability_helpers import SMOKE, cli, command_text, generate_argv
from tests.reliability_table import expect, files_in, record

ROOT = Path(__file__).resolve().parents[1]
CLI = "CLI generate"
expect(__name__, "degenerate geometry: speck surface from the mesh stage", "CLI generate (subprocess)")
expect(__name__, "degenerate geometry: NaN in the photo", CLI)
expect(__name__, "output contract: a folder named model.glb in --out", CLI)
expect(__name__, "output contract: the user's own reference.png in --out", CLI)
expect(__name__, "output contract: the user's own reference.png, --overwrite", CLI)
expect(__name__, "output contract: Ctrl-C during the final moves", CLI)
expect(__name__, "output contract: run killed (SIGKILL) during the final moves, then a rerun", "library")
expect(__name__, "output contract: SIGTERM while stage 1 runs", "CLI generate (subprocess)")


def _env(tmp_path: Path) -> dict:
    env = dict(os.environ, IMAGE_TO_3D_CACHE=str(tmp_path / "cache"), IMAGE_TO_3D_MODELS="tiny",
               HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    return env


def _snapshot(folder: Path) -> dict[str, str]:
    """relative path → SHA-256 of every file (hidden ones included): 'exactly as before' is equality of these."""
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in files_in(folder)}


# --- degenerate geometry ---------------------------------------------------------------------------------------

# The speck the issue found (seed 6, 2 smoke steps, before one seed drove every stage): marching cubes' 6-vertex
# octahedron, 0.00052 across. Which seed fits a speck depends on the whole recipe, so the subprocess below gets
# this mesh from a stand-in for the mesh stage instead of hunting for a seed.
SPECK_VERTICES = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], np.float32) * 2.6e-4 + 0.03
SPECK_FACES = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
_CLI_WITH_SPECK_MESH = f"""
import sys
import numpy as np
import backend.mesh
from backend import cli
def speck_mesh(gaussians, config=None, control=None):
    return backend.mesh.Mesh(vertices=np.array({SPECK_VERTICES.tolist()}, np.float32),
                             faces=np.array({SPECK_FACES.tolist()}))
backend.mesh.extract_mesh = speck_mesh
sys.exit(cli.main(sys.argv[1:]))
"""


def test_speck_surface_is_exit_2_not_a_native_crash(tmp_path):
    """The issue's reproduction: marching cubes finds a 6-vertex speck, xatlas gives it all-NaN UVs, and the CPU
    backward of grid_sample on them segfaulted (exit 139, Blender gone). Now: exit 2 at the UV stage, in a real
    CLI process whose mesh stage returns that speck."""
    photo, out = photos.write_png(tmp_path / "photo.png"), tmp_path / "out"
    argv = generate_argv(photo, out, "a red blob")
    run = subprocess.run([sys.executable, "-c", _CLI_WITH_SPECK_MESH, *map(str, argv)], cwd=ROOT,
                         env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2, run.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: no usable surface")
    assert files_in(out) == [] and not out.exists()
    record("degenerate geometry: speck surface from the mesh stage", "CLI generate (subprocess)",
           command_text(argv) + " (mesh stage returns the seed-6 speck)", 2, lines[0][7:], "none",
           "was exit 139 (segfault in grid_sample's backward on NaN UVs)")


def test_xatlas_nan_uvs_of_a_speck_stop_at_uv_unwrap():
    from backend.errors import NoSurfaceError
    from backend.mesh import Mesh, unwrap_uvs

    speck = Mesh(vertices=SPECK_VERTICES, faces=SPECK_FACES)
    with pytest.raises(NoSurfaceError, match="no usable surface") as info:
        unwrap_uvs(speck)
    assert info.value.exit_code == 2


def test_a_flat_or_empty_surface_is_refused_by_the_mesh_stage():
    from backend.errors import NoSurfaceError
    from backend.mesh.extract import require_usable_surface

    flat = np.random.default_rng(0).normal(size=(6, 3)) * 1e-4
    flat[:, 2] = 0.5
    with pytest.raises(NoSurfaceError, match="flat or empty"):
        require_usable_surface(flat, np.zeros((8, 3), np.int64))
    with pytest.raises(NoSurfaceError, match="flat or empty"):
        require_usable_surface(flat[:3] + np.eye(3), np.zeros((2, 3), np.int64))


@pytest.mark.parametrize("field", ["vertices", "uvs", "texture"])
def test_nan_anywhere_in_a_mesh_stops_where_it_was_made(field):
    from backend.mesh import Mesh
    from backend.numeric_checks import NonFiniteError

    parts = {"vertices": np.zeros((3, 3), np.float32), "faces": np.array([[0, 1, 2]]),
             "uvs": np.zeros((3, 2), np.float32), "texture": np.zeros((4, 4, 3), np.float32)}
    parts[field] = parts[field].copy()
    parts[field].flat[0] = np.nan
    with pytest.raises(NonFiniteError, match="contains NaN") as info:
        Mesh(**parts)
    assert info.value.exit_code == 2


def test_nan_gaussians_never_reach_the_density_grid():
    import torch

    from backend.gaussians import Gaussians
    from backend.mesh import MeshConfig, extract_mesh
    from backend.numeric_checks import NonFiniteError

    n = 4
    gaussians = Gaussians(torch.full((n, 3), float("nan")), torch.ones(n, 3), torch.tensor([[1.0, 0, 0, 0]] * n),
                          torch.ones(n), torch.ones(n, 3))
    with pytest.raises(NonFiniteError, match="stage-1 Gaussians contains NaN"):
        extract_mesh(gaussians, MeshConfig(resolution=8))


def test_nan_in_a_float_photo_is_exit_2(tmp_path, capsys):
    from PIL import Image

    photo = tmp_path / "float.tiff"
    gray = np.linspace(0, 1, 48 * 32, dtype=np.float32).reshape(32, 48)
    gray[5, 5] = np.nan
    Image.fromarray(gray, mode="F").save(photo)
    out = tmp_path / "out"
    argv = generate_argv(photo, out)
    code, stderr = cli(argv, capsys)
    line = stderr.strip()
    assert code == 2 and line.startswith("error: the image") and "contains NaN" in line and "\n" not in line
    assert not out.exists()
    record("degenerate geometry: NaN in the photo", CLI, command_text(argv), code, line[7:], "none",
           "a 32-bit float TIFF with one NaN pixel")


# --- the output contract ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def earlier_result(tmp_path_factory):
    """A folder holding one finished smoke run of this tool (and a file of the user's), and the photo."""
    folder = tmp_path_factory.mktemp("contract")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMAGE_TO_3D_CACHE", str(folder / "cache"))
        from backend.cli import main

        photo = photos.write_png(folder / "photo.png")
        assert main([str(a) for a in generate_argv(photo, folder / "template")]) == 0
    (folder / "template" / "notes.txt").write_text("the user's own notes")
    return photo, folder / "template"


def _copy_of(template: Path, where: Path) -> Path:
    import shutil

    shutil.copytree(template, where)
    return where


def test_a_folder_named_model_glb_stops_the_run_before_any_work(earlier_result, tmp_path, capsys):
    photo, template = earlier_result
    out = _copy_of(template, tmp_path / "out")
    (out / "model.glb").unlink()
    (out / "model.glb").mkdir()
    before = _snapshot(out)
    argv = generate_argv(photo, out)
    code, stderr = cli(argv, capsys)
    line = stderr.strip()
    assert code == 2 and line == f"error: output name is taken by a folder: {out / 'model.glb'} (move it away or " \
                                 "choose another --out)"
    assert _snapshot(out) == before and (out / "model.glb").is_dir()
    record("output contract: a folder named model.glb in --out", CLI, command_text(argv), code, line[7:],
           "the folder exactly as before", "was: gaussians.ply/job.json/mask.png replaced, originals deleted")


def test_the_users_own_file_of_an_output_name_is_never_replaced(earlier_result, tmp_path, capsys):
    photo, _ = earlier_result
    out = tmp_path / "out"
    out.mkdir()
    photos.write_png(out / "reference.png")  # the user's photo, kept in the output folder under that name
    before = _snapshot(out)
    argv = generate_argv(out / "reference.png", out)
    code, stderr = cli(argv, capsys)
    line = stderr.strip()
    assert code == 2 and line.startswith(f"error: {out / 'reference.png'} exists and was not written by this tool")
    assert _snapshot(out) == before
    record("output contract: the user's own reference.png in --out", CLI, command_text(argv), code, line[7:],
           "the folder exactly as before", "checked before any model loads")

    argv = [*argv, "--overwrite"]
    code, stderr = cli(argv, capsys)
    assert code == 0, stderr
    assert _snapshot(out)["reference.png"] != before["reference.png"] and (out / "job.json").is_file()
    record("output contract: the user's own reference.png, --overwrite", CLI, command_text(argv), code, "",
           "all outputs", "reference.png replaced only because --overwrite was given")


def test_a_rerun_replaces_this_tools_files_but_not_a_changed_one(earlier_result, tmp_path, capsys):
    photo, template = earlier_result
    out = _copy_of(template, tmp_path / "out")
    code, stderr = cli(generate_argv(photo, out), capsys)
    assert code == 0, stderr
    assert (out / "notes.txt").read_text() == "the user's own notes"
    (out / "mask.png").write_bytes(b"edited by hand")  # the user changed one of ours: now it is theirs
    code, stderr = cli(generate_argv(photo, out), capsys)
    assert code == 2 and "mask.png exists and was not written by this tool (or was changed since)" in stderr


def test_ctrl_c_during_the_final_moves_leaves_the_folder_as_before(earlier_result, tmp_path, capsys, monkeypatch):
    photo, template = earlier_result
    out = _copy_of(template, tmp_path / "out")
    before = _snapshot(out)
    real_replace, moves = os.replace, []

    def replace(src, dst, *args, **kwargs):
        if Path(dst).parent == out:
            moves.append(dst)
            if len(moves) == 3:
                raise KeyboardInterrupt
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    argv = generate_argv(photo, out)
    code, stderr = cli(argv, capsys)
    assert len(moves) >= 3 and code == 130 and stderr.strip() == "error: cancelled", stderr
    assert _snapshot(out) == before
    assert not [p for p in out.iterdir() if p.name.startswith(".partial")]
    record("output contract: Ctrl-C during the final moves", CLI, command_text(argv), code, "cancelled",
           "the folder exactly as before", "KeyboardInterrupt on the 3rd os.replace into --out")


_KILLED_COMMIT = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from backend.atomic_output import AtomicOutputDir
    out = Path(sys.argv[1])
    real_replace, moves = os.replace, []
    def replace(src, dst):
        if Path(dst).parent == out:
            moves.append(dst)
            if len(moves) == 2:
                os.kill(os.getpid(), 9)  # killed outright between two moves: no handler, no cleanup runs
        real_replace(src, dst)
    os.replace = replace
    with AtomicOutputDir(out) as staging:
        for name in ("a.txt", "b.txt", "c.txt"):
            (staging / name).write_text("new " + name)
""")


def test_a_run_killed_mid_commit_is_undone_by_the_next_run(tmp_path):
    from backend.atomic_output import AtomicOutputDir

    out = tmp_path / "out"
    with AtomicOutputDir(out) as staging:  # an earlier run of ours
        (staging / "a.txt").write_text("old a")
        (staging / "b.txt").write_text("old b")
    (out / "notes.txt").write_text("mine")
    before = _snapshot(out)
    run = subprocess.run([sys.executable, "-c", _KILLED_COMMIT, str(out)], cwd=ROOT, env=_env(tmp_path),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == -signal.SIGKILL
    assert [p for p in out.iterdir() if p.name.startswith(".partial")]  # what the killed run left
    with AtomicOutputDir(out) as staging:  # the next run, writing something else
        (staging / "d.txt").write_text("d")
    after = _snapshot(out)
    assert after.pop("d.txt") and {k: v for k, v in after.items() if not k.startswith(".image")} == \
        {k: v for k, v in before.items() if not k.startswith(".image")}
    assert not [p for p in out.iterdir() if p.name.startswith(".partial")]
    record("output contract: run killed (SIGKILL) during the final moves, then a rerun", "library",
           "SIGKILL between the 1st and 2nd move of a commit; then any run in that folder", -9,
           "", "the earlier files back, no .partial-* folder", "the next run undid the half commit from its journal")


def test_sigterm_is_handled_like_ctrl_c(tmp_path):
    photo, out = photos.write_png(tmp_path / "photo.png"), tmp_path / "out"
    argv = [a for a in generate_argv(photo, out) if a != "-q"]
    proc = subprocess.Popen([sys.executable, "-m", "backend", *map(str, argv)], cwd=ROOT, env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = ""
        while "stage1" not in seen:
            chunk = proc.stderr.read(1)
            assert chunk, f"the job ended before stage 1: {seen[-500:]}"
            seen += chunk
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert rest.strip().splitlines()[-1] == "error: cancelled" and "Traceback" not in rest
    assert files_in(out) == [] and not out.exists()
    record("output contract: SIGTERM while stage 1 runs", "CLI generate (subprocess)",
           command_text([a for a in argv if a not in SMOKE]), 130, "cancelled", "none", "was: exit -15, no message")


# --- the job cache: private, and only an optimisation -------------------------------------------------------------

expect(__name__, "job cache: its location is a file", CLI)


def test_an_unusable_cache_location_runs_without_the_cache(earlier_result, tmp_path, capsys, monkeypatch):
    photo, _ = earlier_result
    (tmp_path / "not-a-folder").write_text("a file where the cache would go")
    monkeypatch.setenv("IMAGE_TO_3D_CACHE", str(tmp_path / "not-a-folder"))
    out = tmp_path / "out"
    argv = generate_argv(photo, out)
    code, stderr = cli(argv, capsys)
    assert code == 0, stderr
    notes = [line for line in stderr.splitlines() if line.startswith("note: job cache unusable")]
    assert len(notes) == 1 and (out / "model.glb").is_file()
    record("job cache: its location is a file", CLI, "IMAGE_TO_3D_CACHE=<a file> " + command_text(argv), code,
           notes[0], "all outputs", "was: exit 1 'internal error'; the note is printed once")


def test_a_planted_symlink_in_the_cache_is_not_followed(tmp_path, capsys):
    import torch

    from backend.gaussians import Gaussians
    from backend.job_cache import JobCache

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "jobs").symlink_to(elsewhere)
    cache = JobCache(tmp_path / "cache")
    cache.save_mask("k", np.ones((4, 4), bool))
    cache.save_gaussians("k", Gaussians(torch.zeros(1, 3), torch.ones(1, 3), torch.tensor([[1.0, 0, 0, 0]]),
                                        torch.ones(1), torch.ones(1, 3)))
    assert list(elsewhere.iterdir()) == [] and not cache.enabled
    assert "symbolic link" in capsys.readouterr().err


def test_damaged_but_readable_cache_entries_are_discarded_with_a_note(tmp_path, capsys):
    import torch

    from backend.gaussians import Gaussians
    from backend.job_cache import JobCache

    cache = JobCache(tmp_path / "cache")
    cache.save_mask("empty", np.zeros((8, 8), bool))  # what a damaged entry could hold: no object at all
    assert cache.load_mask("empty") is None and "an empty mask" in capsys.readouterr().err
    nan = Gaussians(torch.full((2, 3), float("nan")), torch.ones(2, 3), torch.tensor([[1.0, 0, 0, 0]] * 2),
                    torch.ones(2), torch.ones(2, 3))
    cache.save_gaussians("nan", nan)
    assert cache.load_gaussians("nan", "cpu") is None and "contains NaN" in capsys.readouterr().err
    none = Gaussians(torch.zeros(0, 3), torch.ones(0, 3), torch.zeros(0, 4), torch.ones(0), torch.ones(0, 3))
    cache.save_gaussians("none", none)
    assert cache.load_gaussians("none", "cpu") is None and "no Gaussians" in capsys.readouterr().err
    assert not (tmp_path / "cache" / "jobs" / "nan" / "gaussians.safetensors").exists()


# --- integrity checks -------------------------------------------------------------------------------------------------

expect(__name__, "models: a forged .verified.json beside a random SAM checkpoint", "library")


def test_a_forged_verified_record_beside_the_weights_is_not_trusted(tmp_path, monkeypatch):
    import json

    import torch

    from backend.errors import ModelsUnavailableError
    from backend.models import ModelMode
    from backend.models.sam import SAM_SPECS, SamSpec, build_tiny_sam, load_sam

    monkeypatch.setenv("IMAGE_TO_3D_CACHE", str(tmp_path / "cache"))
    official = "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e"
    path = tmp_path / "sam_forged.pth"
    torch.save(build_tiny_sam().state_dict(), path)  # random weights, not the official file
    info = path.stat()
    forged = {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha256": official}
    path.with_name(path.name + ".verified.json").write_text(json.dumps(forged))  # what the old code trusted
    monkeypatch.setitem(SAM_SPECS, "tiny", SamSpec("tiny", path.name, official, build_tiny_sam))
    with pytest.raises(ModelsUnavailableError, match="failed its integrity check") as raised:
        load_sam(ModelMode.REAL, "tiny", "cpu", local_dir=tmp_path)
    record("models: a forged .verified.json beside a random SAM checkpoint", "library",
           "load_sam(real) with <folder>/sam_forged.pth + a forged sam_forged.pth.verified.json", 4,
           str(raised.value), "none", "was: loaded, exit 0, the official digest recorded in segment.json")


@pytest.fixture(scope="module")
def tiny_zero123_folder(tmp_path_factory):
    from backend.models.mode import ModelMode
    from backend.models.zero123 import load_zero123, save_zero123_folder

    return save_zero123_folder(load_zero123(ModelMode.TINY, "cpu"), tmp_path_factory.mktemp("z123") / "z")


def _damage_scheduler(folder):
    (folder / "scheduler" / "scheduler_config.json").write_text('{"num_train_timesteps": "many", "beta_start": [')


def _damage_preprocessor(folder):
    (folder / "feature_extractor" / "preprocessor_config.json").write_text('{"crop_size": "big", "image_std": 0}')


def _damage_projection_config(folder):
    (folder / "clip_camera_projection" / "config.json").write_text('["not", "an", "object"]')


def _pickle_instead_of_safetensors(folder):
    import datetime

    import torch

    sub = folder / "clip_camera_projection"
    (sub / "diffusion_pytorch_model.safetensors").unlink()
    torch.save({"proj.weight": torch.zeros(1), "when": datetime.datetime(2020, 1, 1)},
               sub / "diffusion_pytorch_model.bin")


def _nan_weights(folder):
    from safetensors.torch import load_file, save_file

    path = folder / "clip_camera_projection" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(path))
    first = next(iter(state))
    state[first] = state[first].clone()
    state[first].view(-1)[0] = float("nan")
    save_file(state, str(path))


ZERO123_DAMAGE = {
    "damaged scheduler_config.json": (_damage_scheduler, "scheduler_config.json"),
    "damaged preprocessor_config.json": (_damage_preprocessor, "preprocessor_config.json is damaged"),
    "projection config.json not an object": (_damage_projection_config, "not a JSON object"),
    "a pickle .bin where safetensors are expected": (_pickle_instead_of_safetensors, "use the safetensors files"),
    "NaN in the weights": (_nan_weights, "contains NaN"),
}
for _case in ZERO123_DAMAGE:
    expect(__name__, f"models: Zero123 with {_case}", "library")


@pytest.mark.parametrize("case", list(ZERO123_DAMAGE))
def test_a_damaged_zero123_folder_is_exit_4_in_one_line(tiny_zero123_folder, tmp_path, case):
    import shutil

    from backend.errors import ModelsUnavailableError
    from backend.models.zero123 import load_zero123_folder

    damage, words = ZERO123_DAMAGE[case]
    folder = tmp_path / "zero123"
    shutil.copytree(tiny_zero123_folder, folder)
    damage(folder)
    with pytest.raises(ModelsUnavailableError) as raised:
        load_zero123_folder(folder, "cpu", __import__("torch").float32)
    message = str(raised.value)
    assert raised.value.exit_code == 4 and "\n" not in message and words in message, message
    assert "weights_only=False" not in message
    record(f"models: Zero123 with {case}", "library", f"load_zero123_folder(<folder with {case}>)", 4, message,
           "none", "was: exit 1 'internal error' (or a 3-line torch message)")


# --- ordinary bad input that used to end as exit 1 -------------------------------------------------------------

expect(__name__, "input: seed -1", CLI)
expect(__name__, "input: seed 2**64", CLI)
expect(__name__, "input: a prompt of bytes that are not UTF-8", CLI)
expect(__name__, "input: a 300-character file name", CLI)
expect(__name__, "input: bench --repeats 0", "CLI bench")
expect(__name__, "input: PhraseCut JSON of the wrong shape", "CLI eval-phrasecut")
expect(__name__, "input: a CSV field over 131072 characters", "CLI batch")
expect(__name__, "input: batch --out is a file", "CLI batch")
expect(__name__, "output contract: the user's own summary.csv in batch --out", "CLI batch")
expect(__name__, "input: IMAGE_TO_3D_MODELS=garbage", "CLI batch")


@pytest.mark.parametrize(("case", "extra", "prompt", "words"), [
    ("input: seed -1", ["--seed", "-1"], "a red blob", "--seed must be a whole number from 0 to 9223372036854775807"),
    ("input: seed 2**64", ["--seed", str(2**64)], "a red blob", "--seed must be a whole number from 0 to 9223372036854775807"),
    ("input: a prompt of bytes that are not UTF-8", [], b"a \xff blob".decode("utf-8", "surrogateescape"),
     "the prompt is not valid UTF-8 text"),
], ids=["seed -1", "seed 2**64", "non-UTF-8 prompt"])
def test_bad_seed_or_prompt_is_exit_2(tmp_path, capsys, case, extra, prompt, words):
    photo, out = photos.write_png(tmp_path / "photo.png"), tmp_path / "out"
    argv = generate_argv(photo, out, prompt, *extra)
    code, stderr = cli(argv, capsys)
    line = stderr.strip()
    assert code == 2 and words in line and "\n" not in line and not out.exists()
    record(case, CLI, command_text(argv).encode("utf-8", "backslashreplace").decode("utf-8"), code, line[7:],
           "none", "was: exit 1 'internal error'")


def test_an_over_long_file_name_is_exit_2(tmp_path, capsys):
    out = tmp_path / "out"
    argv = generate_argv(tmp_path / ("x" * 300 + ".png"), out)
    code, stderr = cli(argv, capsys)
    line = stderr.strip()
    assert code == 2 and "File name too long" in line and "\n" not in line and not out.exists()
    shown = line[7:].replace("x" * 300, "xxx…(300 x)")
    record("input: a 300-character file name", CLI, command_text(argv), code, shown, "none",
           "ENAMETOOLONG; was: exit 1 'internal error'")


def test_bench_with_no_repeats_is_exit_2(tmp_path, capsys):
    argv = ["bench", "--out", str(tmp_path / "bench.json"), "--repeats", "0", "--models", "tiny", "-q"]
    code, stderr = cli(argv, capsys)
    assert code == 2 and stderr.strip() == "error: --repeats must be at least 1, got 0"
    record("input: bench --repeats 0", "CLI bench", command_text(argv), code, stderr.strip()[7:], "none",
           "was: exit 1 'internal error'")


def test_malformed_phrasecut_json_is_exit_2(tmp_path, capsys):
    (tmp_path / "refer_miniv.json").write_text('[{"task_id": 1, "image_id": 1, "phrase": "cup", "Polygons": 5}]')
    (tmp_path / "image_data_split.json").write_text('[{"image_id": 1, "width": 4, "height": 4}]')
    argv = ["eval-phrasecut", "--data", str(tmp_path), "--predictions", str(tmp_path), "-q"]
    code, stderr = cli(argv, capsys)
    line = stderr.strip()
    assert code == 2 and "refer_miniv.json is malformed" in line and "\n" not in line
    record("input: PhraseCut JSON of the wrong shape", "CLI eval-phrasecut", command_text(argv), code, line[7:],
           "none", "was: exit 1 'internal error'")


def _batch(tmp_path, capsys, csv_text: str, *extra, out=None):
    rows = tmp_path / "rows.csv"
    rows.write_text(csv_text)
    argv = ["batch", "--csv", str(rows), "--out", str(out or tmp_path / "out"), "--device", "cpu", "-q", *extra]
    code, stderr = cli(argv, capsys)
    return argv, code, stderr.strip()


def test_a_huge_csv_field_is_exit_2(tmp_path, capsys):
    argv, code, line = _batch(tmp_path, capsys, "image,prompt\nphoto.png," + "x" * 140_000 + "\n")
    assert code == 2 and "is not a readable CSV file: field larger than field limit (131072)" in line
    record("input: a CSV field over 131072 characters", "CLI batch", command_text(argv), code, line[7:], "none",
           "was: exit 1 'internal error'")


def test_batch_out_that_is_a_file_is_exit_2(tmp_path, capsys):
    (tmp_path / "out.txt").write_text("a file")
    argv, code, line = _batch(tmp_path, capsys, "image,prompt\nphoto.png,a cup\n", out=tmp_path / "out.txt")
    assert code == 2 and "cannot create output folder" in line and "is a file" in line
    record("input: batch --out is a file", "CLI batch", command_text(argv), code, line[7:], "none",
           "was: exit 1 'internal error'")


def test_batch_never_replaces_the_users_own_summary_csv(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.csv").write_text("my,own,numbers\n1,2,3\n")
    argv, code, line = _batch(tmp_path, capsys, "image,prompt\nphoto.png,a cup\n", out=out)
    assert code == 2 and "summary.csv exists and was not written by this tool" in line
    assert (out / "summary.csv").read_text() == "my,own,numbers\n1,2,3\n" and files_in(out) == ["summary.csv"]
    record("output contract: the user's own summary.csv in batch --out", "CLI batch", command_text(argv), code,
           line[7:], "summary.csv (unchanged)", "checked before the first row")


def test_unknown_model_mode_fails_the_batch_once(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("IMAGE_TO_3D_MODELS", "garbage")
    argv, code, line = _batch(tmp_path, capsys, "image,prompt\na.png,a cup\nb.png,a cup\n")
    assert code == 2 and len(line.splitlines()) == 1 and "garbage" in line and not (tmp_path / "out").exists()
    record("input: IMAGE_TO_3D_MODELS=garbage", "CLI batch", "IMAGE_TO_3D_MODELS=garbage " + command_text(argv),
           code, line[7:], "none", "was: every row failed with the same message")


def test_formulas_in_summary_csv_are_neutralised():
    from backend.batch.rows import BatchRow, RowOutcome

    outcome = RowOutcome(BatchRow(1, "photo.png", "=HYPERLINK(\"http://x\")"), "failed", 2, "@SUM(1)", 0.0, "out")
    summary = outcome.as_summary()
    assert summary["prompt"] == "'=HYPERLINK(\"http://x\")" and summary["message"] == "'@SUM(1)"


expect(__name__, "input: a 13000x9000 PNG (117 Mpx)", CLI)


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` with almost no pixel data: what a bound checked from the
    header must refuse without decoding (decoding it would fail differently, or take minutes and gigabytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_too_many_pixels_are_refused_from_the_header(tmp_path, capsys, monkeypatch):
    from PIL import Image

    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(1))
    photo, out = _png_header_only(tmp_path / "huge.png", 13000, 9000), tmp_path / "out"
    argv = generate_argv(photo, out)
    code, stderr = cli(argv, capsys)
    line = stderr.strip()
    assert code == 2 and line.startswith("error: image too large: 13000x9000 px = 117 Mpx (at most 100 Mpx")
    assert not decoded and not out.exists()
    record("input: a 13000x9000 PNG (117 Mpx)", CLI, command_text(argv), code, line[7:], "none",
           "refused from the header, nothing decoded (was: 169 Mpx ran 385 s at 8.8 GB before anything was said)")


def test_a_bomb_mask_in_the_cache_is_discarded_not_decoded(tmp_path, capsys):
    from backend.job_cache import JobCache

    cache = JobCache(tmp_path / "cache")
    cache.save_mask("bomb", np.ones((8, 8), bool))
    _png_header_only(tmp_path / "cache" / "jobs" / "bomb" / "mask.png", 13000, 9000)
    assert cache.load_mask("bomb") is None and "13000x9000 px" in capsys.readouterr().err
    assert not (tmp_path / "cache" / "jobs" / "bomb" / "mask.png").exists()


def test_segment_keeps_the_same_contract(tmp_path, capsys):
    photo, out = photos.write_png(tmp_path / "photo.png"), tmp_path / "out"
    out.mkdir()
    (out / "segment.json").write_text('{"mine": true}')
    argv = ["segment", photo, "--prompt", "a red blob", "--out", out, "--threshold", "0", "--models", "tiny",
            "--device", "cpu", "-q"]
    code, stderr = cli(argv, capsys)
    assert code == 2 and "segment.json exists and was not written by this tool" in stderr
    assert files_in(out) == ["segment.json"] and (out / "segment.json").read_text() == '{"mine": true}'
    code, stderr = cli([*argv, "--overwrite"], capsys)
    assert code == 0, stderr
    assert json_of(out / "segment.json")["prompts"][0]["slug"] == "a-red-blob"
    code, stderr = cli(argv, capsys)  # now the file is ours: a rerun replaces it without --overwrite
    assert code == 0, stderr


def json_of(path: Path) -> dict:
    import json

    return json.loads(path.read_text(encoding="utf-8"))


def test_temp_files_a_killed_single_file_write_left_are_removed_later(tmp_path):
    import time

    from backend.atomic_output import write_bytes_atomic

    stale, fresh = tmp_path / ".partial-old", tmp_path / ".partial-new"
    stale.write_bytes(b"half a summary.csv")
    fresh.write_bytes(b"another run, writing now")
    hours_ago = time.time() - 7200
    os.utime(stale, (hours_ago, hours_ago))
    write_bytes_atomic(tmp_path / "summary.csv", b"row\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".partial-new", "summary.csv"]
