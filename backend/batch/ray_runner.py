"""Rows on a Ray cluster: long-lived workers, by default one per GPU, that keep their models loaded across rows.

Ray does the placement (1/K of a GPU per worker with ``workers_per_gpu`` K, any node of the cluster) and the
process isolation; this module only hands rows, or groups of rows (``rows_per_process``), to free workers. A worker that dies mid-row (killed process, lost node) is replaced and its
row goes to the next free worker, at most ``MAX_RETRIES`` more times; the batch always completes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import BadInputError
from .rows import BatchRow, RowOutcome, RowSettings
from .run_row import run_row

MAX_RETRIES = 2


class RowWorker:
    """A Ray actor: runs rows one at a time in one process, so loaded models are reused between rows."""

    def __init__(self, settings: RowSettings):
        self.settings = settings

    def run(self, row: BatchRow, out_root: str) -> RowOutcome:
        return run_row(row, Path(out_root), self.settings)

    def gpu_key(self) -> str:
        """Which GPU this worker was given (node and GPU ids; empty ids on the CPU): workers with one key share it."""
        import ray

        gpus = ",".join(str(g) for g in ray.get_gpu_ids())
        return f"{ray.get_runtime_context().get_node_id()}:{gpus}"

    def run_group(self, rows: list[BatchRow], out_root: str) -> list[RowOutcome]:
        """Rows whose stage-1 fits and stage-2 textures advance together (backend/batch/row_groups.py)."""
        from .row_groups import run_row_group

        return run_row_group(rows, Path(out_root), self.settings)


@dataclass(frozen=True)
class WorkerPlacement:
    """How many workers to start and what each asks Ray for."""

    count: int
    num_gpus: float
    num_cpus: float
    device: str  # what each worker runs on: cuda or cpu


def place_workers(gpus: int, workers: int | None, workers_per_gpu: int = 1, device: str = "auto") -> WorkerPlacement:
    """``workers_per_gpu`` K workers share each of the cluster's ``gpus``, each asking for 1/K of one; without
    GPUs (or with ``device`` cpu) every worker takes a CPU. ``workers`` overrides the count."""
    if workers_per_gpu < 1:
        raise BadInputError(f"--workers-per-gpu must be at least 1, got {workers_per_gpu}")
    if workers is not None and workers < 1:
        raise BadInputError(f"--workers must be at least 1, got {workers}")
    on_gpu = gpus > 0 and device != "cpu"
    if not on_gpu:
        return WorkerPlacement(workers or 1, 0.0, 1.0, "cpu")
    return WorkerPlacement(workers or gpus * workers_per_gpu, 1.0 / workers_per_gpu, 0.0,
                           "cuda" if device == "auto" else device)


def ranks_on_shared_gpus(gpu_keys: list[str]) -> list[int]:
    """Each worker's place among the workers given the same GPU, in the order given: 0, 1, … per GPU."""
    seen: dict[str, int] = {}
    ranks = []
    for key in gpu_keys:
        ranks.append(seen.get(key, 0))
        seen[key] = ranks[-1] + 1
    return ranks


def connect_ray(address: str = "auto", workers: int | None = None) -> None:
    """Start a local Ray instance (``address`` auto, no ``RAY_ADDRESS``) or join a cluster, unless this process
    already has; Ray missing or unable to start is bad input (exit 2). The batch calls it before choosing its rows
    per process, so that a Ray that cannot start is its only line."""
    try:
        import ray
    except ImportError:
        raise BadInputError("--ray needs Ray: pip install 'ray[default]' (the project's 'ray' extra)") from None

    if not ray.is_initialized():
        try:
            if address == "auto" and not os.environ.get("RAY_ADDRESS"):
                # A local cluster: its worker processes inherit this process's environment (model mode, caches).
                ray.init(include_dashboard=False, log_to_driver=False, num_cpus=workers or None)
            else:
                ray.init(address=address, log_to_driver=False)
        except (OSError, ConnectionError, RuntimeError, TimeoutError) as exc:
            # e.g. an unpacked wheel whose gcs_server lost its executable bit, or an unreachable cluster address:
            # the installation or the address is at fault, not a row.
            raise BadInputError(f"Ray could not start or reach a cluster ({type(exc).__name__}: {exc})") from None


def run_rows_on_ray(rows: list[BatchRow], out_root: Path, settings: RowSettings, address: str = "auto",
                    workers: int | None = None, on_outcome: Callable[[RowOutcome], None] = lambda o: None,
                    workers_per_gpu: int = 1, rows_per_process: int = 1,
                    stagger_groups: bool = False) -> list[RowOutcome]:
    """``rows`` made with ``settings`` on the Ray instance or cluster at ``address`` (connected here unless
    ``connect_ray`` was called), in groups of ``rows_per_process`` (a number: batch resolves ``auto`` before calling
    this); ``stagger_groups``: the workers sharing a GPU start with shorter groups, one after another
    (``row_groups.stagger_first_groups``)."""
    connect_ray(address, workers)
    import ray

    placement = place_workers(int(ray.cluster_resources().get("GPU", 0)), workers, workers_per_gpu, settings.device)
    worker_settings = replace(settings, device=placement.device)
    actor_cls = ray.remote(num_gpus=placement.num_gpus, num_cpus=placement.num_cpus, max_restarts=0)(RowWorker)

    def new_worker():
        return actor_cls.remote(worker_settings)

    # The unit of work: one row (run), or a group of rows that fit together (run_group).
    if rows_per_process > 1:
        from .row_groups import plan_row_groups

        units = plan_row_groups(rows, rows_per_process)
    else:
        units = [[row] for row in rows]

    def submit(worker, unit: list[BatchRow]):
        if rows_per_process > 1:
            return worker.run_group.remote(unit, str(out_root))
        return worker.run.remote(unit[0], str(out_root))

    idle = [new_worker() for _ in range(min(placement.count, len(units)))]
    if stagger_groups and rows_per_process > 1 and placement.num_gpus < 1:
        from .row_groups import stagger_first_groups

        # the i-th unit goes to the i-th idle worker below, so the i-th worker's rank on its GPU cuts the i-th unit
        ranks = ranks_on_shared_gpus(ray.get([worker.gpu_key.remote() for worker in idle]))
        units = stagger_first_groups(units, ranks, workers_per_gpu)
    queue: list[tuple[list[BatchRow], int]] = [(unit, 0) for unit in units]
    running: dict = {}  # object ref → (worker, unit, attempt)
    outcomes: list[RowOutcome] = []
    while queue or running:
        while queue and idle:
            unit, attempt = queue.pop(0)
            worker = idle.pop(0)  # the longest-idle worker: a retried unit goes to another one
            running[submit(worker, unit)] = (worker, unit, attempt)
        done, _ = ray.wait(list(running), num_returns=1)
        ref = done[0]
        worker, unit, attempt = running.pop(ref)
        try:
            result = ray.get(ref)
            finished = result if isinstance(result, list) else [result]
            idle.append(worker)
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as exc:
            ray.kill(worker, no_restart=True)
            idle.append(new_worker())
            if attempt < MAX_RETRIES:
                queue.insert(0, (unit, attempt + 1))
                continue
            finished = [RowOutcome(row, "failed", 1, f"worker died {attempt + 1} times ({type(exc).__name__})", 0.0,
                                   str(out_root / row.folder_name)) for row in unit]
        for outcome in finished:
            on_outcome(outcome)
            outcomes.append(outcome)
    for worker in idle:
        ray.kill(worker, no_restart=True)
    return outcomes
