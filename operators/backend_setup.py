"""Which Python runs the worker, "Set up backend" (a managed venv) and "Check backend" (the worker's hello).

Both buttons run in a thread (venv + pip, or a worker's cold start, take a while); a timer copies their
progress into the preferences and redraws only the Preferences window's areas.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import bpy

from ..backend.worker.client import WorkerProcess, WorkerStartError
from ..properties.job_config import ADDON_PACKAGE
from .managed_env import ENV_FOLDER, SetupResult, create_managed_env, env_python
from .worker_client import WorkerLaunch, blender_python_launch

POLL_INTERVAL_S = 0.25
ONLINE_ACCESS_NEEDED = ("Online access is off: enable Preferences > System > Network > Allow Online Access to "
                        "download the backend's packages, or choose 'An existing Python' that already has them")


def addon_preferences(context=None):
    entry = (context or bpy.context).preferences.addons.get(ADDON_PACKAGE)
    return entry.preferences if entry is not None else None


def managed_env_dir() -> Path:
    """The extension's own user folder (kept across updates); a checkout add-on uses Blender's datafiles."""
    try:
        root = bpy.utils.extension_path_user(ADDON_PACKAGE, create=True)
    except ValueError:  # not installed as an extension (the checkout, tests)
        root = bpy.utils.user_resource("DATAFILES", path=ADDON_PACKAGE, create=True)
    return Path(root) / ENV_FOLDER


def worker_launch(prefs) -> WorkerLaunch:
    """The preferences' choice of Python; raises WorkerStartError when it cannot be used."""
    source = getattr(prefs, "worker_python", "blender") if prefs is not None else "blender"
    if source == "managed":
        python = env_python(managed_env_dir())
        if not python.is_file():
            raise WorkerStartError("the backend is not set up yet: press 'Set up backend' in the add-on preferences "
                                   "(or choose another Python there)")
        return WorkerLaunch(str(python), (), "managed environment")
    if source == "existing":
        python = bpy.path.abspath(prefs.existing_python) if prefs.existing_python else ""
        if not python or not Path(python).is_file():
            raise WorkerStartError(f"the Python chosen in the add-on preferences does not exist: {python!r}")
        return WorkerLaunch(python, (), "existing Python")
    launch = blender_python_launch()
    folder = bpy.path.abspath(prefs.python_packages_dir) if prefs is not None and prefs.python_packages_dir else ""
    if folder:  # after Blender's own packages, as the in-process path put it
        launch = WorkerLaunch(launch.python, (*launch.extra_paths, folder), launch.label)
    return launch


class BackgroundTask:
    """A thread whose last line and result the preferences show."""

    def __init__(self, target):
        self.line = "starting…"
        self.result: SetupResult | None = None
        self.thread = threading.Thread(target=lambda: setattr(self, "result", target(self)), daemon=True)

    def say(self, line: str) -> None:
        self.line = line[:200]


_task: BackgroundTask | None = None
_task_field = ""  # the preferences field the running task writes into


def _start(task: BackgroundTask, field: str) -> None:
    global _task, _task_field
    _task, _task_field = task, field
    task.thread.start()
    if not bpy.app.timers.is_registered(_poll_task):
        bpy.app.timers.register(_poll_task, first_interval=POLL_INTERVAL_S)


def _poll_task() -> float | None:
    global _task
    prefs = addon_preferences()
    if _task is None:
        return None
    done = not _task.thread.is_alive()
    text = (_task.result.message if _task.result else "failed: see the system console") if done else _task.line
    if prefs is not None and getattr(prefs, _task_field) != text:
        setattr(prefs, _task_field, text)
        for window in bpy.context.window_manager.windows if bpy.context.window_manager else ():
            for area in window.screen.areas:
                if area.type == "PREFERENCES":
                    area.tag_redraw()
    if done:
        _task = None
        return None
    return POLL_INTERVAL_S


def task_running() -> bool:
    return _task is not None and _task.thread.is_alive()


class IMAGE_TO_3D_OT_setup_backend(bpy.types.Operator):
    """Create the backend's own Python environment (Blender's Python + pip, pinned packages); needs online access"""

    bl_idname = "image_to_3d.setup_backend"
    bl_label = "Set up backend"
    bl_options = {"REGISTER", "INTERNAL"}

    @classmethod
    def poll(cls, context):
        return not task_running()

    def execute(self, context):
        prefs = addon_preferences(context)
        if not bpy.app.online_access:
            prefs.setup_report = ONLINE_ACCESS_NEEDED
            self.report({"ERROR"}, ONLINE_ACCESS_NEEDED)
            return {"CANCELLED"}
        env_dir, index_url = managed_env_dir(), prefs.extra_index_url.strip()

        def work(task: BackgroundTask) -> SetupResult:
            from .worker_client import stop_worker

            stop_worker()  # the environment may be in use by a worker started from it
            return create_managed_env(env_dir, sys.executable, extra_index_url=index_url, on_line=task.say)

        _start(BackgroundTask(work), "setup_report")
        prefs.worker_python = "managed"
        return {"FINISHED"}


class IMAGE_TO_3D_OT_check_backend(bpy.types.Operator):
    """Start the worker with the chosen Python and show what it finds: Python, torch, CUDA, GPU, free VRAM"""

    bl_idname = "image_to_3d.check_backend"
    bl_label = "Check backend"
    bl_options = {"REGISTER", "INTERNAL"}

    @classmethod
    def poll(cls, context):
        return not task_running()

    def execute(self, context):
        prefs = addon_preferences(context)
        try:
            launch = worker_launch(prefs)
        except WorkerStartError as exc:
            prefs.check_report = str(exc)
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}

        def work(task: BackgroundTask) -> SetupResult:
            task.say(f"starting the worker with {launch.python}…")
            return check_backend(launch)

        _start(BackgroundTask(work), "check_report")
        if bpy.app.background:  # no timers run in background mode: finish here
            _task.thread.join()
            _poll_task()
        return {"FINISHED"}


def check_backend(launch: WorkerLaunch) -> SetupResult:
    """A throwaway worker's hello, as one line."""
    try:
        worker = WorkerProcess(launch.python, launch.extra_paths)
        hello = worker.wait_for_hello()
    except WorkerStartError as exc:
        return SetupResult(False, launch.python, str(exc))
    worker.stop()
    gpu = (f"{hello.gpu}, {hello.vram_free_mb / 1024:.1f} of {hello.vram_total_mb / 1024:.1f} GiB free"
           if hello.vram_total_mb else hello.gpu or "no CUDA GPU")
    torch = f"torch {hello.torch}" + (f" (CUDA {hello.cuda})" if hello.cuda else "") if hello.torch else "no torch"
    line = f"Python {hello.python} · {torch} · jobs run on {hello.device} · {gpu}"
    if hello.problem:
        return SetupResult(False, launch.python, f"{line} · problem: {hello.problem}")
    return SetupResult(True, launch.python, line)


classes = (IMAGE_TO_3D_OT_setup_backend, IMAGE_TO_3D_OT_check_backend)
