"""A worker process for tests: send a request, collect the events that answer it (real subprocess, tiny models)."""

from __future__ import annotations

import queue
import sys
import time

from backend.worker.client import WorkerExited, WorkerProcess
from backend.worker.messages import Done, ErrorEvent, encode

FINAL_TYPES = (Done, ErrorEvent)


class WorkerSession:
    def __init__(self, python: str = sys.executable):
        self.worker = WorkerProcess(python)
        self.hello = self.worker.wait_for_hello()
        self.backlog: list = []  # events read while waiting for another request's answer

    def send_line(self, line: str) -> None:
        self.worker.process.stdin.write(line.encode("utf-8") + b"\n")
        self.worker.process.stdin.flush()

    def send(self, request) -> None:
        self.send_line(encode(request))

    def next_event(self, timeout: float = 120.0):
        return self.worker.events.get(timeout=timeout)

    def events_until_final(self, request_id: str, timeout: float = 180.0) -> list:
        """Every event with ``request_id`` up to and including its done or error (or the worker's exit)."""
        deadline = time.monotonic() + timeout
        kept = [e for e in self.backlog if getattr(e, "id", None) == request_id]
        self.backlog = [e for e in self.backlog if getattr(e, "id", None) != request_id]
        if kept and isinstance(kept[-1], FINAL_TYPES):
            return kept
        while True:
            try:
                event = self.worker.events.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no final event for {request_id} within {timeout} s; got {kept}") from None
            if isinstance(event, WorkerExited):
                return [*kept, event]
            if getattr(event, "id", None) != request_id:
                self.backlog.append(event)
                continue
            kept.append(event)
            if isinstance(event, FINAL_TYPES):
                return kept

    def wait_for(self, request_id: str, predicate, timeout: float = 120.0):
        """The first event of ``request_id`` that satisfies ``predicate`` (others are kept in the backlog)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            event = self.worker.events.get(timeout=max(0.1, deadline - time.monotonic()))
            if getattr(event, "id", None) == request_id and predicate(event):
                return event
            self.backlog.append(event)
            if isinstance(event, (WorkerExited, *FINAL_TYPES)) and getattr(event, "id", request_id) == request_id:
                raise AssertionError(f"{request_id} ended before the awaited event: {event}")
        raise AssertionError(f"no awaited event for {request_id} within {timeout} s")

    def close(self) -> None:
        self.worker.stop()
