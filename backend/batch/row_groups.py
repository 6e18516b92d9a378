"""Several rows in one process at once: their stage-1 fits, and then their stage-2 texture refinements, share
one batched Zero123 call per step.

One object's SDS step is launch-bound (a UNet call on a batch of 2); the same call on 2·K samples costs little
more, so K rows advancing together raise a GPU's throughput where more processes only time-slice it
(docs/batch.md). Each row still fails, cancels and resumes alone (``backend.stage1.fit_gaussians_together``,
``backend.mesh.refine_texture.refine_textures_together``).
"""

from __future__ import annotations

import time
from pathlib import Path

from .rows import BatchRow, RowOutcome
from .run_row import failed_outcome, row_is_done


def plan_row_groups(rows: list[BatchRow], rows_per_group: int) -> list[list[BatchRow]]:
    """Rows in groups of at most ``rows_per_group``: rows of one method and preset together (equal step counts
    keep a group full to the end), in CSV order within each."""
    if rows_per_group < 1:
        from ..errors import BadInputError

        raise BadInputError(f"--rows-per-process must be at least 1, got {rows_per_group}")
    kinds: dict[tuple[str, str], list[BatchRow]] = {}
    for row in rows:
        kinds.setdefault((row.method, row.preset), []).append(row)
    return [same[i:i + rows_per_group] for same in kinds.values() for i in range(0, len(same), rows_per_group)]


def run_row_group(rows: list[BatchRow], out_root: Path, models: str | None, device: str, force: bool
                  ) -> list[RowOutcome]:
    """Generate ``rows`` together (``api.generate_together``); rows already done are skipped unless ``force``.

    Each row's seconds are the whole group's wall time: its stages 1 and 2 ran with the others'.
    """
    from .. import api

    outcomes: dict[int, RowOutcome] = {}
    pending: list[tuple[BatchRow, api.GenerateRequest]] = []
    start = time.perf_counter()
    for row in rows:
        out_dir = out_root / row.folder_name
        if not force and row_is_done(out_dir, row.method):
            outcomes[row.index] = RowOutcome(row, "skipped", 0, "already done", 0.0, str(out_dir))
            continue
        try:
            pending.append((row, api.GenerateRequest(image_path=row.image, prompt=row.prompt, out_dir=str(out_dir),
                                                     preset=row.preset, seed=row.seed, method=row.method,
                                                     models=models, device=device, force=force)))
        except Exception as exc:  # noqa: BLE001 - a bad row fails alone
            outcomes[row.index] = failed_outcome(row, exc, 0.0, out_dir)
    results = api.generate_together([request for _, request in pending]) if pending else []
    seconds = time.perf_counter() - start
    for (row, request), result in zip(pending, results, strict=True):
        if isinstance(result, Exception):
            outcomes[row.index] = failed_outcome(row, result, seconds, Path(request.out_dir))
        else:
            outcomes[row.index] = RowOutcome(row, "done", 0, "", seconds, request.out_dir)
    return [outcomes[row.index] for row in rows]
