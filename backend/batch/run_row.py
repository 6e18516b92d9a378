"""Running one batch row in isolation: any failure becomes that row's outcome, never the batch's."""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path

from ..errors import describe_error
from ..job_control import JobControl
from .rows import BatchRow, RowOutcome

DONE_MARKER = "job.json"


def row_is_done(out_dir: Path) -> bool:
    marker = out_dir / DONE_MARKER
    if not marker.is_file():
        return False
    try:
        json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return (out_dir / "model.glb").is_file()


def run_row(row: BatchRow, out_root: Path, models: str | None, device: str, force: bool,
            control: JobControl | None = None) -> RowOutcome:
    """Generate one row into ``out_root/<row folder>``; the outcome records success or the one-line error."""
    from .. import api

    out_dir = out_root / row.folder_name
    if not force and row_is_done(out_dir):
        return RowOutcome(row, "skipped", 0, "already done", 0.0, str(out_dir))
    start = time.perf_counter()
    try:
        api.generate(api.GenerateRequest(image_path=row.image, prompt=row.prompt, out_dir=str(out_dir),
                                         preset=row.preset, seed=row.seed, models=models, device=device, force=force),
                     control)
        return RowOutcome(row, "done", 0, "", time.perf_counter() - start, str(out_dir))
    except Exception as exc:  # noqa: BLE001 - one bad row must not end the batch
        code, message = describe_error(exc, "batch row")
        if code == 1:
            last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
            message += f" at {Path(last.filename).name}:{last.lineno}" if last else ""
        return RowOutcome(row, "failed", code, message, time.perf_counter() - start, str(out_dir))
