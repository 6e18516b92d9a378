"""The same Segment then Generate as drive_panel.py, in background mode (``blender -b``): the operators block
until their job ends. Gives the headless times to hold against the window's.

    blender -b --python scripts/blender_window/drive_background.py -- --photo coffee.png --prompt "a coffee cup" \
        --results /tmp/background.json

Exit code 0 when both operators finished, 1 otherwise (the JSON says which, with the add-on's error line).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import bpy

sys.path.insert(0, str(Path(__file__).resolve().parent))  # Blender's --python does not add the script's folder
from installed_addon import script_args, use_smoke_preset, worker_cpu_s  # noqa: E402


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="drive_background.py")
    parser.add_argument("--photo", required=True)
    parser.add_argument("--prompt", default="a coffee cup")
    parser.add_argument("--results", required=True)
    args = parser.parse_args(argv)

    use_smoke_preset({"stage1": None}, preset=None)  # the panel's Preview, as drive_panel.py runs it
    settings = bpy.context.scene.image_to_3d
    settings.image = bpy.data.images.load(args.photo, check_existing=True)
    settings.prompt = args.prompt
    settings.preset = "preview"
    results: dict = {"blender": {"version": bpy.app.version_string, "python": sys.version.split()[0]}}
    for name, operator in (("segment", bpy.ops.image_to_3d.segment), ("generate", bpy.ops.image_to_3d.generate)):
        cpu_before, load_before = worker_cpu_s(), os.getloadavg()[0]
        started = time.perf_counter()
        results[f"{name}_operator"] = sorted(operator())
        results[f"{name}_s"] = round(time.perf_counter() - started, 2)
        results[f"{name}_worker_cpu_s"] = round(worker_cpu_s() - cpu_before, 2)
        results[f"{name}_load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        results[f"{name}_error"] = settings.last_error
    results["torch_in_blender"] = sorted(name for name in sys.modules if name == "torch" or name.startswith("torch."))
    results["ok"] = results["segment_operator"] == results["generate_operator"] == ["FINISHED"]
    Path(args.results).write_text(json.dumps(results, indent=2))
    print("drive_background:", json.dumps(results), flush=True)
    return 0 if results["ok"] else 1


code = main(script_args())
sys.stdout.flush()
os._exit(code)  # Blender would go on and exit 0; the worker ends on its closed stdin
