"""Jobs that run in the backend worker process; Blender's process only sends requests and reads events.

One worker serves the Blender session (:func:`worker_for`): started with the Python the preferences name,
reused while it lives and the choice is unchanged, replaced after it died or was killed. Its reader thread
(``backend.worker.client``) routes each event to the :class:`WorkerJob` whose request id it echoes; the job
puts it on the same queues the job runner's main-thread timer drains, so the timer never waits and never
parses. Cancel sends ``cancel`` at once; a worker that has not ended the job within
:data:`CANCEL_KILL_AFTER_S` is killed, and the next job starts a fresh one.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..backend.worker.client import (
    BACKEND_ROOT,
    STOP_TIMEOUT_S,
    WorkerExited,
    WorkerJobError,
    WorkerProcess,
    WorkerStartError,
)
from ..backend.worker.messages import (
    CancelRequest,
    Done,
    ErrorEvent,
    GenerateOutcome,
    Hello,
    ObjectFinished,
    ProgressEvent,
    SegmentOutcome,
)
from . import job_runner
from .worker_requests import FinishedObject

__all__ = ["BACKEND_ROOT", "WorkerJob", "WorkerLaunch", "make_worker_job", "runs_in_worker", "stop_worker"]
CANCEL_KILL_AFTER_S = 3.0  # a worker that has not stopped this long after cancel is killed
CANCELLED_EXIT_CODE = 130


@dataclass(frozen=True)
class WorkerLaunch:
    """Which Python runs the worker, and what goes on its PYTHONPATH besides the backend."""

    python: str
    extra_paths: tuple[str, ...] = ()
    label: str = ""  # for people: "managed environment", "Blender's Python", …


def blender_python_launch() -> WorkerLaunch:
    """Blender's own Python, seeing the packages Blender's process sees (the extension's bundled wheels, a
    packages folder from the preferences): the offline choice."""
    paths = tuple(p for p in sys.path if p and os.path.isdir(p) and ("site-packages" in p or "dist-packages" in p))
    return WorkerLaunch(sys.executable, paths, "Blender's Python")


class WorkerConnection:
    """A running worker and the jobs waiting on it, by request id."""

    def __init__(self, launch: WorkerLaunch):
        self.launch = launch
        self.jobs: dict[str, WorkerJob] = {}
        self.hello: Hello | None = None
        self.exited: WorkerExited | None = None
        self._lock = threading.Lock()
        import bpy

        self.headless = bool(bpy.app.background)  # read here: the reader thread must not touch bpy
        self.process = WorkerProcess(launch.python, launch.extra_paths, on_event=self._route)

    @property
    def alive(self) -> bool:
        return self.exited is None and self.process.alive

    def submit(self, job: WorkerJob) -> None:
        with self._lock:
            self.jobs[job.request.id] = job
        if not self.process.send(job.request):
            self.process.kill()  # its pipe is closed: the reader thread reports the exit to the job

    def _route(self, event) -> None:
        """Reader thread: hand ``event`` to its job (never touches bpy)."""
        if isinstance(event, WorkerExited):
            self.exited = event
            with self._lock:
                waiting, self.jobs = list(self.jobs.values()), {}
            for job in waiting:
                job.worker_exited(event)
            return
        if isinstance(event, Hello) and not event.id:
            self.hello = event
            if self.headless:  # headless runs say which backend they got
                print(f"Image to 3D: backend worker ready (Python {event.python}, torch {event.torch or 'missing'}, "
                      f"{event.device}{', ' + event.gpu if event.gpu else ''})", file=sys.stderr, flush=True)
            return
        with self._lock:
            job = self.jobs.get(getattr(event, "id", ""))
            if isinstance(event, (Done, ErrorEvent)):
                self.jobs.pop(getattr(event, "id", ""), None)
        if job is not None:
            job.receive(event)


_connection: WorkerConnection | None = None
_connection_lock = threading.Lock()


def worker_for(launch: WorkerLaunch) -> WorkerConnection:
    """The session's worker for ``launch``: the running one, or a fresh one (starting returns at once; the
    request waits in the pipe while the worker imports torch)."""
    global _connection
    with _connection_lock:
        if _connection is not None and _connection.alive and _connection.launch == launch:
            return _connection
        if _connection is not None and _connection.alive:
            _connection.process.stop()
        _connection = WorkerConnection(launch)
        return _connection


def current_worker() -> WorkerConnection | None:
    return _connection if _connection is not None and _connection.alive else None


def stop_worker(timeout: float = STOP_TIMEOUT_S) -> None:
    """Shut the session's worker down (disabling the add-on, quitting Blender); killed if still there after
    ``timeout`` seconds, so a worker busy with a job (or hung) never outlives the add-on."""
    global _connection
    with _connection_lock:
        if _connection is not None:
            _connection.process.stop(timeout)
        _connection = None


@dataclass
class WorkerJob(job_runner.Job):
    """A job_runner.Job whose work happens in the worker: ``start`` sends the request, events fill the queues.

    ``convert`` turns the ``done`` result (a message) into what ``on_success`` expects.
    """

    request: Any = None
    launch: WorkerLaunch | None = None
    convert: Callable[[Any], Any] = lambda outcome: outcome
    connection: WorkerConnection | None = None
    ended: threading.Event = field(default_factory=threading.Event)
    cancel_sent_at: float | None = None
    last_progress: ProgressEvent | None = None

    def start(self) -> None:
        self.started_at = time.monotonic()
        try:
            self.connection = worker_for(self.launch)
        except WorkerStartError as exc:  # e.g. the interpreter is not executable: the job fails in one line
            self.error = exc
            self.ended.set()
            return
        self.connection.submit(self)

    # --- reader thread -------------------------------------------------------------------------------

    def receive(self, event) -> None:
        if isinstance(event, ProgressEvent):
            self.last_progress = event
            self.progress_queue.put(event)
        elif isinstance(event, ObjectFinished):
            self.deliver(FinishedObject(event.index, event.count, event.prompt, event.object))
        elif isinstance(event, Done):
            try:
                self.result = self.convert(event.result)
            except Exception as exc:  # noqa: BLE001 - an unexpected result is this job's error, not the reader's
                self.error = exc
            self.ended.set()
        elif isinstance(event, ErrorEvent):
            self.error = self._error_for(event.exit_code, event.message)
            self.ended.set()

    def worker_exited(self, event: WorkerExited) -> None:
        if not self.ended.is_set():
            self.error = self._error_for(CANCELLED_EXIT_CODE if self.cancel_sent_at else 1, event.message)
            self.ended.set()

    def _error_for(self, exit_code: int, message: str) -> Exception:
        from ..backend.errors import CancelledError

        if exit_code == CANCELLED_EXIT_CODE:
            stage = self.last_progress.label if self.last_progress is not None else ""
            return CancelledError(stage)
        return WorkerJobError(message, exit_code)

    # --- main thread ---------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Send cancel now (the panel says "Cancelling…" at once); the drain kills a worker that lingers."""
        if self.cancel_sent_at is not None or self.ended.is_set():
            return
        self.cancel_sent_at = time.monotonic()
        if self.connection is not None:
            self.connection.process.send(CancelRequest(self.connection.process.new_id("cancel"), self.request.id))

    @property
    def cancelled(self) -> bool:
        return self.cancel_sent_at is not None

    @property
    def alive(self) -> bool:
        """Still running. Every drain asks, so this is also where a worker that ignores cancel gets killed."""
        if self.ended.is_set():
            return False
        if self.cancel_sent_at is not None and time.monotonic() - self.cancel_sent_at > CANCEL_KILL_AFTER_S:
            if self.connection is not None:
                self.connection.process.kill()  # its reader thread then ends the job as cancelled
        return True

    def join(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.ended.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            self.ended.wait(0.1 if left is None else min(0.1, left))
            _ = self.alive  # honours the cancel deadline while waiting (background mode)


def checked_segment_outcome(outcome) -> SegmentOutcome:
    """The worker's answer to a segment (or correct-mask, choose-instance) request, as the in-process path
    returns it too."""
    if not isinstance(outcome, SegmentOutcome):
        raise WorkerJobError(f"the worker answered a segment request with {type(outcome).__name__}")
    return outcome


def first_generated_object(outcome) -> Any:
    if not isinstance(outcome, GenerateOutcome) or not outcome.objects:
        raise WorkerJobError(f"the worker answered a generate request with {outcome!r}")
    return outcome.objects[0]


def runs_in_worker(context) -> bool:
    """Jobs go to the worker unless the debugging preference puts them in Blender's own process."""
    from ..properties.job_config import ADDON_PACKAGE

    entry = context.preferences.addons.get(ADDON_PACKAGE)
    return not (entry is not None and getattr(entry.preferences, "debug_in_process_jobs", False))


def make_worker_job(context, kind: str, build_request: Callable[[str], Any], convert: Callable[[Any], Any],
                    on_success: Callable[[Any], None], scene_name: str, on_partial=None, on_finish=None) -> WorkerJob:
    """The WorkerJob for ``build_request(request_id)`` with the Python the preferences choose (raises
    WorkerStartError, a one-line ImageTo3DError, when that Python cannot be used)."""
    import uuid

    from .backend_setup import addon_preferences, worker_launch

    launch = worker_launch(addon_preferences(context))
    request = build_request(f"{kind.replace(' ', '-')}-{uuid.uuid4().hex[:8]}")
    return WorkerJob(kind=kind, work=None, on_success=on_success, on_partial=on_partial, on_finish=on_finish,
                     scene_name=scene_name, request=request, launch=launch, convert=convert)
