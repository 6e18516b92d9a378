"""Per-stage wall time, peak GPU memory, and out-of-memory mapping for one job."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import torch

from ..out_of_memory import out_of_memory_error


@dataclass
class StageClock:
    """Records how long each stage took and the peak GPU memory over the job."""

    device: torch.device
    seconds: dict[str, float] = field(default_factory=dict)
    peak_memory_mb: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str):
        """Time ``name``; turn CUDA out-of-memory into exit 5 and give the memory back."""
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        try:
            yield
        except torch.cuda.OutOfMemoryError as exc:
            raise out_of_memory_error(name) from exc
        if cuda:
            torch.cuda.synchronize(self.device)
            self.peak_memory_mb[name] = torch.cuda.max_memory_allocated(self.device) / 2**20
        self.seconds[name] = time.perf_counter() - start

    @property
    def overall_peak_memory_mb(self) -> float:
        return max(self.peak_memory_mb.values(), default=0.0)

