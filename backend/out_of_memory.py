"""Giving the GPU back after CUDA ran out of memory, so the next attempt (a smaller preset, SAM vit_b,
half precision) starts from an empty card instead of one still holding the failed job's models."""

from __future__ import annotations

import gc

import torch

from .errors import OutOfGPUMemoryError
from .models.loaded import clear_loaded_models


def release_gpu_memory() -> None:
    """Return CUDA's cached blocks to the driver (models kept between calls stay loaded).

    Once per job or per group of jobs, and after a failure, not per stage: the full collection walks every
    Python object, half a million with the models loaded (0.26 s on a 2-core CPU), and a group of 8 rows that
    released after each stage and each row spent seconds here.
    """
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def release_after_out_of_memory() -> None:
    """Drop the models kept between calls and return CUDA's cached blocks to the driver."""
    clear_loaded_models()
    release_gpu_memory()


def out_of_memory_error(stage: str) -> OutOfGPUMemoryError:
    """The exit-5 error for ``stage``, after giving the memory back; ``raise out_of_memory_error(s) from exc``."""
    release_after_out_of_memory()
    return OutOfGPUMemoryError(stage)
