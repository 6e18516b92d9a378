"""Text-guided segmentation: CLIPSeg heatmap + Segment Anything masks → one object mask per prompt.

Public API: ``segment_image``, ``segment_to_folder``, ``SegmentConfig``, ``SegmentationResult``, ``slugify``.
Importing this package pulls in torch, transformers and segment-anything.
"""

from .api import segment_image
from .config import SegmentConfig
from .outputs import SegmentOutputs, segment_to_folder
from .result import FastPrompts, SegmentationResult
from .slug import slugify

__all__ = ["FastPrompts", "SegmentConfig", "SegmentOutputs", "SegmentationResult", "segment_image",
           "segment_to_folder", "slugify"]
