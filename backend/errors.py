"""Errors that end a job, each tied to one documented exit code (docs/design.md §4).

The CLI, the Blender operators and the batch runner all turn what a job raised into (exit code, one line)
through :func:`describe_error`; anything that is not one of these errors is a bug and is reported as such.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass


class ImageTo3DError(Exception):
    """Base class: a failure the user can act on. ``str(err)`` is the one-line message."""

    exit_code = 1


class BadInputError(ImageTo3DError):
    """Bad input or usage: unreadable image, empty prompt, unwritable output folder (exit 2)."""

    exit_code = 2


class NoSurfaceError(BadInputError):
    """The fitted object has no usable surface: no density above the threshold, a speck too small to texture,
    or a surface UV unwrapping cannot lay flat (exit 2).

    Usually stage 1 failed to fit anything (an empty or almost empty mask, too few steps), or the threshold is
    too high. Raised before any texture kernel sees the degenerate geometry (issue 19: NaN UVs crash them).
    """


class NothingMatchedError(ImageTo3DError):
    """Nothing in the image matched the prompt (exit 3)."""

    exit_code = 3


class ModelsUnavailableError(ImageTo3DError):
    """Weights cannot be found, fetched or verified (exit 4)."""

    exit_code = 4


class OutOfGPUMemoryError(ImageTo3DError):
    """The GPU ran out of memory (exit 5)."""

    exit_code = 5

    def __init__(self, stage: str):
        super().__init__(
            f"out of GPU memory during {stage}: try the draft preset, SAM vit_b, or half precision"
        )
        self.stage = stage


class CancelledError(ImageTo3DError):
    """The user cancelled the job (exit 130)."""

    exit_code = 130

    def __init__(self, stage: str = ""):
        super().__init__(f"cancelled{' during ' + stage if stage else ''}")
        self.stage = stage


# batch only: it ran, and summary.csv says which rows failed and why (1 stays "a bug in the batch itself")
SOME_ROWS_FAILED = 6

EXIT_CODES = {
    0: "done",
    2: "bad input or usage",
    3: "nothing in the image matched the prompt",
    4: "models or Python packages unavailable",
    5: "out of GPU memory",
    SOME_ROWS_FAILED: "batch: some rows failed (see summary.csv)",
    130: "cancelled (Ctrl-C or SIGTERM)",
}


# What can break a message's one line or drive the terminal showing it: C0/C1 control characters (newline,
# carriage return, escape, …), Unicode's line and paragraph separators, and lone surrogates (the bytes of a
# path or argument that are not UTF-8, as Python's surrogateescape keeps them).
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def one_line(text: str) -> str:
    """``text`` with each character that could break its line or drive a terminal written as its escape
    (``\\n``, ``\\x1b``, ``\\udcff``), as ``repr`` would: a path with a newline stays one line and says so."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def describe_error(error: BaseException, stage: str = "") -> tuple[int, str]:
    """The exit code and the one-line message for anything a job raised.

    ``stage`` names where a CUDA out-of-memory struck (torch raises its own class, not ours). Anything that
    is not an :class:`ImageTo3DError` is a bug: exit 1, "internal error (Type: message)" — except an import of
    a package outside this project that fails (exit 4, backend.missing_package), on every surface; the caller adds
    where the traceback went. Torch is only looked for if it is already loaded. Whatever the message quotes
    (a path, a prompt, a library's text) is escaped here, once for every surface, by :func:`one_line`.
    """
    code, message = _code_and_message(error, stage)
    return code, one_line(message)


def _code_and_message(error: BaseException, stage: str) -> tuple[int, str]:
    if isinstance(error, ImageTo3DError):
        return error.exit_code, str(error)
    if isinstance(error, KeyboardInterrupt):
        return CancelledError.exit_code, str(CancelledError())
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(error, torch.cuda.OutOfMemoryError):
        oom = OutOfGPUMemoryError(stage or "the job")
        return oom.exit_code, str(oom)
    if isinstance(error, ImportError):  # a package the environment lacks: an install to fix, not a bug to report
        from .missing_package import MISSING_PACKAGE_EXIT_CODE, missing_package_message

        if missing := missing_package_message(error):
            return MISSING_PACKAGE_EXIT_CODE, missing
    return 1, f"internal error ({type(error).__name__}: {error})"


@dataclass(frozen=True)
class ErrorText:
    """An error as a user interface shows it: one short line, and the rest for a "Details" view."""

    short: str  # fits a narrow sidebar (about 26 characters); says what happened, not why
    details: str  # the full message, for the details view


# The short line for each exit code whose message is long by nature; others are short enough as they are.
_SHORT_BY_CODE = {
    1: "Something went wrong",
    3: "Nothing matched the prompt",
    4: "A model is missing",
    5: "Out of GPU memory",
}
SHORT_MAX_CHARS = 26  # what the add-on's sidebar shows at its default width (panels/text_fit.py measures it)


def error_text(exit_code: int, message: str) -> ErrorText:
    """Split ``message`` (describe_error's line) into a short line and the details.

    A message whose first clause is short keeps it as the short line ("no photo chosen"); a long one gets
    its exit code's short line ("A model is missing"); the details are always the whole message."""
    first = message.split(":")[0].split(";")[0].strip()
    if exit_code in _SHORT_BY_CODE and (len(first) > SHORT_MAX_CHARS or exit_code in (1, 4)):
        short = _SHORT_BY_CODE[exit_code]
    elif len(first) <= SHORT_MAX_CHARS:
        short = first
    else:
        short = first[: SHORT_MAX_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return ErrorText(short=short[:1].upper() + short[1:], details=message)
