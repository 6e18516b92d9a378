"""TripoSR, the feed-forward image → triplane model behind the "quick" method (docs/quick-method.md).

``config`` (dataclasses + the published config.yaml reader), ``image_tokenizer`` (transformers' ViT with
the checkpoint's names), ``backbone`` (triplane tokens + transformer), ``decoder`` (upsampler + NeRF MLP),
``model`` (the assembly and its frame), ``loading`` (real / tiny / full-random).
"""

from .config import PUBLISHED, TINY, TripoSRConfig
from .decoder import FieldSample
from .loading import (
    LICENCE,
    LoadedTripoSR,
    load_triposr,
    load_triposr_cached,
    load_triposr_folder,
    triposr_provenance,
)
from .model import TripoSR, triposr_to_world, world_scale, world_to_triposr

__all__ = [
    "LICENCE", "PUBLISHED", "TINY", "FieldSample", "LoadedTripoSR", "TripoSR", "TripoSRConfig", "load_triposr",
    "load_triposr_cached", "load_triposr_folder", "triposr_provenance", "triposr_to_world", "world_scale", "world_to_triposr",
]
