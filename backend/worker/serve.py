"""``python -m backend serve``: the worker's loop (docs/worker-protocol.md).

The main thread reads requests; a job runs in one job thread at a time, so a ``cancel`` is read and honoured
while the job works (the backend's stages check their JobControl at least once a second). Models stay
loaded between jobs unless a job says ``keep_models_loaded: false``. Nothing a client sends can stop the
loop except ``shutdown`` or the end of its input.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..generate.stage_costs import StageCost
from ..job_control import JobControl, Progress
from ..stage_labels import stage_label
from . import backend_calls
from .messages import (
    JOB_TYPES,
    PROTOCOL_ERROR_EXIT_CODE,
    Acknowledged,
    CancelRequest,
    Done,
    ErrorEvent,
    HelloRequest,
    ProgressEvent,
    ProtocolError,
    ReleaseModelsRequest,
    ShutdownRequest,
    decode_request,
)
from .time_left import TimeLeftEstimator
from .transport import LineTransport, stdio_transport

PROGRESS_INTERVAL_S = 0.1  # at most ten progress events a second per job (stage changes always go out)
SHUTDOWN_WAIT_S = 10.0  # how long shutdown waits for a cancelled job before the process exits anyway


def run_serve_command(args: argparse.Namespace) -> int:
    if args.models:
        os.environ["IMAGE_TO_3D_MODELS"] = args.models  # the default for requests that name none
    code = WorkerServer(stdio_transport()).serve()
    # Exit at once: the job has ended (or was given SHUTDOWN_WAIT_S), and a normal interpreter exit with
    # torch and models loaded takes seconds of tearing down that nobody waits for.
    sys.stderr.flush()
    os._exit(code)


@dataclass
class ProgressTracker:
    """Turns the backend's per-stage progress into the job-wide ``progress`` events; the fraction and the time
    left come from the job's plan (backend/worker/time_left.py), which sees every event, sent or not."""

    request_id: str
    plan: tuple[StageCost, ...]
    send: Callable[[ProgressEvent], None]
    clock: Callable[[], float] = time.monotonic
    started: float = -1.0  # the clock's reading when the job began (taken at construction when not given)
    stages_seen: list[str] = field(default_factory=list)
    last_sent: float = float("-inf")
    estimator: TimeLeftEstimator = field(init=False)

    def __post_init__(self) -> None:
        if self.started < 0:
            self.started = self.clock()
        self.estimator = TimeLeftEstimator(self.plan)

    def on_progress(self, event: Progress) -> None:
        now = self.clock()
        estimate = self.estimator.observe(event.stage, event.fraction, now)
        new_stage = not self.stages_seen or self.stages_seen[-1] != event.stage
        if new_stage and event.stage not in self.stages_seen:
            self.stages_seen.append(event.stage)
        if not new_stage and event.fraction < 1.0 and now - self.last_sent < PROGRESS_INTERVAL_S:
            return
        self.last_sent = now
        step = self.stages_seen.index(event.stage) + 1
        steps = max(len(self.plan), len(self.stages_seen))
        self.send(ProgressEvent(id=self.request_id, stage=event.stage, label=stage_label(event.stage), step=step,
                                steps=steps, stage_fraction=event.fraction, fraction=estimate.fraction,
                                elapsed_s=now - self.started, eta_s=estimate.eta_s, message=event.message))


@dataclass
class RunningJob:
    request: object
    control: JobControl
    thread: threading.Thread


class WorkerServer:
    def __init__(self, transport: LineTransport):
        self.transport = transport
        self._job: RunningJob | None = None
        self._lock = threading.Lock()

    def serve(self) -> int:
        """Say hello, then answer requests until shutdown or end of input; returns the exit code (0)."""
        self.transport.send(backend_calls.describe_environment())
        while True:
            line = self.transport.receive_line()
            if line is None:
                self._stop_job()
                return 0
            try:
                request = decode_request(line)
            except ProtocolError as exc:
                self.transport.send(ErrorEvent(exc.request_id, PROTOCOL_ERROR_EXIT_CODE, str(exc)))
                continue
            try:
                if self._answer(request):
                    return 0
            except Exception as exc:  # noqa: BLE001 - a bug in answering one request must not end the worker
                code, message = backend_calls.describe_error(exc)
                self.transport.send(ErrorEvent(request.id, code, message))

    def _answer(self, request) -> bool:
        """Handle one request; True when the worker should exit."""
        if isinstance(request, JOB_TYPES):
            self._start_job(request)
        elif isinstance(request, CancelRequest):
            self.transport.send(Done(request.id, Acknowledged(self._cancel(request.job_id))))
        elif isinstance(request, ReleaseModelsRequest):
            if self._running() is not None:
                self.transport.send(ErrorEvent(request.id, PROTOCOL_ERROR_EXIT_CODE,
                                               "a job is running: cancel it or wait before releasing the models"))
            else:
                count = backend_calls.release_models()
                self.transport.send(Done(request.id, Acknowledged(f"released {count} model(s)")))
        elif isinstance(request, HelloRequest):
            self.transport.send(dataclasses.replace(backend_calls.describe_environment(), id=request.id))
        elif isinstance(request, ShutdownRequest):
            self._stop_job()
            self.transport.send(Done(request.id, Acknowledged("shutting down")))
            return True
        return False

    def _running(self) -> RunningJob | None:
        with self._lock:
            return self._job

    def _start_job(self, request) -> None:
        with self._lock:
            if self._job is not None:
                self.transport.send(ErrorEvent(request.id, PROTOCOL_ERROR_EXIT_CODE,
                                               f"a job is already running ({self._job.request.id}): cancel it or "
                                               "wait"))
                return
            try:
                prepared = backend_calls.prepare(request)  # the api request: a bad one is answered at once
            except Exception as exc:  # noqa: BLE001 - answered as an error event like any job failure
                self.transport.send(ErrorEvent(request.id, *backend_calls.describe_error(exc)))
                return
            tracker = ProgressTracker(request.id, prepared.plan, self.transport.send)
            control = JobControl(on_progress=tracker.on_progress)
            thread = threading.Thread(target=self._run_job, args=(request, prepared, control, tracker.started),
                                      name=f"job {request.id}", daemon=True)
            self._job = RunningJob(request, control, thread)
        thread.start()

    def _run_job(self, request, prepared: backend_calls.PreparedJob, control: JobControl, started: float) -> None:
        try:
            with backend_calls.job_environment(request.settings):
                outcome = prepared.run(control, self.transport.send)
            final = Done(request.id, outcome, elapsed_s=time.monotonic() - started)
        except BaseException as exc:  # noqa: BLE001 - every failure is answered as an error event
            code, message = backend_calls.describe_error(exc)
            final = ErrorEvent(request.id, code, message)
        if not request.settings.keep_models_loaded:
            backend_calls.release_models()
        with self._lock:  # the job ends before its answer goes out, so the client may start the next at once
            self._job = None
        self.transport.send(final)

    def _cancel(self, job_id: str) -> str:
        job = self._running()
        if job is None or (job_id and job.request.id != job_id):
            return f"no job {job_id!r} is running"
        job.control.cancel()
        return f"cancelling {job.request.id}"

    def _stop_job(self) -> None:
        job = self._running()
        if job is not None:
            job.control.cancel()
            job.thread.join(SHUTDOWN_WAIT_S)
