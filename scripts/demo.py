"""``make demo``: the bundled coffee photo → ``python -m backend generate`` → out/demo/model.glb → scene.blend.

First, in a moment and without torch, whether the pretrained weights are here or can be downloaded now
(backend.models.availability): if not, one line says so and what to do, exit 4. The generation runs as a
subprocess (the same command a user types); its GLB is then imported into a fresh scene through the generate
operator's own import function and saved as out/demo/scene.blend.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checkout_addon import REPO_ROOT, import_addon  # noqa: E402

sys.path.insert(0, str(REPO_ROOT))
from backend.choices import DEFAULT_METHOD, DEFAULT_SAM, DEFAULT_SEGMENTER  # noqa: E402
from backend.errors import ModelsUnavailableError  # noqa: E402
from backend.models.availability import check_weights_obtainable  # noqa: E402
from backend.models.catalog import models_needed  # noqa: E402
from backend.models.mode import ModelMode, resolve_model_mode  # noqa: E402

PROMPT = "a coffee cup"
OUT_DIR = REPO_ROOT / "out" / "demo"
OFFLINE_HINT = "`IMAGE_TO_3D_MODELS=tiny make demo` is the offline smoke run (random tiny models, no download)"


def bundled_photo() -> Path:
    """scikit-image's coffee.png (public domain), found without importing scikit-image."""
    return Path(importlib.util.find_spec("skimage").origin).parent / "data" / "coffee.png"


def generate_command(out_dir: Path) -> list[str]:
    command = [sys.executable, "-m", "backend", "generate", str(bundled_photo()), "--prompt", PROMPT,
               "--out", str(out_dir)]
    if os.environ.get("IMAGE_TO_3D_MODELS") == "tiny":  # the offline smoke run: tiny sizes, done in a minute
        command += ["--preset", "smoke"]
    return command


def import_and_save(glb_path: Path, blend_path: Path, name: str = PROMPT) -> Path:
    """A fresh empty scene holding the imported model, saved as ``blend_path``."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    import_addon()
    from image_to_3d.operators.import_result import import_generated_model

    import_generated_model(glb_path, name)
    blend_path.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(blend_path.resolve()), check_existing=False)
    return blend_path


def check_weights() -> None:
    """ModelsUnavailableError (exit 4) at once when the demo's pretrained weights are missing and cannot be
    downloaded now; nothing for the random model modes, which need none."""
    if resolve_model_mode() is ModelMode.REAL:
        check_weights_obtainable(models_needed(DEFAULT_METHOD, DEFAULT_SEGMENTER, DEFAULT_SAM))


def main(command: list[str] | None = None, out_dir: Path = OUT_DIR) -> int:
    try:
        check_weights()
    except ModelsUnavailableError as exc:
        print(f"demo: {exc}; {OFFLINE_HINT}", file=sys.stderr)
        return exc.exit_code
    command = command or generate_command(out_dir)
    code = subprocess.call(command, cwd=REPO_ROOT, env=dict(os.environ))  # IMAGE_TO_3D_MODELS etc. pass through
    if code == ModelsUnavailableError.exit_code:  # its one line said what is missing and what to do
        return code
    if code != 0:
        print(f"demo: generation failed (exit {code}); the line above says why", file=sys.stderr)
        return code
    blend = import_and_save(out_dir / "model.glb", out_dir / "scene.blend")
    print(f"demo: wrote {out_dir / 'model.glb'} and {blend}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
