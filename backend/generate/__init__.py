"""The generate job: segmentation → reference → stage 1 → mesh → texture → export.

The names below load lazily (PEP 562), so ``backend.generate.request`` stays importable without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .multi import ManyGenerationResult, ObjectDone, generate_many
    from .pipeline import generate
    from .presets import PRESETS, PipelineConfig, pipeline_config
    from .request import GenerateRequest, GenerationResult

_HOME = {"generate": ".pipeline", "generate_many": ".multi", "ManyGenerationResult": ".multi", "ObjectDone": ".multi",
         "PipelineConfig": ".presets", "PRESETS": ".presets", "pipeline_config": ".presets",
         "GenerateRequest": ".request", "GenerationResult": ".request"}
__all__ = ["generate", "generate_many", "GenerateRequest", "GenerationResult", "ManyGenerationResult", "ObjectDone",
           "PipelineConfig", "PRESETS", "pipeline_config"]


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name], __name__), name)
