"""Models already in memory, so a second segment call in the same process does not load them again.

Keyed by (family, mode, variant, device, dtype, source folder, CUDA speed-ups): anything that changes the
weights, where they live or how the modules run gives a new entry, so an fp32 and an fp16 copy (or a patched
and an unpatched one) never stand in for each other. Small by design (a handful of models per process); ``clear_loaded_models``
frees them, e.g. before a GPU-heavy stage or between tests.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelKey:
    family: str  # "clipseg", "sam", …
    mode: str  # ModelMode value
    variant: str  # e.g. "vit_h"; "" where a family has one
    device: str  # "cpu", "cuda", "cuda:1"
    dtype: str  # weights' dtype, e.g. "float32"
    source: str = ""  # local folder the weights came from, if any
    speedups: str = ""  # changes applied after loading, e.g. "sdpa+graphs" (backend.segment.loading)


_LOADED: dict[ModelKey, Any] = {}
_LOCK = threading.Lock()  # the Blender job thread and the CLI may both load; build each model once


def get_or_load(key: ModelKey, load: Callable[[], Any]) -> Any:
    """Return the model for ``key``, calling ``load()`` only the first time."""
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = load()
        return _LOADED[key]


def clear_loaded_models() -> None:
    """Drop every kept model, and free it now: models prepared for CUDA hold reference cycles (their patched
    instance ``forward``s point back at them), which only the cycle collector frees."""
    with _LOCK:
        _LOADED.clear()
    gc.collect()


def loaded_keys() -> list[ModelKey]:
    with _LOCK:
        return list(_LOADED)
