"""Starting a worker process and hearing from it (stdlib only: this runs inside Blender).

:class:`WorkerProcess` starts ``<python> -m backend serve`` with the backend's parent folder on
``PYTHONPATH``, and a reader thread decodes each stdout line into an event for ``on_event`` (or the
``events`` queue). When the process ends, one :class:`WorkerExited` follows the last event, saying why in
one line. stderr is passed through to this process's stderr, its last lines kept for that line.
"""

from __future__ import annotations

import collections
import itertools
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ImageTo3DError
from .messages import WORKER_DIED_EXIT_CODE, Hello, ProtocolError, ShutdownRequest, decode_event, encode

BACKEND_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the ``backend`` package
HELLO_TIMEOUT_S = 120.0  # a cold start imports torch: slow disks and first runs take a while
STOP_TIMEOUT_S = 5.0  # shutdown's grace before the process is killed
STDERR_LINES_KEPT = 20


@dataclass(frozen=True)
class WorkerExited:
    """The worker's process ended (after its last event): ``message`` is one line for people."""

    returncode: int | None
    message: str
    type: str = "exited"


class WorkerStartError(ImageTo3DError):
    """The worker cannot be started or did not say hello: its Python is missing or broken (exit 4: the
    backend is unavailable, like missing models)."""

    exit_code = 4


class WorkerJobError(ImageTo3DError):
    """A job the worker answered with an ``error`` event, or lost when the worker died."""

    def __init__(self, message: str, exit_code: int = WORKER_DIED_EXIT_CODE):
        super().__init__(message)
        self.exit_code = exit_code


def describe_exit(returncode: int | None, expected: bool = False) -> str:
    """One line for a worker that stopped with ``returncode`` (negative: killed by that signal)."""
    if expected and returncode == 0:
        return "the backend worker stopped"
    if returncode is None:
        return "the backend worker stopped answering"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        why = {"SIGSEGV": "it crashed (segmentation fault)", "SIGKILL": "it was killed (out of memory, or by hand)",
               "SIGABRT": "it aborted"}.get(name, f"it was stopped by {name}")
    elif returncode == 0xC0000005 or returncode == -1073741819:  # Windows access violation
        why = "it crashed (access violation)"
    else:
        why = f"it exited with code {returncode}"
    return f"the backend worker stopped unexpectedly: {why}; the scene is unchanged (details in the system console)"


class WorkerProcess:
    """One running worker. ``send`` a request; events arrive through ``on_event`` in the reader thread."""

    def __init__(self, python: str, extra_paths: Sequence[str] = (), env: dict[str, str] | None = None,
                 on_event: Callable[[object], None] | None = None, args: Sequence[str] = ()):
        self.python = python
        self.events: queue.Queue = queue.Queue()
        self.on_event = on_event or self.events.put
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES_KEPT)
        self.hello: Hello | None = None
        self._hello_seen = threading.Event()
        self._stopping = False
        self._ids = itertools.count(1)
        self._write_lock = threading.Lock()
        child_env = dict(os.environ if env is None else env)
        child_env["PYTHONPATH"] = os.pathsep.join([str(BACKEND_ROOT), *extra_paths])
        child_env["PYTHONUNBUFFERED"] = "1"
        child_env.pop("PYTHONHOME", None)  # Blender's own would point another Python at the wrong stdlib
        flags = subprocess.CREATE_NO_WINDOW if sys.platform == "win32" else 0
        try:
            self.process = subprocess.Popen([python, "-m", "backend", "serve", *args], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env,
                                            cwd=str(BACKEND_ROOT), creationflags=flags)
        except OSError as exc:
            raise WorkerStartError(f"cannot start the backend worker with {python}: {exc.strerror or exc}") from None
        self._log_reader = threading.Thread(target=self._read_stderr, name="image_to_3d worker log", daemon=True)
        self._log_reader.start()
        self._reader = threading.Thread(target=self._read_events, name="image_to_3d worker events", daemon=True)
        self._reader.start()

    # --- talking ---------------------------------------------------------------------------------------

    def new_id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"

    def send(self, request) -> bool:
        """Write one request; False when the worker is gone (its WorkerExited says why)."""
        data = (encode(request) + "\n").encode("utf-8")
        with self._write_lock:
            try:
                self.process.stdin.write(data)
                self.process.stdin.flush()
                return True
            except (BrokenPipeError, OSError, ValueError):
                return False

    def wait_for_hello(self, timeout: float = HELLO_TIMEOUT_S) -> Hello:
        """The hello the worker sends at start; WorkerStartError if it died or stayed silent."""
        if not self._hello_seen.wait(timeout) or self.hello is None:
            if self.alive:
                self.kill()
            self._reader.join(2.0)
            tail = " | ".join(line for line in list(self.stderr_tail)[-3:] if line)
            raise WorkerStartError(f"the backend worker with {self.python} did not start"
                                   f"{': ' + tail if tail else ''}")
        return self.hello

    # --- lifetime --------------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self._stopping = True
        if self.alive:
            self.process.kill()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Ask the worker to shut down; kill it if it has not gone within ``timeout``."""
        self._stopping = True
        if self.alive:
            self.send(ShutdownRequest(self.new_id("shutdown")))
            try:
                self.process.stdin.close()
            except OSError:
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait()
        self._reader.join(min(2.0, timeout))  # the reader reports the exit; never waited on past the caller's bound

    # --- reader threads --------------------------------------------------------------------------------

    def _read_events(self) -> None:
        for raw in self.process.stdout:
            line = raw.decode("utf-8", errors="replace").strip()
            if not line:
                continue
            try:
                event = decode_event(line)
            except ProtocolError as exc:  # a newer worker's event: said on the console, otherwise skipped
                print(f"Image to 3D: unreadable worker event ({exc}): {line[:200]}", file=sys.stderr)
                continue
            if isinstance(event, Hello) and not event.id and self.hello is None:
                self.hello = event
                self._hello_seen.set()
            self.on_event(event)
        returncode = self.process.wait()
        self._log_reader.join(2.0)
        self._hello_seen.set()
        message = describe_exit(returncode, expected=self._stopping)
        last_log = next((line for line in reversed(self.stderr_tail) if line.strip()), "")
        if returncode and returncode > 0 and last_log:  # e.g. "ModuleNotFoundError: No module named 'torch'"
            message = f"{message}; last log line: {last_log.strip()[:200]}"
        self.on_event(WorkerExited(returncode, message))

    def _read_stderr(self) -> None:
        for raw in self.process.stderr:
            line = raw.decode("utf-8", errors="replace").rstrip()
            self.stderr_tail.append(line)
            print(f"[image_to_3d worker] {line}", file=sys.stderr, flush=True)
