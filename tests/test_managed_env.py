"""The managed worker environment, made offline from a local wheel folder, and its worker's hello.

No network: pip installs a small wheel this test writes itself (--no-index --find-links). The environment has
no torch, so its hello must say so, and Check backend must show it as a problem, not crash.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

PROBE = "image_to_3d_probe"


def _write_wheel(folder: Path) -> Path:
    """A minimal valid wheel of one module (METADATA, WHEEL, RECORD with hashes)."""
    folder.mkdir(parents=True, exist_ok=True)
    dist_info = f"{PROBE}-1.0.dist-info"
    files = {
        f"{PROBE}.py": "ANSWER = 42\n",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {PROBE.replace('_', '-')}\nVersion: 1.0\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    path = folder / f"{PROBE}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


def test_managed_environment_from_a_local_wheel_folder_and_its_hello(addon_package, tmp_path):
    from image_to_3d.operators.backend_setup import check_backend
    from image_to_3d.operators.managed_env import create_managed_env, env_python
    from image_to_3d.operators.worker_client import WorkerLaunch

    wheels = _write_wheel(tmp_path / "wheels").parent
    # 1. A package the folder lacks: the venv is made, pip fails, one clear line.
    failed = create_managed_env(tmp_path / "env", sys.executable, requirements=["no-such-package-here"],
                                requirements_file=None, find_links=str(wheels), no_index=True)
    assert not failed.ok and failed.message.startswith("pip could not install the backend's packages")
    assert "no-such-package-here" in failed.message and "\n" not in failed.message

    # 2. Set up again (the venv is kept) with what the folder has.
    lines: list[str] = []
    result = create_managed_env(tmp_path / "env", sys.executable, requirements=[PROBE.replace("_", "-")],
                                requirements_file=None, find_links=str(wheels), no_index=True, on_line=lines.append)
    assert result.ok, result.message
    python = env_python(tmp_path / "env")
    assert result.python == str(python) and python.is_file()
    assert lines[0].startswith("updating the environment") and any("Successfully installed" in x for x in lines)
    probe = subprocess.run([str(python), "-c", f"import {PROBE}, sys; print({PROBE}.ANSWER, sys.prefix)"],
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.split()[0] == "42" and Path(probe.stdout.split()[1]) == tmp_path / "env"

    # 3. Its worker says hello: the Python it runs, and plainly that torch is missing.
    checked = check_backend(WorkerLaunch(str(python)))
    assert not checked.ok
    assert f"Python {'.'.join(map(str, sys.version_info[:3]))}" in checked.message
    assert "no torch" in checked.message and "problem: torch cannot be used" in checked.message


def test_a_missing_base_python_is_one_clear_line(addon_package, tmp_path):
    from image_to_3d.operators.managed_env import create_managed_env

    result = create_managed_env(tmp_path / "env", str(tmp_path / "nopython"), requirements_file=None)
    assert not result.ok and "could not create the environment" in result.message
