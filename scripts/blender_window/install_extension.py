"""Install the small extension zip into a real Blender (4.2+), enable it and set its preferences; save them.

Run by Blender in background mode, with a fresh user folder (``BLENDER_USER_RESOURCES``) so nothing of a
person's own Blender setup is touched:

    blender -b --python scripts/blender_window/install_extension.py -- --zip dist/image_to_3d-0.1.0.zip \
        --worker-python /work/main/.venv/bin/python --jobs-dir /tmp/jobs

The worker Python is *An existing Python* (one that already has the backend's packages), so Blender's own
process never imports torch; the device is the CPU. The splash screen is turned off so the GUI run that
follows starts on the bare window. Exit codes: 0 installed, 2 bad arguments or the install failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import bpy

sys.path.insert(0, str(Path(__file__).resolve().parent))  # Blender's --python does not add the script's folder
from installed_addon import EXTENSION_MODULE, REPO_MODULE, script_args  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="install_extension.py")
    parser.add_argument("--zip", required=True, help="the small extension zip (build_extension.py --platform any)")
    parser.add_argument("--worker-python", required=True, help="the interpreter that runs the backend worker")
    parser.add_argument("--jobs-dir", required=True, help="the add-on's output folder")
    return parser.parse_args(argv)


def install(zip_path: str) -> None:
    repos = [repo.module for repo in bpy.context.preferences.extensions.repos]
    if REPO_MODULE not in repos:
        raise SystemExit(f"install_extension: Blender has no '{REPO_MODULE}' extension repository ({repos})")
    result = bpy.ops.extensions.package_install_files(repo=REPO_MODULE, filepath=zip_path, enable_on_install=True)
    if result != {"FINISHED"} or EXTENSION_MODULE not in bpy.context.preferences.addons:
        raise SystemExit(f"install_extension: installing {zip_path} gave {result}; {EXTENSION_MODULE} not enabled")


def configure(worker_python: str, jobs_dir: str) -> None:
    prefs = bpy.context.preferences.addons[EXTENSION_MODULE].preferences
    prefs.worker_python = "existing"
    prefs.existing_python = worker_python
    prefs.device = "cpu"
    prefs.output_dir = jobs_dir
    bpy.context.preferences.view.show_splash = False
    bpy.context.preferences.use_preferences_save = True
    bpy.ops.wm.save_userpref()


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        install(args.zip)
        configure(args.worker_python, args.jobs_dir)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"install_extension: Blender {bpy.app.version_string} (Python {sys.version.split()[0]}): "
          f"{EXTENSION_MODULE} installed and enabled, worker Python {args.worker_python}")
    return 0


code = main(script_args())
sys.stdout.flush()
os._exit(code)  # Blender's --python goes on after the script and exits 0; leave with the script's code
