"""Print the measurements of a screenshots.sh run (RUN_DIR/window.json and RUN_DIR/background.json).

    python scripts/blender_window/summarise_run.py out/blender-window
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def main(run_dir: Path) -> int:
    window, background = load(run_dir / "window.json"), load(run_dir / "background.json")
    if not window:
        print(f"summarise_run: no {run_dir / 'window.json'}: the window run ended before writing it (a crash?)")
        return 1
    blender = window.get("blender", {})
    print(f"Blender {blender.get('version')} (Python {blender.get('python')}), tiny models, Preview preset, CPU")
    if "error" in window:
        print(f"window run FAILED: {window['error']}")
    timer = window.get("timer_during_generate", {})
    idle = window.get("timer_idle_before_jobs", {})
    after = window.get("timer_after_import", {})
    print(f"segment: window {window.get('segment_s')} s (worker cold start included), "
          f"background {background.get('segment_s')} s")
    print(f"generate: window {window.get('generate_s')} s (worker CPU {window.get('generate_worker_cpu_s')} s, "
          f"load {window.get('load_average_1min')}), background {background.get('generate_s')} s (worker CPU "
          f"{background.get('generate_worker_cpu_s')} s, load {background.get('generate_load_average_1min')}); "
          f"imported {window.get('imported_objects')}")
    print(f"50 ms timer during generate: median {timer.get('median_ms')} ms, p95 {timer.get('p95_ms')} ms, "
          f"max {timer.get('max_ms')} ms over {timer.get('count')} intervals; idle before the jobs: median "
          f"{idle.get('median_ms')} ms, max {idle.get('max_ms')} ms; right after the import: median "
          f"{after.get('median_ms')} ms, max {after.get('max_ms')} ms")
    print(f"longest timer gaps during generate: {window.get('timer_longest_gaps')}")
    print(f"longest timer gaps right after the import: {window.get('timer_after_import_longest_gaps')}")
    print(f"cancel: worker killed after the 3 s limit: {window.get('cancel_worker_killed')} "
          f"{window.get('cancel_worker_exit', '')}")
    print(f"cancel: panel showed {window.get('stage_right_after_cancel')!r} at once; worker answered in "
          f"{window.get('cancel_worker_answer_s')} s; after: {window.get('after_cancel')}")
    print(f"torch in Blender's process: window {window.get('torch_in_blender')}, "
          f"background {background.get('torch_in_blender')}")
    print(f"check backend: {window.get('check_backend')}")
    for error_key in ("segment_error", "generate_error"):
        for name, run in (("window", window), ("background", background)):
            if run.get(error_key):
                print(f"{name} {error_key}: {run[error_key]}")
    return 0 if window.get("ok") and (background.get("ok") or not background) else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out/blender-window")))
