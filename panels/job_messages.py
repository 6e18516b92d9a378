"""What the panel says about a job's end: the short error line, the details, and advice in the add-on's words.

The backend splits a message into short line and details (backend.errors.error_text); here the details get
advice that names the add-on's own settings, and clauses meant for command-line users (environment
variables) are left out: an artist cannot set those from Blender.
"""

from __future__ import annotations

import re

from ..backend.errors import error_text

ADVICE_BY_CODE = {
    4: ("Open Edit → Preferences → Add-ons → Image to 3D → Models: press Download next to the missing model "
        "(this needs Online access, in Preferences → System → Network), or Use a local folder that holds its "
        "files."),
    5: "Choose the Preview or Draft preset, or turn on Half precision in the add-on's preferences.",
    3: "Try other words for the object, or click Mask Correction points on it.",
    1: "This is a bug: the system console (Window → Toggle System Console) has the details to report.",
}
# a clause (between ";") that mentions an environment variable or a shell command
_FOR_COMMAND_LINE = re.compile(r"\$[A-Z_]|\b[A-Z][A-Z0-9]*_[A-Z0-9_]+=|\bIMAGE_TO_3D_[A-Z_]+|\bHF_[A-Z_]+|`")


def short_line(exit_code: int, message: str) -> str:
    return error_text(exit_code, message).short


def details_text(exit_code: int, message: str) -> str:
    """Advice first (when there is any), then the message without its command-line clauses."""
    clauses = [clause.strip() for clause in error_text(exit_code, message).details.split(";")]
    kept = "; ".join(clause for clause in clauses if clause and not _FOR_COMMAND_LINE.search(clause))
    advice = ADVICE_BY_CODE.get(exit_code, "")
    return "\n".join(part for part in (advice, kept[:1].upper() + kept[1:]) if part)
