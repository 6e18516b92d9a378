"""Progress reporting and cooperative cancel for long jobs.

Every backend entry point takes an optional :class:`JobControl`. Stages call :meth:`JobControl.report`
as they go (at least once a second); ``report`` also raises :class:`~backend.errors.CancelledError`
when the cancel event is set, so a stage only needs one call to honour both. The Blender job runner
reads the progress through ``on_progress`` (a thread-safe queue put), the CLI through tqdm.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import CancelledError


@dataclass(frozen=True)
class Progress:
    """One progress event: ``fraction`` is the stage's own completion in [0, 1]."""

    stage: str
    fraction: float
    message: str = ""


@dataclass
class JobControl:
    """Carries the cancel event and the progress callback through a job."""

    cancel_event: threading.Event = field(default_factory=threading.Event)
    on_progress: Callable[[Progress], None] | None = None
    last_report: float = field(default_factory=time.monotonic)
    stage: str = ""  # the stage last reported: names where an out-of-memory or other failure struck

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check_cancelled(self, stage: str = "") -> None:
        if self.cancel_event.is_set():
            raise CancelledError(stage)

    def report(self, stage: str, fraction: float, message: str = "") -> None:
        """Publish progress for ``stage`` and raise ``CancelledError`` if the job was cancelled."""
        self.stage = stage
        self.check_cancelled(stage)
        self.last_report = time.monotonic()
        if self.on_progress is not None:
            self.on_progress(Progress(stage, min(max(float(fraction), 0.0), 1.0), message))


def ensure_control(control: JobControl | None) -> JobControl:
    """A do-nothing control where the caller passed none, so stages never test for ``None``."""
    return control if control is not None else JobControl()


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM (``kill``, a job scheduler, a closing terminal session) is handled like Ctrl-C:
    it raises KeyboardInterrupt in the main thread, so the job unwinds the same way (outputs rolled back,
    exit 130, one line). Outside the main thread, or where signals cannot be set, it changes nothing."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except (ValueError, OSError, AttributeError):  # not the main thread, or no SIGTERM on this platform
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
