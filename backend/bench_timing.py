"""Timing one piece of work the way the benchmark reports it: median of N runs after warm-up, with the
peak GPU memory the runs reached."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class StageTiming:
    name: str
    median_s: float
    runs_s: tuple[float, ...]
    peak_gpu_memory_mb: float
    note: str = ""
    counts: dict[str, int] = field(default_factory=dict)  # sizes of the work that the timing depends on

    def as_dict(self) -> dict:
        report = {"median_s": round(self.median_s, 5), "runs_s": [round(r, 5) for r in self.runs_s],
                  "peak_gpu_memory_mb": round(self.peak_gpu_memory_mb, 1), "note": self.note}
        if self.counts:
            report["counts"] = dict(self.counts)
        return report


def time_stage(name: str, work: Callable[[], object], device: torch.device, repeats: int = 5, warmup: int = 1,
               note: str = "") -> StageTiming:
    """Run ``work`` ``warmup`` times untimed, then ``repeats`` times timed (synchronising CUDA around each)."""
    cuda = device.type == "cuda"
    for _ in range(warmup):
        work()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        if cuda:
            torch.cuda.synchronize(device)
        runs.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else 0.0
    return StageTiming(name, statistics.median(runs), tuple(runs), peak, note)
