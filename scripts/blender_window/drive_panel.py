"""Drive the installed extension in a real Blender window: Segment, Generate, a cancelled Generate, screenshots,
measurements. Run by the GUI Blender (under xvfb-run) after install_extension.py:

    blender -p 0 0 1600 900 --python scripts/blender_window/drive_panel.py -- --photo coffee.png \
        --prompt "a coffee cup" --shots /tmp/shots --results /tmp/results.json

What it does, each step on Blender's main thread from a ``bpy.app.timers`` callback, calling the operators the
panel's buttons call, with the 3D Viewport's sidebar as their context (no mouse clicks; xdotool only moves the
pointer to where a popup should open):
1. opens the 3D Viewport's sidebar on the "Image to 3D" tab, loads the photo, types the prompt, chooses the
   Preview preset → shot ``panel-idle``; the Method menu opened under the pointer (xdotool) → ``method-choice``;
2. Segment, waits for the overlay → shot ``panel-segmented``;
3. Generate with Preview while a 50 ms timer records when it fires → shot ``after-import`` (the 3D View:
   the new object beside the default cube, the panel's notes of what changed);
4. Generate again with 2000 stage-1 steps, a shot ``progress`` once the bar moves, then Cancel → shot
   ``cancelling`` taken before the main thread can end the job; the time from Cancel to the worker's answer;
5. Segment with the prompt emptied → shot ``error`` (the short line and Details), then Details → ``error-details``;
6. the Preferences, the add-on expanded, after *Check backend*, scrolled a page down so the backend box and
   the Models section show → shot ``preferences-models``;
7. writes the measurements as JSON and quits Blender.

Generate runs the panel's Preview preset (with the tiny random models, ``IMAGE_TO_3D_MODELS=tiny``, it takes
seconds); only the cancelled run's stage-1 step count is raised, so Cancel lands mid-fit.

A screenshot redraws the window (``wm.redraw_timer``) and runs ImageMagick's ``import -window root`` while the
main thread waits, so the picture is exactly the state the step set; those pauses are left out of the timer
measurement (no screenshot is taken during the measured Generate). A thread samples where the main thread is
every 20 ms, so the JSON says what filled the longest gaps ("C": Blender's own code, e.g. drawing). Exit code 0: every step ran; 1: a step
failed (the JSON says which, with the error).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import bpy

sys.path.insert(0, str(Path(__file__).resolve().parent))  # Blender's --python does not add the script's folder
from installed_addon import EXTENSION_MODULE, addon_module, script_args, use_smoke_preset, worker_cpu_s  # noqa: E402

TAB = "Image to 3D"
TICK_S = 0.05  # the probe timer's interval, as issue 17 measured it
CANCEL_RUN_STEPS = 2000  # long enough that Cancel lands mid stage 1
STEP_TIMEOUT_S = 600.0
MENU_POINTER_PX = 40  # the pointer on the Method field's left part
METHOD_FIELD_FRACTION = 0.27  # where the Method field sits down the sidebar (at 1600 × 1150, UI scale 1)
MENU_ITEM_PX = 21  # one menu row at UI scale 1
MENU_ROOM_PX = 170  # the menu reaches about 150 px left of the pointer, into the 3D View
DETAILS_BUTTON_FRACTION = 0.57  # where the error's Details button sits down the sidebar
# The Method menu's tooltips and the Details popup (420 px, operators/panel_helpers.py) open right of the pointer
# and reach over the Outliner and Properties editors beside the sidebar.
POPUP_ROOM_PX = 330
MAX_SHOT_BYTES = 150_000  # each docs image; together they stay a few hundred KB
SHOT_COLOURS = 64  # Blender's dark theme is a few greys, the text's antialiasing and the icons' colours


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="drive_panel.py")
    parser.add_argument("--photo", required=True)
    parser.add_argument("--prompt", default="a coffee cup")
    parser.add_argument("--shots", required=True, help="folder for the screenshots (full window and cropped)")
    parser.add_argument("--results", required=True, help="JSON file for the measurements")
    return parser.parse_args(argv)


class TickProbe:
    """A 50 ms Blender timer that notes when it actually fired (how free the main thread is) and the panel's
    stage at that moment (to say where the longest gaps fell)."""

    def __init__(self, settings):
        self.settings = settings
        self.times: list[float] = []
        self.stages: dict[float, str] = {}

    def __call__(self) -> float:
        now = time.perf_counter()
        self.times.append(now)
        self.stages[now] = self.settings.stage
        return TICK_S

    def longest_gaps(self, start: float, end: float, sampler: MainThreadSampler, count: int = 3) -> list[str]:
        """The ``count`` longest gaps in [start, end]: length, when, the stage, where the main thread was."""
        inside = [t for t in self.times if start <= t <= end]
        gaps = sorted(zip(inside, inside[1:], strict=False), key=lambda pair: pair[0] - pair[1])[:count]
        return [f"{(after - before) * 1000:.0f} ms at {before - start:.1f} s, stage {self.stages[before]!r}: "
                f"main thread in {sampler.between(before, after)}" for before, after in gaps]

    def intervals_ms(self, start: float, end: float, pauses: list[tuple[float, float]]) -> list[float]:
        """Gaps between firings inside [start, end], leaving out gaps that span a screenshot pause."""
        inside = [t for t in self.times if start <= t <= end]
        gaps = []
        for before, after in zip(inside, inside[1:], strict=False):
            if any(before <= p1 and after >= p0 for p0, p1 in pauses):
                continue
            gaps.append((after - before) * 1000.0)
        return gaps


class MainThreadSampler:
    """Every 20 ms, what Python code Blender's main thread is in ("C" when no Python frame is on its stack:
    drawing, the event loop): says what filled a long gap between timer firings."""

    def __init__(self):
        self.main_id = threading.main_thread().ident
        self.samples: list[tuple[float, str]] = []
        self.running = True
        threading.Thread(target=self._run, name="main-thread sampler", daemon=True).start()

    def _run(self) -> None:
        while self.running:
            frame = sys._current_frames().get(self.main_id)
            where = "C" if frame is None else f"{Path(frame.f_code.co_filename).name}:{frame.f_code.co_name}"
            self.samples.append((time.perf_counter(), where))
            time.sleep(0.02)

    def between(self, start: float, end: float) -> dict[str, int]:
        counts: dict[str, int] = {}
        for when, where in self.samples:
            if start <= when <= end:
                counts[where] = counts.get(where, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: -item[1])[:4])


def summarise(gaps_ms: list[float]) -> dict[str, float]:
    if not gaps_ms:
        return {"count": 0}
    ordered = sorted(gaps_ms)
    return {"count": len(ordered), "median_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1), "max_ms": round(ordered[-1], 1)}


class Window:
    """The main window's 3D Viewport and its sidebar, and screenshots of them."""

    def __init__(self, shots: Path):
        self.shots = shots
        self.pauses: list[tuple[float, float]] = []
        self.window = bpy.context.window_manager.windows[0]
        self.area = next(a for a in self.window.screen.areas if a.type == "VIEW_3D")

    @property
    def sidebar(self):
        return next(r for r in self.area.regions if r.type == "UI")

    def override(self, region_type: str = "UI"):
        region = next(r for r in self.area.regions if r.type == region_type)
        return bpy.context.temp_override(window=self.window, screen=self.window.screen, area=self.area,
                                         region=region)

    def box_of(self, x: int, y: int, width: int, height: int) -> tuple[int, int, int, int]:
        """(width, height, left, top) in screen pixels of a box given in Blender's window coordinates (y up)."""
        return width, height, self.window.x + x, self.window.y + self.window.height - (y + height)

    def sidebar_box(self, extra_left: int = 0, extra_right: int = 0):
        """The sidebar, widened by ``extra_left`` px into the 3D View and ``extra_right`` px over the editors
        right of it (a popup or tooltip may reach there)."""
        region = self.sidebar
        return self.box_of(region.x - extra_left, region.y, region.width + extra_left + extra_right, region.height)

    def area_box(self):
        return self.box_of(self.area.x, self.area.y, self.area.width, self.area.height)

    def shot(self, name: str, box) -> str:
        """Redraw now and grab the screen; returns the cropped PNG's path."""
        started = time.perf_counter()
        with bpy.context.temp_override(window=self.window):
            bpy.ops.wm.redraw_timer(type="DRAW_WIN_SWAP", iterations=1)
        full = self.shots / f"{name}.full.png"
        cropped = self.shots / f"{name}.png"
        subprocess.run(["import", "-window", "root", str(full)], check=True, timeout=60)
        width, height, left, top = box
        # 256 colours keep a UI picture small (docs images stay under 300 KB) without visible loss.
        crop = ["convert", str(full), "-crop", f"{width}x{height}+{left}+{top}", "+repage", "-strip"]
        # A palette, undithered: a UI picture stays crisp and several times smaller than in full colour.
        subprocess.run([*crop, "+dither", "-colors", str(SHOT_COLOURS), f"PNG8:{cropped}"], check=True, timeout=60)
        if cropped.stat().st_size > MAX_SHOT_BYTES:
            raise RuntimeError(f"{cropped} is {cropped.stat().st_size} bytes, over {MAX_SHOT_BYTES}: crop it smaller")
        self.pauses.append((started, time.perf_counter()))
        return str(cropped)


def wait_for(condition, what: str):
    """Yield 50 ms delays until ``condition()`` holds."""
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > STEP_TIMEOUT_S:
            raise TimeoutError(f"{what}: not done after {STEP_TIMEOUT_S:.0f} s")
        yield TICK_S


def steps(args, results: dict):
    """The run, as a generator of delays (seconds) until its next step."""
    shots = Path(args.shots)
    shots.mkdir(parents=True, exist_ok=True)
    job_runner = addon_module("operators.job_runner")
    stage1_steps: dict[str, int | None] = {"stage1": None}
    use_smoke_preset(stage1_steps, preset=None)  # the panel's Preview, as a user would run it
    settings = bpy.context.scene.image_to_3d
    probe = TickProbe(settings)
    bpy.app.timers.register(probe, first_interval=TICK_S, persistent=True)
    sampler = MainThreadSampler()
    window = Window(shots)
    results["blender"] = {"version": bpy.app.version_string, "python": sys.version.split()[0]}
    results["screenshots"] = {}

    # 1. the sidebar on the add-on's tab, the photo and the prompt
    window.area.spaces.active.show_region_ui = True
    settings.image = bpy.data.images.load(args.photo, check_existing=True)
    settings.prompt = args.prompt
    settings.preset = "preview"
    yield 1.0  # the sidebar draws once before its tabs exist
    window.sidebar.active_panel_category = TAB
    yield 1.0
    results["screenshots"]["panel-idle"] = window.shot("panel-idle", window.sidebar_box())
    idle_from = time.perf_counter()
    yield 3.0  # a baseline: the timer with nothing running (software OpenGL, a shared CPU)
    results["timer_idle_before_jobs"] = summarise(probe.intervals_ms(idle_from, time.perf_counter(), []))

    # 1b. the Method menu open over the panel: the mouse on the sidebar, the menu the Method field opens
    yield from open_enum_menu(window, "scene.image_to_3d.method", results)
    results["screenshots"]["method-choice"] = window.shot("method-choice", window.sidebar_box(
        extra_left=MENU_ROOM_PX, extra_right=POPUP_ROOM_PX))
    close_menu()
    yield 1.0

    # 2. Segment (the worker's cold start is part of it)
    started = time.perf_counter()
    with window.override():
        results["segment_operator"] = sorted(bpy.ops.image_to_3d.segment())
    yield from wait_for(lambda: job_runner.current_job() is None, "segment")
    results["segment_s"] = round(time.perf_counter() - started, 2)
    results["segment_error"] = settings.last_error
    yield 1.0
    results["screenshots"]["panel-segmented"] = window.shot("panel-segmented", window.sidebar_box())

    # 3. Generate with Preview, measured: no screenshot while it runs
    objects_before = set(bpy.data.objects.keys())
    cpu_before, load_before = worker_cpu_s(), os.getloadavg()[0]
    started = time.perf_counter()
    with window.override():
        results["generate_operator"] = sorted(bpy.ops.image_to_3d.generate())
    yield from wait_for(lambda: job_runner.current_job() is None, "generate")
    ended = time.perf_counter()
    results["generate_s"] = round(ended - started, 2)
    results["generate_worker_cpu_s"] = round(worker_cpu_s() - cpu_before, 2)
    results["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    results["generate_error"] = settings.last_error
    results["imported_objects"] = sorted(set(bpy.data.objects.keys()) - objects_before)
    results["timer_during_generate"] = summarise(probe.intervals_ms(started, ended, window.pauses))
    results["timer_longest_gaps"] = probe.longest_gaps(started, ended, sampler)
    yield 3.0  # the timer right after the import
    results["timer_after_import"] = summarise(probe.intervals_ms(ended, time.perf_counter(), []))
    results["timer_after_import_longest_gaps"] = probe.longest_gaps(ended, time.perf_counter(), sampler)
    # The add-on framed the new object itself (its "Frame new objects" preference); widen the view so the
    # default cube it was placed beside shows too, then leave the selection as the import left it.
    results["selected_after_import"] = sorted(o.name for o in bpy.context.selected_objects)
    cube = bpy.data.objects.get("Cube")
    if cube is not None:
        cube.select_set(True)
    with window.override("WINDOW"):
        bpy.ops.view3d.view_selected()
    if cube is not None:
        cube.select_set(False)
    yield 1.0
    results["screenshots"]["after-import"] = window.shot("after-import", window.area_box())

    # 4. a long Generate: the progress bar, then Cancel
    stage1_steps["stage1"] = CANCEL_RUN_STEPS
    with window.override():
        bpy.ops.image_to_3d.generate()
    job = job_runner.current_job()
    yield from wait_for(lambda: "stage1" in settings.stage and settings.progress > 0.002, "stage 1 progress")
    yield 3.0  # the time left needs a few progress events to estimate
    results["progress_text"] = [job.label, settings.stage]
    results["screenshots"]["progress"] = window.shot("progress", window.sidebar_box())
    yield 0.5
    answered: dict[str, float] = {}
    watcher = threading.Thread(target=lambda: (job.ended.wait(60), answered.setdefault("at", time.perf_counter())),
                               daemon=True)
    worker = addon_module("operators.worker_client").current_worker()
    cancel_at = time.perf_counter()
    watcher.start()
    with window.override():
        results["cancel_operator"] = sorted(bpy.ops.image_to_3d.cancel())
    results["stage_right_after_cancel"] = settings.stage
    results["screenshots"]["cancelling"] = window.shot("cancelling", window.sidebar_box())
    yield from wait_for(lambda: job_runner.current_job() is None, "cancel")
    results["cancel_gui_s"] = round(time.perf_counter() - cancel_at, 2)  # includes the screenshot's pause
    watcher.join(5)
    results["cancel_worker_answer_s"] = round(answered.get("at", float("nan")) - cancel_at, 3)
    # A worker that stops by itself stays up for the next job; one past the 3 s limit was killed.
    results["cancel_worker_killed"] = worker is None or worker.exited is not None
    results["cancel_worker_exit"] = worker.exited.message if worker is not None and worker.exited else ""
    results["after_cancel"] = {"stage": settings.stage, "message": settings.last_message,
                               "error": settings.last_error, "exit_code": settings.last_exit_code}
    results["torch_in_blender"] = sorted(name for name in sys.modules if name == "torch" or name.startswith("torch."))

    # 5. an error: Segment with the prompt box emptied → the short line and Details, then the Details popup
    settings.prompt = ""
    try:
        with window.override():
            bpy.ops.image_to_3d.segment()
    except RuntimeError as exc:  # bpy.ops raises what the operator reported as an error: the expected outcome
        results["error_operator"] = str(exc)
    results["error_shown"] = {"error": settings.last_error, "exit_code": settings.last_exit_code}
    yield 1.0
    results["screenshots"]["error"] = window.shot("error", window.sidebar_box())
    yield from move_mouse_to_sidebar(window, down_fraction=DETAILS_BUTTON_FRACTION)  # the popup opens by Details
    with window.override():
        bpy.ops.image_to_3d.error_details("INVOKE_DEFAULT")
    yield 1.0
    results["screenshots"]["error-details"] = window.shot("error-details", window.sidebar_box(extra_right=POPUP_ROOM_PX))
    close_menu()
    settings.prompt = args.prompt
    yield 1.0

    # 6. the preferences after Check backend, scrolled to the Models section
    backend_setup = addon_module("operators.backend_setup")
    prefs = bpy.context.preferences.addons[EXTENSION_MODULE].preferences
    with window.override():
        bpy.ops.image_to_3d.check_backend()
    # the report reads "starting the worker …" until the throwaway worker's hello is in
    yield from wait_for(lambda: not backend_setup.task_running() and not prefs.check_report.startswith("starting"),
                        "check backend")
    results["check_backend"] = prefs.check_report
    window.area.ui_type = "PREFERENCES"
    bpy.context.preferences.active_section = "ADDONS"
    bpy.context.window_manager.addon_search = TAB
    with bpy.context.temp_override(window=window.window, area=window.area):
        bpy.ops.preferences.addon_expand(module=EXTENSION_MODULE)
    yield 1.5
    with window.override("WINDOW"):
        bpy.ops.view2d.scroll_down(deltax=0, deltay=0, page=True)
    yield 1.5
    results["screenshots"]["preferences-models"] = window.shot("preferences-models", window.area_box())
    results["ok"] = True


def move_mouse_to_sidebar(window: Window, left_px: int = 0, down_fraction: float = 0.25, extra_down_px: int = 0):
    """Put the pointer ``left_px`` into the sidebar (default: a third of its width), ``down_fraction`` of its
    height from its top (a popup opens under it) and let Blender see the move."""
    region = window.sidebar
    x = window.window.x + region.x + (left_px or region.width // 3)
    y = window.window.y + window.window.height - (region.y + round(region.height * (1 - down_fraction)))
    subprocess.run(["xdotool", "mousemove", str(x), str(y + extra_down_px)], check=True, timeout=30)
    yield 0.5


def open_enum_menu(window: Window, data_path: str, results: dict):
    """Open the menu of an enum property (what clicking its field shows) under the pointer, near the Method
    field, then rest the pointer on the second item so its tooltip shows."""
    yield from move_mouse_to_sidebar(window, left_px=MENU_POINTER_PX, down_fraction=METHOD_FIELD_FRACTION)
    with window.override():
        results[f"menu {data_path}"] = sorted(bpy.ops.wm.context_menu_enum("INVOKE_DEFAULT", data_path=data_path))
    yield 0.5
    yield from move_mouse_to_sidebar(window, left_px=MENU_POINTER_PX, down_fraction=METHOD_FIELD_FRACTION,
                                     extra_down_px=MENU_ITEM_PX)
    yield 2.0  # Blender shows a tooltip after a short rest


def close_menu() -> None:
    subprocess.run(["xdotool", "key", "Escape"], check=True, timeout=30)


def run(args) -> None:
    results: dict = {"ok": False}
    plan = steps(args, results)

    def finish(code: int) -> None:
        Path(args.results).write_text(json.dumps(results, indent=2))
        print("drive_panel:", json.dumps(results), flush=True)
        if code:
            os._exit(code)  # quit_blender would exit 0; the worker ends on its closed stdin
        with bpy.context.temp_override(window=bpy.context.window_manager.windows[0]):
            bpy.ops.wm.quit_blender()

    def advance() -> float | None:
        try:
            return next(plan)
        except StopIteration:
            finish(0)
        except Exception as exc:  # noqa: BLE001 - any failed step ends the run with its error in the JSON
            results["error"] = f"{type(exc).__name__}: {exc}"
            results["traceback"] = traceback.format_exc()
            finish(1)
        return None

    bpy.app.timers.register(advance, first_interval=2.0)


run(parse_args(script_args()))
