"""Issue 24: a mistake that needs no model is answered at once, by the real command in a subprocess.

Each case runs ``python -X importtime -m backend …`` and checks the exit code (2), the one error line, and
the modules the run imported: torch and the other heavy libraries never load (that is what makes the answer
quick, and unlike a stopwatch it does not depend on how busy the machine is). The wall time is checked too,
against a bound loose enough for a loaded 2-core machine.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.input_checks import PROMPT_NEEDED

ROOT = Path(__file__).resolve().parents[1]
HEAVY_MODULES = ("torch", "transformers", "diffusers", "huggingface_hub", "scipy", "numpy", "skimage", "trimesh")
QUICK_ANSWER_S = 1.0  # the bound, on this 2-core machine when it is idle
LOADED_MACHINE_SLACK = 4.0  # other jobs share the two cores while the suite runs; torch alone takes 9-14 s
# prctl(2) and capabilities(7): a root child drops these so that file permissions apply to it
_PR_CAPBSET_DROP, _CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 24, 1, 2
_CANNOT_DROP = 99  # the child's exit code when the kernel refused


@dataclass(frozen=True)
class CommandRun:
    exit_code: int
    error_lines: list[str]  # stderr without the import-time report
    imported: set[str]  # every module the run imported
    seconds: float


def _without_root_file_override() -> None:
    """In the child before exec: drop root's capabilities to ignore file permissions (CAP_DAC_OVERRIDE,
    CAP_DAC_READ_SEARCH) from its bounding set, so a file mode of 000 or a read-only folder applies to it."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            os._exit(_CANNOT_DROP)


def run_command(argv: list[str], unprivileged: bool = False) -> CommandRun:
    """The CLI in a fresh interpreter that reports its imports (-X importtime); ``unprivileged``: without
    root's right to read and write everything (the permission cases, when the tests run as root)."""
    extra = {"preexec_fn": _without_root_file_override} if unprivileged and os.geteuid() == 0 else {}
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "IMAGE_TO_3D_MODELS": "tiny"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "backend", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, **extra)
    seconds = time.perf_counter() - started
    if extra and done.returncode == _CANNOT_DROP:
        pytest.skip("this machine does not let a root process give up its file-permission override")
    lines = done.stderr.splitlines()
    imported = {line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time:")}
    errors = [line for line in lines if not line.startswith("import time:")]
    return CommandRun(done.returncode, errors, imported, seconds)


@pytest.fixture(scope="module")
def files():
    """Photos and paths for the mistakes (one folder for the module: each case only reads them)."""
    folder = Path(tempfile.mkdtemp(prefix="image_to_3d_mistakes_"))
    Image.new("RGB", (64, 48), (180, 40, 40)).save(folder / "photo.png")
    Image.new("RGBA", (64, 48), (180, 40, 40, 255)).save(folder / "opaque.png")  # alpha, but nothing transparent
    rgba = np.zeros((48, 64, 4), np.uint8)
    rgba[10:30, 10:40] = 255
    Image.fromarray(rgba).save(folder / "cutout.png")
    locked_photo = folder / "locked.png"
    Image.new("RGB", (64, 48)).save(locked_photo)
    locked_photo.chmod(0o000)
    (folder / "notes.png").write_text("not a picture, whatever its name says\n")
    (folder / "a-file").write_text("x")
    (folder / "read-only").mkdir()
    (folder / "read-only").chmod(0o555)
    (folder / "a-folder.png").mkdir()
    yield folder
    (folder / "read-only").chmod(0o755)
    shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class Mistake:
    argv: Callable[[Path], list[str]]  # the folder of `files` → the command's arguments
    says: str  # part of the error line
    unprivileged: bool = False


def _generate(image: str, *rest: str) -> Callable[[Path], list[str]]:
    return lambda d: ["generate", str(d / image), *(part.format(d=d) for part in rest)]


def _segment(image: str, *rest: str) -> Callable[[Path], list[str]]:
    return lambda d: ["segment", str(d / image), *(part.format(d=d) for part in rest)]


MISTAKES = {
    "missing image": Mistake(_generate("missing.jpg", "--prompt", "cup", "--out", "{d}/out"), "image not found: "),
    "image is a folder": Mistake(_generate("a-folder.png", "--prompt", "cup", "--out", "{d}/out"),
                                 "image path is not a file: "),
    "unreadable image": Mistake(_generate("locked.png", "--prompt", "cup", "--out", "{d}/out"),
                                "cannot read image ", unprivileged=True),
    "not an image": Mistake(_generate("notes.png", "--prompt", "cup", "--out", "{d}/out"), "not an image "),
    "--out is a file": Mistake(_generate("photo.png", "--prompt", "cup", "--out", "{d}/a-file"),
                               "output path is a file"),
    "--out inside a file": Mistake(_generate("photo.png", "--prompt", "cup", "--out", "{d}/a-file/out"),
                                   "a parent of the output folder is a file"),
    "--out not writable": Mistake(_generate("photo.png", "--prompt", "cup", "--out", "{d}/read-only/out"),
                                  "output folder is not writable", unprivileged=True),
    "no prompt, photo without alpha": Mistake(_generate("photo.png", "--out", "{d}/out"), PROMPT_NEEDED),
    "no prompt, alpha all opaque": Mistake(_generate("opaque.png", "--out", "{d}/out"), PROMPT_NEEDED),
    "blank prompt": Mistake(_generate("photo.png", "--prompt", "  ", "--out", "{d}/out"), "empty prompt"),
    "negative seed": Mistake(_generate("photo.png", "--prompt", "cup", "--seed", "-1", "--out", "{d}/out"),
                             "--seed must be a whole number"),
    "seed not a number": Mistake(_generate("photo.png", "--prompt", "cup", "--seed", "1.5", "--out", "{d}/out"),
                                 "invalid int value"),
    "bad choice": Mistake(_generate("photo.png", "--prompt", "cup", "--preset", "best", "--out", "{d}/out"),
                          "invalid choice"),
    "bad box": Mistake(_generate("photo.png", "--prompt", "cup", "--segmenter", "sam3", "--box", "1,2",
                                 "--out", "{d}/out"), "bad box"),
    "segment: missing image": Mistake(_segment("missing.jpg", "--prompt", "cup", "--out", "{d}/out"),
                                      "image not found: "),
    "segment: --out is a file": Mistake(_segment("photo.png", "--prompt", "cup", "--out", "{d}/a-file"),
                                        "output path is a file"),
    "segment: not an image": Mistake(_segment("notes.png", "--prompt", "cup", "--out", "{d}/out"), "not an image "),
}


@pytest.mark.parametrize("case", list(MISTAKES))
def test_a_mistake_is_answered_in_one_line_before_any_heavy_import(case, files):
    mistake = MISTAKES[case]
    run = run_command(mistake.argv(files), mistake.unprivileged)
    # argparse's own errors add one pointer line ("usage: see … --help"); the error itself is one line
    errors = [line for line in run.error_lines if not line.startswith("usage: see ")]
    assert run.exit_code == 2, run.error_lines
    assert len(errors) == 1 and mistake.says in errors[0], run.error_lines
    assert "backend.cli" in run.imported  # the import report was read: an empty one would prove nothing
    assert not run.imported & set(HEAVY_MODULES), f"imported before answering: {run.imported & set(HEAVY_MODULES)}"
    assert run.seconds < QUICK_ANSWER_S * LOADED_MACHINE_SLACK, f"{run.seconds:.1f} s"
    assert not (files / "out").exists()


def test_a_cutout_needs_no_prompt_and_passes_the_checks(files):
    """The counterpart of the missing-prompt case: a photo with a transparent background is accepted without a
    prompt (its header and alpha are read without numpy), so the job goes on to load the pipeline."""
    from backend.input_checks import check_photo_job, is_cutout

    assert is_cutout(files / "cutout.png")
    assert not is_cutout(files / "opaque.png") and not is_cutout(files / "photo.png")
    check_photo_job(files / "cutout.png", files / "out-cutout", prompt_given=False)
    assert not (files / "out-cutout").exists()  # checking creates nothing


# Run the CLI in a Python where one package cannot be imported, as if it were not installed.
_WITHOUT_PACKAGE = """
import importlib.abc, sys
blocked = sys.argv.pop(1)
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NotInstalled())
from backend.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(("package", "says"), [
    ("PIL", "missing Python package 'PIL' (pillow): install the project's environment with `make venv`"),
    ("backend.input_checks", "internal error (ModuleNotFoundError"),  # our own module missing stays a bug
], ids=["third-party package", "own module"])
def test_a_missing_package_is_named_with_how_to_install_it(files, package, says):
    argv = ["generate", str(files / "photo.png"), "--prompt", "cup", "--out", str(files / "out")]
    blocked = package if package != "backend.input_checks" else "backend"
    code = _WITHOUT_PACKAGE if blocked != "backend" else _WITHOUT_PACKAGE.replace(
        'name.split(".")[0] == blocked', f'name == {package!r}')
    done = subprocess.run([sys.executable, "-c", code, blocked, *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "IMAGE_TO_3D_MODELS": "tiny"})
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], done.stderr
    if blocked == "backend":
        assert done.returncode == 1 and "report it" in lines[0]
    else:
        assert done.returncode == 4 and "report it" not in lines[0] and "pip install -r requirements.txt" in lines[0]


def test_missing_package_lines_name_the_distribution_and_the_requirements_file():
    from backend.missing_package import missing_package_message

    def missing(name: str) -> ModuleNotFoundError:
        return ModuleNotFoundError(f"No module named {name!r}", name=name)

    assert missing_package_message(missing("skimage")).startswith("missing Python package 'skimage' (scikit-image): ")
    assert missing_package_message(missing("torch")).startswith("missing Python package 'torch': ")
    assert "pip install -r requirements-ray.txt" in missing_package_message(missing("ray"))
    broken = ImportError("cannot import name 'Sam3Model' from 'transformers'", name="transformers")
    assert missing_package_message(broken).startswith("Python package 'transformers' is installed but does not import")
    assert missing_package_message(missing("backend.segment")) is None
    assert missing_package_message(ImportError("no name given")) is None


def test_make_venv_torch_cpu_installs_requirements_without_the_cuda_libraries(tmp_path):
    """`make venv TORCH=cpu`: torch and torchvision at the pinned versions from PyTorch's CPU index, then every
    other pinned requirement except the CUDA libraries (checked on make's plan, which installs nothing)."""
    venv = tmp_path / "venv"
    plan = subprocess.run(["make", "--no-print-directory", "-n", "-B", "venv", "TORCH=cpu", f"VENV={venv}"],
                          cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "--index-url https://download.pytorch.org/whl/cpu $(grep -E '^(torch|torchvision)==' requirements.txt)" in plan
    assert f"-m pip install --quiet -r {venv}/requirements-without-cuda.txt" in plan
    assert "-r requirements.txt" not in plan
    filtered = tmp_path / "filtered.txt"
    subprocess.run(["make", "--no-print-directory", "-B", f"CPU_REQUIREMENTS={filtered}", str(filtered)], cwd=ROOT,
                   check=True, capture_output=True)
    pinned = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line]
    kept = [line for line in filtered.read_text().splitlines() if "==" in line]
    left_out = {line.split("==")[0] for line in pinned} - {line.split("==")[0] for line in kept}
    assert {"torch", "torchvision", "triton", "cuda-toolkit", "nvidia-cudnn-cu13"} <= left_out
    assert all(name in ("torch", "torchvision", "triton") or name.startswith(("nvidia-", "cuda-")) for name in left_out)
    assert "diffusers==" in filtered.read_text() and "pillow==" in filtered.read_text()


@pytest.mark.parametrize("no_hub", [{"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": "http://127.0.0.1:9"}],
                         ids=["offline mode", "unreachable endpoint"])
def test_make_demo_without_weights_says_what_to_do_in_one_line_at_once(tmp_path, no_hub):
    """What `make demo` runs (scripts/demo.py), with real models, an empty Hugging Face cache and no hub: one
    line naming the weights, why they cannot be fetched and what to do, exit 4, in seconds (no torch, no retries)."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("IMAGE_TO_3D_MODELS", "HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_HUB_CACHE", "IMAGE_TO_3D_MODEL_DIR")}
    env.update(HF_HOME=str(tmp_path / "empty-hf"), **no_hub)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "scripts" / "demo.py")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - started
    lines = done.stderr.splitlines()
    imported = {line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time:")}
    said = [line for line in lines if not line.startswith("import time:")]
    assert done.returncode == 4 and len(said) == 1, done.stderr
    assert said[0].startswith("demo: pretrained weights missing: CIDAS/clipseg-rd64-refined")
    assert "ashawkey/zero123-xl-diffusers" in said[0] and str(tmp_path / "empty-hf") in said[0]
    assert ("HF_HUB_OFFLINE is set" if "HF_HUB_OFFLINE" in no_hub else "http://127.0.0.1:9 cannot be reached") in said[0]
    assert said[0].endswith("`IMAGE_TO_3D_MODELS=tiny make demo` is the offline smoke run (random tiny models, "
                            "no download)")
    assert "backend.models.availability" in imported and not imported & set(HEAVY_MODULES), imported & set(HEAVY_MODULES)
    assert seconds < 10, f"{seconds:.1f} s"


def _rgba(alpha: np.ndarray) -> Image.Image:
    rgba = np.full((*alpha.shape, 4), 120, np.uint8)
    rgba[..., 3] = alpha
    return Image.fromarray(rgba)


def _alpha_with(values: dict[int, int], size: int = 100) -> np.ndarray:
    """A size x size alpha channel of 255 with ``count`` pixels of each ``value`` (value → count)."""
    flat = np.full(size * size, 255, np.uint8)
    start = 0
    for value, count in values.items():
        flat[start:start + count] = value
        start += count
    return flat.reshape(size, size)


CUTOUT_CASES = {  # case → (photo, whether it is a cut-out)
    "a few transparent pixels, above the share": (_rgba(_alpha_with({0: 11})), True),  # 0.11 % of 10 000
    "a few transparent pixels, at the share": (_rgba(_alpha_with({0: 10})), False),  # 0.10 %: not more than it
    "alpha 127 counts as transparent": (_rgba(_alpha_with({127: 50})), True),
    "alpha 128 does not": (_rgba(_alpha_with({128: 50})), False),
    "all transparent (constant alpha)": (_rgba(np.zeros((20, 20), np.uint8)), False),
    "LA cut-out": (_rgba(_alpha_with({0: 400}, 40)).convert("LA"), True),
    "palette with a transparent index": (Image.fromarray(np.array([[0, 1] * 8] * 16, np.uint8), "P"), True),
}


@pytest.mark.parametrize("case", list(CUTOUT_CASES))
def test_the_quick_cutout_test_agrees_with_the_pipelines(case, tmp_path):
    """input_checks.is_cutout (Pillow's histogram, before any import of numpy) and the pipeline's has_cutout
    (on the loaded float image) must take the same photos as cut-outs, or a job would fail late or not at all."""
    from backend.generate.job_steps import has_cutout
    from backend.images import load_image
    from backend.input_checks import is_cutout

    image, expected = CUTOUT_CASES[case]
    path = tmp_path / "photo.png"
    if image.mode == "P":
        image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
        image.save(path, transparency=1)
    else:
        image.save(path)
    assert is_cutout(path) == has_cutout(load_image(path)) == expected


def test_every_surface_reports_a_missing_package_as_exit_4_and_our_own_broken_import_as_a_bug():
    # describe_error is what the CLI, batch rows, the worker's error events and the add-on all go through
    from backend.errors import describe_error

    code, message = describe_error(ModuleNotFoundError("No module named 'PIL'", name="PIL"))
    assert code == 4 and message.startswith("missing Python package 'PIL' (pillow): ")
    code, message = describe_error(ModuleNotFoundError("No module named 'backend.x'", name="backend.x"))
    assert code == 1 and message.startswith("internal error (ModuleNotFoundError")
