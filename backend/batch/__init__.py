"""Many generate jobs from a CSV, locally or on a Ray cluster; per-row isolation and resume."""

from .command import run_batch_command
from .rows import BatchRow, RowOutcome, read_rows

__all__ = ["run_batch_command", "BatchRow", "RowOutcome", "read_rows"]
