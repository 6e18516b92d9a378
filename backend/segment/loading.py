"""The segmentation models as one run uses them: loaded once per process, prepared for the device.

One home for the cache keys, so ``segment_image`` and ``correct_mask`` share a loaded SAM, and an fp16 copy
never stands in for an fp32 one (or a patched copy for an unpatched one).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.catalog import CLIPSEG_REPO_ID, SAM_REPO_ID
from ..models.clipseg import ClipSegModels, load_clipseg, prepare_clipseg
from ..models.hub import model_source
from ..models.loaded import ModelKey, get_or_load
from ..models.mode import ModelMode
from ..models.sam import SamModels, load_sam
from ..models.sam_cuda import prepare_sam
from .config import SegmentConfig


@dataclass(frozen=True)
class Precision:
    """How the models run on this device, from SegmentConfig; on the CPU: float32 as loaded, nothing else."""

    half_weights: bool  # weights converted to fp16 once
    encoder_autocast: bool  # CLIPSeg and SAM's image encoder under fp16 autocast (fp32 weights, the earlier path)
    decoder_autocast: bool  # SAM's prompt encoder + mask decoder under fp16 autocast (they mix fp32 coordinates)
    sdpa_attention: bool
    cuda_graphs: bool

    @classmethod
    def of(cls, config: SegmentConfig, device: torch.device) -> Precision:
        cuda = device.type == "cuda"
        half = cuda and config.half
        half_weights = half and config.half_weights
        encoder_autocast = half and not half_weights
        # a graph captured under autocast would need autocast's cast cache off; graphs only run without it
        graphs = cuda and config.cuda_graphs and not encoder_autocast
        return cls(half_weights, encoder_autocast, half, cuda and config.sdpa_attention, graphs)

    @property
    def dtype_name(self) -> str:
        return "float16" if self.half_weights else "float32"

    def speedups(self, family: str) -> str:
        """The cache key's part for what prepare_* changes in ``family``'s modules ("" = the model as loaded)."""
        sam = family == "sam"
        parts = [name for name, on in (("sdpa", sam and self.sdpa_attention),  # graphs of SAM need SDPA (sam_cuda)
                                       ("graphs", self.cuda_graphs and (not sam or self.sdpa_attention))) if on]
        return "+".join(parts)

    @property
    def changes_models(self) -> bool:
        return self.half_weights or self.sdpa_attention or self.cuda_graphs


def load_clipseg_cached(mode: ModelMode, config: SegmentConfig, device: torch.device) -> ClipSegModels:
    precision = Precision.of(config, device)
    key = ModelKey("clipseg", mode.value, "rd64-refined", str(device), precision.dtype_name,
                   model_source(CLIPSEG_REPO_ID, config.model_dir), precision.speedups("clipseg"))

    def load() -> ClipSegModels:
        if not precision.changes_models:
            return load_clipseg(mode, device, local_dir=config.model_dir)
        models = load_clipseg(mode, "cpu", local_dir=config.model_dir)
        return prepare_clipseg(models, device, half=precision.half_weights, graphs=precision.cuda_graphs)

    return get_or_load(key, load)


def load_sam_cached(mode: ModelMode, config: SegmentConfig, device: torch.device) -> SamModels:
    precision = Precision.of(config, device)
    variant = "tiny" if mode is ModelMode.TINY else config.sam_variant
    key = ModelKey("sam", mode.value, variant, str(device), precision.dtype_name,
                   model_source(SAM_REPO_ID, config.model_dir), precision.speedups("sam"))

    def load() -> SamModels:
        if not precision.changes_models:
            return load_sam(mode, config.sam_variant, device, local_dir=config.model_dir)
        models = load_sam(mode, config.sam_variant, "cpu", local_dir=config.model_dir)
        return prepare_sam(models, device, half=precision.half_weights, sdpa=precision.sdpa_attention,
                           graphs=precision.cuda_graphs)

    return get_or_load(key, load)
