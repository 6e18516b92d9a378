"""Headless batch generation into .blend files, through the add-on's own operators.

    blender -b --python scripts/batch.py -- --image photo.jpg --prompt "a coffee cup" --out scene.blend
    blender -b --python scripts/batch.py -- --csv rows.csv --out scene.blend          # header: image,prompt[,preset,seed,method]
    blender -b --python scripts/batch.py -- --csv rows.csv --out folder --per-row     # one .blend per row
    python scripts/batch.py -- …                                                      # the same, bpy module

Each row goes through the add-on's generate operator, so through the backend worker process (the Python the
add-on preferences name, or ``--backend-python``); background mode blocks until each job is done.
The CSV is read by the backend's reader (backend/batch/rows.py: the same rules as ``python -m backend batch``).
One summary line per row on stdout. Exit code 0 when every row worked, else the first failed row's code
(docs/design.md §4: 2 bad input, 3 nothing matched, 4 models unavailable, 5 out of GPU memory, 130 cancelled).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checkout_addon import ensure_registered, import_addon, script_args  # noqa: E402

import_addon()  # the checkout as ``image_to_3d``: the CSV reader and the choices come from its backend
from image_to_3d.backend import choices  # noqa: E402
from image_to_3d.backend.batch.rows import BatchRow, read_rows  # noqa: E402
from image_to_3d.backend.errors import BadInputError  # noqa: E402

ROW_SPACING_M = 1.5  # objects of one .blend stand side by side along +X


@dataclass(frozen=True)
class RowOutcome:
    ok: bool
    exit_code: int
    message: str  # the object's name when ok, else the one-line error


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="blender -b --python scripts/batch.py --",
                                     description="Photo + prompt rows → textured objects in .blend files")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", help="one photo")
    source.add_argument("--csv", help="rows under a header naming image,prompt[,preset,seed,method]")
    parser.add_argument("--prompt", default="", help="with --image: what to take out of the photo")
    parser.add_argument("--preset", choices=choices.names(choices.PRESETS), default=choices.DEFAULT_PRESET)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--method", choices=choices.names(choices.METHODS), default=choices.DEFAULT_METHOD,
                        help="with --image: how the object is made (a CSV row's 'method' column)")
    parser.add_argument("--mode", choices=choices.names(choices.SEGMENTATION_MODES),
                        default=choices.DEFAULT_SEGMENTATION_MODE)
    parser.add_argument("--out", required=True, help="the .blend to write (a folder with --per-row)")
    parser.add_argument("--per-row", action="store_true", help="one .blend per row, in the --out folder")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None,
                        help="overrides the add-on preference for this run")
    parser.add_argument("--jobs-dir", default=None, help="where each job's files go (default: the preference)")
    parser.add_argument("--backend-python", choices=["managed", "existing", "blender"], default=None,
                        help="which Python runs the worker (overrides the preference): the managed environment, the "
                             "preference's existing interpreter, or Blender's own Python")
    parser.add_argument("--in-process", action="store_true",
                        help="debugging: run the jobs inside Blender's process instead of the worker")
    parser.add_argument("--keep-scene", action="store_true",
                        help="add to the scene Blender opened (default: start from an empty scene)")
    return parser.parse_args(argv)


def apply_preferences(device: str | None, jobs_dir: str | None, backend_python: str | None = None,
                      in_process: bool = False) -> None:
    """Set the add-on preferences for this run (creating their entry where the add-on came from the checkout)."""
    import bpy

    addons = bpy.context.preferences.addons
    entry = next((e for e in addons if type(e.preferences).__name__ == "ImageTo3DPreferences"), None)
    if entry is None:
        entry = addons.new()
        entry.module = "image_to_3d"
    if device:
        entry.preferences.device = device
    if jobs_dir:
        entry.preferences.output_dir = str(Path(jobs_dir).resolve())
    if backend_python:
        entry.preferences.worker_python = backend_python
    entry.preferences.debug_in_process_jobs = in_process


def run_row(row: BatchRow, mode: str, location: tuple[float, float, float]) -> RowOutcome:
    """Generate one row into the current scene through ``image_to_3d.generate`` (background mode: blocking)."""
    import bpy

    scene = bpy.context.scene
    settings = scene.image_to_3d
    settings.image = None
    settings.prompt_text = None
    settings.image_path = str(Path(row.image).resolve())
    settings.prompt = row.prompt or ""
    settings.preset = row.preset
    settings.seed = row.seed
    settings.method = row.method
    settings.mode = mode
    scene.cursor.location = location
    try:
        result = bpy.ops.image_to_3d.generate()
    except RuntimeError:  # bpy.ops raises on an ERROR report; the message is in last_error
        result = {"CANCELLED"}
    if "FINISHED" in result:
        return RowOutcome(True, 0, bpy.context.view_layer.objects.active.name)
    return RowOutcome(False, settings.last_exit_code or 1, settings.last_error or settings.last_message)


def clear_scene() -> None:
    """Remove every object and what only they used (the add-on stays registered)."""
    import bpy

    bpy.data.batch_remove(list(bpy.data.objects))
    bpy.data.orphans_purge(do_recursive=True)


def save_blend(path: Path) -> None:
    import bpy

    path.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(path.resolve()), check_existing=False)


def row_line(index: int, row: BatchRow, outcome: RowOutcome) -> str:
    what = f"{row.image} {row.prompt!r}"
    if outcome.ok:
        return f"row {index}: ok {what} -> object {outcome.message!r}"
    return f"row {index}: FAILED (exit {outcome.exit_code}) {what}: {outcome.message}"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        rows = (read_rows(args.csv) if args.csv
                else [BatchRow(1, args.image, args.prompt, args.preset, args.seed, args.method)])
    except BadInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ensure_registered()
    apply_preferences(args.device, args.jobs_dir, args.backend_python, args.in_process)
    out = Path(args.out)
    outcomes = []
    for index, row in enumerate(rows, start=1):
        if args.per_row or (index == 1 and not args.keep_scene):
            clear_scene()
        outcome = run_row(row, args.mode, ((0.0 if args.per_row else (index - 1) * ROW_SPACING_M), 0.0, 0.0))
        outcomes.append(outcome)
        print(row_line(index, row, outcome), flush=True)
        if args.per_row and outcome.ok:
            slug = re.sub(r"[^a-z0-9]+", "-", (row.prompt or "").lower()).strip("-") or "object"
            save_blend(out / f"{index:03d}-{slug}.blend")
    done = sum(outcome.ok for outcome in outcomes)
    if not args.per_row and done:
        save_blend(out)
    saved = f"; saved {out}" if done else "; nothing saved"
    print(f"batch: {done} of {len(rows)} rows done{saved}", flush=True)
    failed = [outcome.exit_code for outcome in outcomes if not outcome.ok]
    stop_backend_worker()
    return failed[0] if failed else 0


def stop_backend_worker() -> None:
    """End the add-on's worker with the batch (the add-on is image_to_3d from a checkout, bl_ext.….image_to_3d
    when installed)."""
    for name, module in list(sys.modules.items()):
        if name.endswith("image_to_3d.operators.worker_client"):
            module.stop_worker()


if __name__ == "__main__":
    sys.exit(main(script_args(sys.argv)))
