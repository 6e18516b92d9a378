"""Carrying protocol lines: one JSON object per line, UTF-8, over a pair of text streams.

Today the streams are the worker's stdin and stdout (:func:`stdio_transport`); a socket's ``makefile()``
pair carries the same lines tomorrow. The transport knows lines, not meanings: decoding is ``messages``'.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from typing import TextIO

from .messages import encode


class LineTransport:
    """Reads request lines from ``reader`` and writes message lines to ``writer`` (writes are thread-safe:
    the job thread sends progress while the main thread answers cancel)."""

    def __init__(self, reader: TextIO, writer: TextIO):
        self._reader = reader
        self._writer = writer
        self._lock = threading.Lock()

    def receive_line(self) -> str | None:
        """The next non-empty line without its newline; None at end of input (the client went away)."""
        while True:
            line = self._reader.readline()
            if not line:
                return None
            line = line.strip()
            if line:
                return line

    def send(self, message) -> None:
        text = encode(message) + "\n"
        with self._lock:
            try:
                self._writer.write(text)
                self._writer.flush()
            except (BrokenPipeError, ValueError):  # the client is gone: nobody is left to tell
                pass


def stdio_transport() -> LineTransport:
    """The transport over this process's stdin/stdout, with stdout kept for protocol lines only.

    The protocol gets a private copy of file descriptor 1; fd 1 itself (and ``sys.stdout``) then point at
    stderr, so a stray ``print``, a library warning or a C extension writing to stdout cannot corrupt the
    stream the client parses.
    """
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    writer = io.TextIOWrapper(os.fdopen(protocol_fd, "wb", buffering=0), encoding="utf-8", newline="\n",
                              write_through=True)
    reader = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline=None)
    return LineTransport(reader, writer)
