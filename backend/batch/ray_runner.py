"""Rows on a Ray cluster: one long-lived worker per GPU that keeps its models loaded across rows.

Ray does the placement (one GPU per worker, any node of the cluster) and the process isolation; this module
only hands rows to free workers. A worker that dies mid-row (killed process, lost node) is replaced and its
row goes to the next free worker, at most ``MAX_RETRIES`` more times; the batch always completes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import BadInputError
from .rows import BatchRow, RowOutcome
from .run_row import run_row

MAX_RETRIES = 2


class RowWorker:
    """A Ray actor: runs rows one at a time in one process, so loaded models are reused between rows."""

    def __init__(self, models: str | None, device: str):
        self.models, self.device = models, device

    def run(self, row: BatchRow, out_root: str, force: bool) -> RowOutcome:
        return run_row(row, Path(out_root), self.models, self.device, force)


def run_rows_on_ray(rows: list[BatchRow], out_root: Path, models: str | None, force: bool, address: str = "auto",
                    workers: int | None = None, on_outcome: Callable[[RowOutcome], None] = lambda o: None
                    ) -> list[RowOutcome]:
    try:
        import ray
    except ImportError:
        raise BadInputError("--ray needs Ray: pip install 'ray[default]' (the project's 'ray' extra)") from None

    if not ray.is_initialized():
        if address == "auto" and not os.environ.get("RAY_ADDRESS"):
            # A local cluster: its worker processes inherit this process's environment (model mode, caches).
            ray.init(include_dashboard=False, log_to_driver=False, num_cpus=workers or None)
        else:
            ray.init(address=address, log_to_driver=False)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    count = workers or gpus or 1
    device = "cuda" if gpus else "cpu"
    actor_cls = ray.remote(num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1, max_restarts=0)(RowWorker)

    def new_worker():
        return actor_cls.remote(models, device)

    idle = [new_worker() for _ in range(min(count, len(rows)))]
    queue: list[tuple[BatchRow, int]] = [(row, 0) for row in rows]
    running: dict = {}  # object ref → (worker, row, attempt)
    outcomes: list[RowOutcome] = []
    while queue or running:
        while queue and idle:
            row, attempt = queue.pop(0)
            worker = idle.pop(0)  # the longest-idle worker: a retried row goes to another one
            running[worker.run.remote(row, str(out_root), force)] = (worker, row, attempt)
        done, _ = ray.wait(list(running), num_returns=1)
        ref = done[0]
        worker, row, attempt = running.pop(ref)
        try:
            outcome = ray.get(ref)
            idle.append(worker)
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as exc:
            ray.kill(worker, no_restart=True)
            idle.append(new_worker())
            if attempt < MAX_RETRIES:
                queue.insert(0, (row, attempt + 1))
                continue
            outcome = RowOutcome(row, "failed", 1, f"worker died {attempt + 1} times ({type(exc).__name__})", 0.0,
                                 str(out_root / row.folder_name))
        on_outcome(outcome)
        outcomes.append(outcome)
    for worker in idle:
        ray.kill(worker, no_restart=True)
    return outcomes
