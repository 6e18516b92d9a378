"""Text-guided segmentation: CLIPSeg heatmap + Segment Anything masks → one object mask per prompt.

Public API: ``segment_image``, ``segment_to_folder``, ``SegmentConfig``, ``SegmentationResult``, ``slugify``.
The names load lazily (PEP 562): ``backend.segment.config`` and ``.slug`` import without torch; the others
pull in torch, transformers and segment-anything when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .api import segment_image
    from .config import SegmentConfig
    from .outputs import SegmentOutputs, segment_to_folder
    from .result import FastPrompts, SegmentationResult
    from .slug import slugify

_HOME = {"segment_image": ".api", "SegmentConfig": ".config", "SegmentOutputs": ".outputs",
         "segment_to_folder": ".outputs", "FastPrompts": ".result", "SegmentationResult": ".result",
         "slugify": ".slug"}
__all__ = ["FastPrompts", "SegmentConfig", "SegmentOutputs", "SegmentationResult", "segment_image",
           "segment_to_folder", "slugify"]


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name], __name__), name)
