"""The managed worker environment: a venv made with a given Python, filled by pip from the pinned worker
requirements. No bpy here: the preferences' "Set up backend" runs :func:`create_managed_env` in a thread.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ADDON_ROOT = Path(__file__).resolve().parents[1]
WORKER_REQUIREMENTS = ADDON_ROOT / "requirements-worker.txt"
ENV_FOLDER = "worker-env"
# The extra package index each platform needs by default: PyPI's Windows torch is CPU-only, so Windows gets
# the PyTorch CUDA index (the CUDA version matching the pinned torch); Linux's PyPI torch is already CUDA and
# macOS's is the MPS/CPU build.
DEFAULT_EXTRA_INDEX_URL = {"win32": "https://download.pytorch.org/whl/cu130"}


@dataclass(frozen=True)
class SetupResult:
    ok: bool
    python: str  # the environment's interpreter
    message: str  # one line for the preferences


def default_extra_index_url(platform: str = sys.platform) -> str:
    return DEFAULT_EXTRA_INDEX_URL.get(platform, "")


def env_python(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def create_managed_env(env_dir: Path, base_python: str, requirements: Sequence[str] = (),
                       requirements_file: Path | None = WORKER_REQUIREMENTS, extra_index_url: str = "",
                       find_links: str = "", no_index: bool = False, system_site_packages: bool = False,
                       on_line: Callable[[str], None] = lambda line: None) -> SetupResult:
    """``base_python -m venv env_dir`` (kept if it already holds a Python: a second set-up only updates the
    packages), then pip install the requirements into it; every output line goes to ``on_line`` (progress for
    the preferences). Never raises for a failed step: the result says what failed."""
    python = env_python(env_dir)
    if python.is_file():
        on_line(f"updating the environment in {env_dir}")
    else:
        on_line(f"creating the environment in {env_dir}")
        command = [base_python, "-m", "venv", str(env_dir)]
        if system_site_packages:
            command.append("--system-site-packages")
        step = _run(command, on_line)
        if step or not python.is_file():
            return SetupResult(False, str(python), f"could not create the environment with {base_python}: {step}")
    install = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off",
               "--only-binary=:all:", *requirements]
    if requirements_file is not None:
        install += ["-r", str(requirements_file)]
    if extra_index_url:
        install += ["--extra-index-url", extra_index_url]
    if find_links:
        install += ["--find-links", find_links]
    if no_index:
        install.append("--no-index")
    step = _run(install, on_line)
    if step:
        return SetupResult(False, str(python), f"pip could not install the backend's packages: {step}")
    return SetupResult(True, str(python), f"backend environment ready: {python}")


def _run(command: list[str], on_line: Callable[[str], None]) -> str:
    """Run ``command`` streaming its output lines; "" on success, else its last meaningful line."""
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    env.pop("PYTHONPATH", None)
    env["PYTHONNOUSERSITE"] = "1"  # the user's ~/.local packages must not leak into the environment
    last = ""
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                   creationflags=subprocess.CREATE_NO_WINDOW if sys.platform == "win32" else 0)
    except OSError as exc:
        return f"{command[0]}: {exc.strerror or exc}"
    for line in process.stdout:
        line = line.rstrip()
        if line:
            last = line
            on_line(line)
    code = process.wait()
    return "" if code == 0 else (last or f"exit code {code}")[:300]
