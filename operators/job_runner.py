"""One job at a time; a main-thread timer hands its progress and result to Blender.

Jobs normally run in the backend worker process (``worker_client.WorkerJob``: its reader thread fills this
module's queues). The in-process thread below stays only behind the debugging preference "Run jobs inside
Blender". Either way the timer only drains queues, and tags for redraw only the sidebar regions, only when
something changed.

The thread runs ``work(control)`` and never touches bpy. Progress goes through ``control.on_progress``
into the job's queue; :func:`poll_running_job` (a ``bpy.app.timers`` callback, also called directly by
tests and by the background-mode path) drains it into ``scene.image_to_3d`` and, when the thread has
ended, calls the job's ``on_success`` on the main thread (which imports the result) or records the error.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import bpy

from ..backend.stage_labels import clock, progress_detail, stage_label

BUSY_MESSAGE = "a job is already running — cancel it or wait"
POLL_INTERVAL_S = 0.1
CLOCK_REDRAW_S = 1.0  # the sidebar is redrawn at least this often while a job runs, for its elapsed time


@dataclass
class Job:
    """A running (or finished) job: its thread, its JobControl, its progress queue, its result or error."""

    kind: str  # "segment" | "generate": shown to the user
    work: Callable[[Any], Any]  # work(control) -> result; runs in the worker thread, never touches bpy
    on_success: Callable[[Any], None]  # on_success(result) on the main thread: brings the result into Blender
    scene_name: str
    env: dict[str, str] = field(default_factory=dict)  # environment variables set for the job's duration
    # on_partial(item) on the main thread for each item the worker hands over with deliver() (e.g. each object
    # of a queue as it is finished); what it brought in stays even if the job is cancelled or fails later
    on_partial: Callable[[Any], None] | None = None
    on_finish: Callable[[str], None] | None = None  # on_finish(stage) once the job ended: done|failed|cancelled
    partial_queue: queue.Queue = field(default_factory=queue.Queue)
    partial_error: BaseException | None = None  # on_partial failed: the job is cancelled and reports this
    control: Any = None  # backend.job_control.JobControl, made in start()
    progress_queue: queue.Queue = field(default_factory=queue.Queue)
    thread: threading.Thread | None = None
    result: Any = None
    error: BaseException | None = None
    started_at: float = 0.0
    # what the panel shows while the job runs (see backend/stage_labels.py): the stage in plain words, step i of
    # n (0 where the stages are not counted, the in-process path), seconds left (None until estimable)
    label: str = ""
    step: int = 0
    steps: int = 0
    eta_s: float | None = None
    download_key: str = ""  # a model download job: the catalog key of the model (the Models section's bar)
    last_redraw: float = 0.0  # time.monotonic() of the last sidebar redraw this job asked for
    message: str = ""  # the last event's own message, e.g. a download's "75 of 375 MB · 3.2 MB/s"
    finished: bool = False  # set on the main thread once the result or error reached the scene
    _saved_env: dict[str, str | None] = field(default_factory=dict)

    def start(self) -> None:
        from ..backend.job_control import JobControl

        self.control = JobControl(on_progress=self.progress_queue.put)
        for key, value in self.env.items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        self.started_at = time.monotonic()
        self.thread = threading.Thread(target=self._run, name=f"image_to_3d {self.kind}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.work(self.control)
        except BaseException as exc:  # noqa: BLE001 - everything is handed to the main thread as data
            self.error = exc

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started_at if self.started_at else 0.0

    def deliver(self, item: Any) -> None:
        """Worker thread: hand ``item`` to ``on_partial`` on the main thread."""
        self.partial_queue.put(item)

    def cancel(self) -> None:
        if self.control is not None:
            self.control.cancel()

    @property
    def cancelled(self) -> bool:
        return self.control is not None and self.control.cancelled

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    def drain_progress(self) -> list:
        events = []
        while True:
            try:
                events.append(self.progress_queue.get_nowait())
            except queue.Empty:
                return events

    def restore_env(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()


_current: Job | None = None  # the one job that may run at a time


def current_job() -> Job | None:
    """The running job, or None (a finished job stops being current once its result reached the scene)."""
    return _current if _current is not None and not _current.finished else None


def blocks_until_done() -> bool:
    """True where the operator must finish the job before returning (``blender -b``, the bpy module).

    A function of its own so tests can exercise the UI (threaded) path in the bpy module.
    """
    return bool(bpy.app.background)


def start_job(job: Job, settings) -> Job:
    """Start ``job`` in its thread; raises RuntimeError(BUSY_MESSAGE) while another job runs. Returns at once."""
    global _current
    if current_job() is not None:
        raise RuntimeError(BUSY_MESSAGE)
    settings.stage = "starting"
    settings.progress = 0.0
    settings.photo_match_note = settings.result_note = ""
    settings.last_message = f"{job.kind.capitalize()} started"
    settings.last_error = ""
    settings.last_exit_code = 0
    job.start()
    _current = job
    if not blocks_until_done() and not bpy.app.timers.is_registered(poll_running_job):
        # persistent: loading another file must not strand the job (it would stay "running" forever)
        bpy.app.timers.register(poll_running_job, first_interval=POLL_INTERVAL_S, persistent=True)
    return job


def run_to_end(job: Job) -> None:
    """Background mode: wait for the thread (still draining progress), then finish on this (main) thread."""
    while job.alive:
        job.join(POLL_INTERVAL_S)
        _apply_progress(job)
    poll_running_job()


def poll_running_job() -> float | None:
    """Timer callback: move progress into the scene; finish the job when its thread ended.

    Returns the next interval while the job runs, None (timer ends) when there is nothing left to do.
    """
    job = current_job()
    if job is None:
        return None
    changed = _apply_progress(job)
    if job.alive:
        now = time.monotonic()
        # the panel's clock ("0:42 so far") must tick even through a long silent stage (a model download)
        if changed or now - job.last_redraw >= CLOCK_REDRAW_S:
            job.last_redraw = now
            tag_sidebar_redraw()
        return POLL_INTERVAL_S
    _finish(job)
    tag_sidebar_redraw()
    return None


def _settings_of(job: Job):
    scene = bpy.data.scenes.get(job.scene_name) or bpy.context.scene
    return scene.image_to_3d


def _apply_partials(job: Job) -> None:
    while True:
        try:
            item = job.partial_queue.get_nowait()
        except queue.Empty:
            return
        if job.on_partial is None or job.partial_error is not None:
            continue
        try:
            job.on_partial(item)
        except Exception as exc:  # noqa: BLE001 - reported as the job's error; the queue stops
            job.partial_error = exc
            job.cancel()


def _apply_progress(job: Job) -> bool:
    """Move what arrived into the scene; True when anything did (the panel then needs a redraw)."""
    had_partials = not job.partial_queue.empty()
    _apply_partials(job)
    events = job.drain_progress()
    if not events:
        return had_partials
    settings = _settings_of(job)
    last = events[-1]
    if job.cancelled:  # "Cancelling…" stays up until the job has ended
        return had_partials
    if blocks_until_done() and last.stage != settings.stage:
        print(f"Image to 3D: {job.kind}: {last.stage}", file=sys.stderr, flush=True)  # headless runs show life
    settings.stage = last.stage
    settings.progress = last.fraction
    # the worker's events carry the label, the step count and a time left; the in-process path only the stage
    job.label = getattr(last, "label", "") or stage_label(last.stage)
    job.step, job.steps = getattr(last, "step", 0), getattr(last, "steps", 0)
    job.eta_s = getattr(last, "eta_s", None)
    job.message = last.message or ""
    settings.last_message = f"{job.label} · {progress_detail(job.step, job.steps, job.elapsed_s, job.eta_s)}"
    return True


def _finish(job: Job) -> None:
    """Bring the result into Blender (main thread) or record why not. Never leaves the job current."""
    job.restore_env()
    settings = _settings_of(job)
    try:
        _apply_partials(job)  # finished parts come in even when the rest was cancelled
        if job.partial_error is not None:
            job.error = job.partial_error
        if job.error is None and job.cancelled:
            from ..backend.errors import CancelledError

            job.error = CancelledError(settings.stage)
        if job.error is None:
            try:
                job.on_success(job.result)
            except Exception as exc:  # noqa: BLE001 - the import failed: reported like a job failure
                job.error = exc
        if job.error is None:
            settings.stage = "done"
            settings.progress = 1.0
            settings.last_exit_code = 0
            settings.last_message = f"{job.kind.capitalize()} done in {clock(job.elapsed_s)}"
        else:
            _record_error(settings, job)
    finally:
        job.finished = True
    if job.on_finish is not None:
        try:
            job.on_finish(settings.stage)
        except Exception:  # noqa: BLE001 - bookkeeping (history) must not turn a finished job into a failure
            traceback.print_exc()


def _record_error(settings, job: Job) -> None:
    from ..backend.errors import CancelledError

    message, code = describe_error(job.error)
    settings.last_exit_code = code
    if isinstance(job.error, CancelledError):
        settings.stage = "cancelled"
        settings.last_message = message
        settings.last_error = ""
    else:
        settings.stage = "failed"
        settings.last_error = message
        settings.last_message = f"{job.kind} failed"


def describe_error(error: BaseException) -> tuple[str, int]:
    """The one-line message and the exit code for anything a job raised (backend.errors.describe_error)."""
    from ..backend.errors import describe_error as describe_backend_error

    code, message = describe_backend_error(error)
    if code == 1:
        traceback.print_exception(error)  # a bug: the console gets the traceback, the panel one line
        message += "; see the system console and report it"
    return message, code


def tag_sidebar_redraw() -> None:
    """Redraw only the sidebar region of the 3D views whose sidebar is open (where the panel lives)."""
    wm = bpy.context.window_manager
    for window in wm.windows if wm is not None else ():
        for area in window.screen.areas:
            if area.type != "VIEW_3D" or not getattr(area.spaces.active, "show_region_ui", False):
                continue
            for region in area.regions:
                if region.type == "UI":
                    region.tag_redraw()


# Disabling the add-on (or quitting) mid-job blocks Blender at most about this long: the job is asked to cancel,
# then the worker to shut down, and a worker still there at the end is killed (issue 19 measured 5.8 s, and the
# job kept writing after the add-on was gone). A killed job's half-written output is rolled back by the next
# run in that folder (docs/reliability.md, output contract 3).
UNREGISTER_BLOCKS_AT_MOST_S = 1.0


def unregister() -> None:
    """Cancel a running job, stop the timer and the worker (disabling the add-on mid-job), within
    :data:`UNREGISTER_BLOCKS_AT_MOST_S`."""
    global _current
    deadline = time.monotonic() + UNREGISTER_BLOCKS_AT_MOST_S
    job = current_job()
    if job is not None:
        job.cancel()
        job.join(UNREGISTER_BLOCKS_AT_MOST_S / 2)  # a cooperative cancel rolls its outputs back itself
        job.restore_env()
        job.finished = True
    _current = None
    if bpy.app.timers.is_registered(poll_running_job):
        bpy.app.timers.unregister(poll_running_job)
    from .worker_client import stop_worker

    stop_worker(timeout=max(0.1, deadline - time.monotonic()))
