"""Running the Blender half of ``eval-recon`` (``scripts/recon_blender.py``) in a subprocess.

``backend/`` never imports bpy, so the scene building and rendering happen in another process that
exchanges files with us: a JSON job in, PNGs (and the ground-truth surface as ``.npz``) out. By default
the script runs under this same interpreter (``sys.executable``), where the bpy module is installed; a
``blender`` binary can be given instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import BadInputError, ImageTo3DError
from ..job_control import JobControl, ensure_control
from .cameras import NamedCamera

SCRIPT_EXIT_BAD_JOB = 2  # scripts/recon_blender.py: EXIT_BAD_JOB


def blender_script_path() -> Path:
    """``scripts/recon_blender.py`` of this checkout (it is a development tool: not in the extension's wheels)."""
    path = Path(__file__).resolve().parents[2] / "scripts" / "recon_blender.py"
    if not path.is_file():
        raise BadInputError(f"eval-recon needs {path}, which this installation does not ship (use a source checkout)")
    return path


def blender_command(job_path: Path, blender: str | None) -> list[str]:
    script = str(blender_script_path())
    if blender:
        return [blender, "-b", "--factory-startup", "--python-exit-code", "1", "--python", script,
                "--", "--job", str(job_path)]
    return [sys.executable, script, "--job", str(job_path)]


def run_blender_job(job: dict, *, blender: str | None = None, control: JobControl | None = None,
                    stage: str = "blender", timeout_s: float = 3600.0) -> None:
    """Run one job to completion; raises ``BadInputError`` for a job the script refuses, else ImageTo3DError."""
    control = ensure_control(control)
    with tempfile.TemporaryDirectory(prefix="recon-job-") as tmp:
        job_path = Path(tmp) / "job.json"
        job_path.write_text(json.dumps(job))
        log_path = Path(tmp) / "blender.log"
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        with open(log_path, "wb") as log:
            process = subprocess.Popen(blender_command(job_path, blender), stdout=log, stderr=subprocess.STDOUT,
                                       env=env)
            started = time.monotonic()
            try:
                while process.poll() is None:  # poll so that a cancel stops Blender too
                    control.report(stage, 0.0, "rendering in Blender")
                    if time.monotonic() - started > timeout_s:
                        raise ImageTo3DError(f"Blender took more than {timeout_s:.0f} s on {stage}")
                    time.sleep(0.2)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        if process.returncode != 0:
            lines = log_path.read_text(errors="replace").strip().splitlines() or ["(no output)"]
            ours = [line for line in lines if line.startswith("recon_blender: error: ")]
            if process.returncode == SCRIPT_EXIT_BAD_JOB and ours:
                raise BadInputError(ours[-1].removeprefix("recon_blender: error: "))
            raise ImageTo3DError(f"Blender failed during {stage} (exit {process.returncode}): {lines[-1]}")


def load_render(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """RGBA PNG → (rgb [H, W, 3] float32 straight colour in [0, 1], alpha [H, W] float32 in [0, 1])."""
    try:
        with Image.open(path) as image:
            rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
    except OSError as exc:
        raise ImageTo3DError(f"Blender did not write a readable image {path}: {exc}") from exc
    return rgba[..., :3].copy(), rgba[..., 3].copy()


def render_job(object_spec: dict, cameras: Sequence[NamedCamera], out_dir: Path, *, samples: int,
               surface_out: Path | None = None, target_radius: float = 0.6) -> dict:
    """The job dictionary ``scripts/recon_blender.py`` reads (its docstring documents the format)."""
    return {
        "object": object_spec,
        "cameras": [c.to_json() for c in cameras],
        "samples": int(samples),
        "out_dir": str(out_dir),
        "surface_out": str(surface_out) if surface_out else None,
        "target_radius": float(target_radius),
    }


def render_views(object_spec: dict, cameras: Sequence[NamedCamera], out_dir: Path, *, samples: int,
                 surface_out: Path | None = None, blender: str | None = None, control: JobControl | None = None,
                 stage: str = "blender") -> list[tuple[np.ndarray, np.ndarray]]:
    """Render ``cameras`` in Blender and load the images back, in camera order."""
    job = render_job(object_spec, cameras, out_dir, samples=samples, surface_out=surface_out)
    run_blender_job(job, blender=blender, control=control, stage=stage)
    return [load_render(out_dir / f"{c.name}.png") for c in cameras]


def load_surface(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The ground-truth surface the script wrote: (vertices [V, 3] float32, faces [F, 3] int64), our world."""
    with np.load(path) as data:
        return data["vertices"], data["faces"]
