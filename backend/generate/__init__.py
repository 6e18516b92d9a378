"""The generate job: segmentation → reference → stage 1 → mesh → texture → export."""

from .multi import ManyGenerationResult, ObjectDone, generate_many
from .pipeline import generate
from .presets import PRESETS, PipelineConfig, pipeline_config
from .request import GenerateRequest, GenerationResult

__all__ = ["generate", "generate_many", "GenerateRequest", "GenerationResult", "ManyGenerationResult", "ObjectDone",
           "PipelineConfig", "PRESETS", "pipeline_config"]
