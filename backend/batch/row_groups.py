"""Several rows in one process at once: their stage-1 fits, and then their stage-2 texture refinements, share
one batched Zero123 call per step.

One object's SDS step is launch-bound (a UNet call on a batch of 2); the same call on 2·K samples costs little
more, so K rows advancing together raise a GPU's throughput where more processes only time-slice it
(docs/batch.md). Each row still fails, cancels and resumes alone (``backend.stage1.fit_gaussians_together``,
``backend.mesh.refine_texture.refine_textures_together``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from ..choices import AUTO_WORKERS_PER_GPU, MAX_AUTO_ROWS_PER_PROCESS, ROW_GPU_MEMORY
from .rows import BatchRow, RowOutcome, RowSettings
from .run_row import failed_outcome, row_is_done


@dataclass(frozen=True)
class FreeGpuMemory:
    """What ``measure_free_gpu_memory`` read: the free bytes of the GPU a batch's rows run on."""

    device: str  # e.g. cuda:0
    free_bytes: int


@dataclass(frozen=True)
class RowsPerProcessChoice:
    """How many rows one process takes at a time, and why (the line the batch prints before its first row)."""

    rows: int
    reason: str


@dataclass(frozen=True)
class WorkersPerGpuChoice:
    """How many Ray workers share each GPU, and why (the line the batch prints before its first row)."""

    workers: int
    reason: str


def measure_free_gpu_memory(device_choice: str, on_ray: bool) -> FreeGpuMemory | None:
    """The free memory of the GPU this batch's rows run on: the ``--device`` choice resolved as a row resolves it
    (``backend.device.resolve_device``), or under Ray the GPU this process sees. None when they run on the CPU,
    or under Ray when this process sees no GPU (the cluster's GPUs are on other nodes)."""
    if device_choice == "cpu":
        return None  # no torch import for a CPU batch
    import torch

    if on_ray:
        if not torch.cuda.is_available():
            return None
        # The reading opens a CUDA context in this driver process (a few hundred MB of that GPU, kept until the
        # batch ends); Ray's workers are separate processes with their own.
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        from ..device import resolve_device

        device = resolve_device(device_choice)  # --device cuda without a GPU: exit 2 here, once
        if device.type != "cuda":
            return None
        device = torch.device("cuda", device.index if device.index is not None else torch.cuda.current_device())
    free_bytes, _total = torch.cuda.mem_get_info(device)
    return FreeGpuMemory(f"cuda:{device.index}", int(free_bytes))


def choose_rows_per_process(device_choice: str, workers_per_gpu: int = 1, on_ray: bool = False
                            ) -> RowsPerProcessChoice:
    """``--rows-per-process auto``, resolved once before any row runs: 1 on the CPU (rows are not launch-bound
    there) and under Ray without a GPU here; on a GPU as many rows as its free memory holds at ``ROW_GPU_MEMORY``
    each, that memory shared by the ``workers_per_gpu`` workers on it, at least 1 and at most
    ``MAX_AUTO_ROWS_PER_PROCESS``."""
    reading = measure_free_gpu_memory(device_choice, on_ray)
    if reading is None:
        if on_ray and device_choice != "cpu":
            return RowsPerProcessChoice(1, "auto: no GPU visible to this process under --ray; on a cluster pass "
                                           "--rows-per-process K")
        return RowsPerProcessChoice(1, "auto: the rows run on the CPU")
    per_worker = reading.free_bytes // workers_per_gpu
    rows = min(MAX_AUTO_ROWS_PER_PROCESS, max(1, per_worker // ROW_GPU_MEMORY))
    shared = f" shared by {workers_per_gpu} workers" if workers_per_gpu > 1 else ""
    return RowsPerProcessChoice(rows, f"auto: {reading.free_bytes / 2**30:.0f} GiB free on {reading.device}{shared}, "
                                      f"{ROW_GPU_MEMORY // 2**30} GiB a row, at most {MAX_AUTO_ROWS_PER_PROCESS}")


def choose_workers_per_gpu(device_choice: str) -> WorkersPerGpuChoice:
    """``--workers-per-gpu auto`` under Ray, resolved once before any row runs: ``AUTO_WORKERS_PER_GPU`` when the
    GPU this process sees has ``ROW_GPU_MEMORY`` free for each of them (so each can hold a row at least), else 1;
    1 on the CPU and when this process sees no GPU (a cluster's GPUs are on other nodes: pass K there)."""
    reading = measure_free_gpu_memory(device_choice, on_ray=True)
    if reading is None:
        if device_choice != "cpu":
            return WorkersPerGpuChoice(1, "auto: no GPU visible to this process under --ray; on a cluster pass "
                                          "--workers-per-gpu K")
        return WorkersPerGpuChoice(1, "auto: the rows run on the CPU")
    workers = AUTO_WORKERS_PER_GPU if reading.free_bytes >= AUTO_WORKERS_PER_GPU * ROW_GPU_MEMORY else 1
    return WorkersPerGpuChoice(workers, f"auto: {reading.free_bytes / 2**30:.0f} GiB free on {reading.device}, "
                                        f"{ROW_GPU_MEMORY // 2**30} GiB a row, at most {AUTO_WORKERS_PER_GPU}")


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


def stagger_first_groups(groups: list[list[BatchRow]], ranks: list[int], workers_per_gpu: int
                         ) -> list[list[BatchRow]]:
    """``batch --stagger-groups``: the i-th group, the first of the i-th worker, shortened for the k-th worker on
    its GPU (``ranks[i]`` = k) to (W − k)/W of its rows, rounded up, W = ``workers_per_gpu``; what is cut off follows
    the other groups as groups of their own. The first worker on a GPU keeps its group whole.

    Why: workers on one GPU that start together with equal groups run in step, fitting at the same time (sharing the
    GPU) and then meshing and baking on the CPU at the same time (leaving it idle); shorter first groups set them
    apart by a fraction of a group, so one's CPU stages fall in the other's fit (docs/batch.md)."""
    staggered, tails = [], []
    for i, group in enumerate(groups):
        rank = ranks[i] if i < len(ranks) else 0
        keep = len(group)
        if 0 < rank < workers_per_gpu:
            keep = math.ceil(len(group) * (workers_per_gpu - rank) / workers_per_gpu)
        staggered.append(group[:keep])
        if group[keep:]:
            tails.append(group[keep:])
    return staggered + tails


def run_row_group(rows: list[BatchRow], out_root: Path, settings: RowSettings) -> list[RowOutcome]:
    """Generate ``rows`` together (``api.generate_together``); rows already done are skipped unless
    ``settings.force``.

    Each row's seconds are the whole group's wall time: its stages 1 and 2 ran with the others'.
    """
    from .. import api

    outcomes: dict[int, RowOutcome] = {}
    pending: list[tuple[BatchRow, api.GenerateRequest]] = []
    start = time.perf_counter()
    for row in rows:
        out_dir = out_root / row.folder_name
        if not settings.force and row_is_done(out_dir, row.method):
            outcomes[row.index] = RowOutcome(row, "skipped", 0, "already done", 0.0, str(out_dir))
            continue
        try:
            pending.append((row, settings.request(row, out_dir)))
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
