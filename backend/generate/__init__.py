"""The generate job: segmentation → reference → stage 1 → mesh → texture → export."""

from .pipeline import generate
from .presets import PRESETS, PipelineConfig, pipeline_config
from .request import GenerateRequest, GenerationResult

__all__ = ["generate", "GenerateRequest", "GenerationResult", "PipelineConfig", "PRESETS", "pipeline_config"]
