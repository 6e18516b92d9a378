"""Models already in memory, so a second segment call in the same process does not load them again.

Keyed by (family, mode, variant, device, dtype, source folder): anything that changes the weights or where
they live gives a new entry. Small by design (a handful of models per process); ``clear_loaded_models``
frees them, e.g. before a GPU-heavy stage or between tests.
"""

from __future__ import annotations

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


_LOADED: dict[ModelKey, Any] = {}
_LOCK = threading.Lock()  # the Blender job thread and the CLI may both load; build each model once


def get_or_load(key: ModelKey, load: Callable[[], Any]) -> Any:
    """Return the model for ``key``, calling ``load()`` only the first time."""
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = load()
        return _LOADED[key]


def clear_loaded_models() -> None:
    with _LOCK:
        _LOADED.clear()


def loaded_keys() -> list[ModelKey]:
    with _LOCK:
        return list(_LOADED)
