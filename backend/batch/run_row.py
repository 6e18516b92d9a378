"""Running one batch row in isolation: any failure becomes that row's outcome, never the batch's."""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path

from ..choices import DEFAULT_METHOD
from ..errors import describe_error
from ..job_control import JobControl
from .rows import BatchRow, RowOutcome, RowSettings

DONE_MARKER = "job.json"


def row_is_done(out_dir: Path, method: str = DEFAULT_METHOD) -> bool:
    """Whether ``out_dir`` holds a finished result of ``method`` (a row whose method was changed is redone)."""
    marker = out_dir / DONE_MARKER
    if not marker.is_file():
        return False
    try:
        job = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    # job.json files written before the method choice existed were DreamGaussian jobs
    made_by = job.get("method", DEFAULT_METHOD) if isinstance(job, dict) else None
    return made_by == method and (out_dir / "model.glb").is_file()


def run_row(row: BatchRow, out_root: Path, settings: RowSettings, control: JobControl | None = None) -> RowOutcome:
    """Generate one row into ``out_root/<row folder>``; the outcome records success or the one-line error."""
    from .. import api

    out_dir = out_root / row.folder_name
    if not settings.force and row_is_done(out_dir, row.method):
        return RowOutcome(row, "skipped", 0, "already done", 0.0, str(out_dir))
    start = time.perf_counter()
    try:
        api.generate(settings.request(row, out_dir), control)
        return RowOutcome(row, "done", 0, "", time.perf_counter() - start, str(out_dir))
    except Exception as exc:  # noqa: BLE001 - one bad row must not end the batch
        return failed_outcome(row, exc, time.perf_counter() - start, out_dir)


def failed_outcome(row: BatchRow, exc: BaseException, seconds: float, out_dir: Path) -> RowOutcome:
    """The row's failure as ``summary.csv`` records it: exit code and one line (where a bug struck, for exit 1)."""
    code, message = describe_error(exc, "batch row")
    if code == 1:
        last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        message += f" at {Path(last.filename).name}:{last.lineno}" if last else ""
    return RowOutcome(row, "failed", code, message, seconds, str(out_dir))
