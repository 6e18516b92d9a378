"""TripoSR's configuration as dataclasses, and the reader for the published ``config.yaml``.

The published checkpoint (``stabilityai/TripoSR``) comes with a ``config.yaml`` naming one class per part
(``image_tokenizer_cls``, ``tokenizer_cls``, …) and its arguments. We accept exactly the classes our modules
re-implement and read their arguments into :class:`TripoSRConfig`; anything else is refused (exit 4), never
imported. Interpolations like ``${tokenizer.num_channels}`` are resolved by a lookup in the same file.

The image tokenizer's ViT is described by the ``config.json`` of the DINO model the yaml names
(``facebook/dino-vitb16``); that file's values are facts we keep here (:data:`DINO_VITB16`), so loading
needs no second repository.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from ...errors import ModelsUnavailableError


@dataclass(frozen=True)
class ViTSettings:
    """The image tokenizer's transformers ``ViTConfig`` fields that shape the weights."""

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    image_size: int = 224  # the size the position embeddings were trained at (interpolated to the input)
    patch_size: int = 16
    layer_norm_eps: float = 1e-12
    qkv_bias: bool = True


# facebook/dino-vitb16's config.json (ViT-B/16, hidden 768, 12 layers, 12 heads, 224 px, patch 16).
DINO_VITB16 = ViTSettings()
KNOWN_VITS = {"facebook/dino-vitb16": DINO_VITB16}


@dataclass(frozen=True)
class TripoSRConfig:
    """Every size and activation of the model; the defaults are the published configuration.

    cond_image_size:  side of the square image the model reads (512), see backend.quick.preprocess
    plane_size:       side of each of the 3 learned token planes (32) → 3·32² = 3072 tokens
    token_channels:   channels per token (1024), also the backbone's in/out width
    backbone_*:       the cross-attention transformer over the tokens (16 layers, 16 heads × 64)
    norm_groups:      GroupNorm groups at the backbone's input (32)
    triplane_channels: channels per triplane texel after the 2× transposed-conv upsampler (40) → 64² planes
    decoder_*:        the NeRF MLP reading the 3 planes' concatenated features (120 → 64 ×9 → 4)
    radius:           the triplane spans [-radius, radius]³ (0.87, just over half the unit cube's diagonal)
    density_bias:     added before the density activation (exp)
    """

    cond_image_size: int = 512
    vit: ViTSettings = field(default_factory=ViTSettings)
    plane_size: int = 32
    token_channels: int = 1024
    backbone_heads: int = 16
    backbone_head_dim: int = 64
    backbone_layers: int = 16
    norm_groups: int = 32
    triplane_channels: int = 40
    decoder_neurons: int = 64
    decoder_hidden_layers: int = 9
    decoder_activation: str = "silu"
    radius: float = 0.87
    density_activation: str = "exp"
    density_bias: float = -1.0
    color_activation: str = "sigmoid"

    def __post_init__(self) -> None:
        if self.token_channels % self.norm_groups:
            raise ValueError(f"token_channels {self.token_channels} is not divisible by norm_groups {self.norm_groups}")
        if self.decoder_activation not in ACTIVATIONS:
            raise ValueError(f"unsupported decoder activation {self.decoder_activation!r}")
        if self.density_activation not in FIELD_ACTIVATIONS or self.color_activation not in FIELD_ACTIVATIONS:
            raise ValueError(f"unsupported field activations {self.density_activation!r}, {self.color_activation!r}")


ACTIVATIONS = ("silu", "relu")
FIELD_ACTIVATIONS = ("exp", "sigmoid", "softplus", "relu", "none")

PUBLISHED = TripoSRConfig()

# Small enough for CPU tests in milliseconds; the same shapes as the seeded fact configuration
# (tests/facts/triposr_small_config.json), so the fact weights load into it.
TINY = TripoSRConfig(
    cond_image_size=24,
    vit=ViTSettings(hidden_size=24, num_hidden_layers=2, num_attention_heads=2, intermediate_size=40, image_size=16,
                    patch_size=4),
    plane_size=4, token_channels=32, backbone_heads=2, backbone_head_dim=16, backbone_layers=2,
    triplane_channels=8, decoder_neurons=16, decoder_hidden_layers=3,
)

# The classes the published config.yaml names, one per part: the only ones we accept.
EXPECTED_CLASSES = {
    "image_tokenizer_cls": "tsr.models.tokenizers.image.DINOSingleImageTokenizer",
    "tokenizer_cls": "tsr.models.tokenizers.triplane.Triplane1DTokenizer",
    "backbone_cls": "tsr.models.transformer.transformer_1d.Transformer1D",
    "post_processor_cls": "tsr.models.network_utils.TriplaneUpsampleNetwork",
    "decoder_cls": "tsr.models.network_utils.NeRFMLP",
    "renderer_cls": "tsr.models.nerf_renderer.TriplaneNeRFRenderer",
}
_REFERENCE = re.compile(r"^\$\{([A-Za-z0-9_.]+)\}$")


def _resolve(value, root: dict):
    """``${a.b}`` → root["a"]["b"]; other values unchanged (the only interpolation form the yaml uses)."""
    if isinstance(value, str) and (match := _REFERENCE.match(value.strip())):
        node = root
        for part in match.group(1).split("."):
            if not isinstance(node, dict) or part not in node:
                raise ModelsUnavailableError(f"TripoSR config.yaml: unresolved reference {value!r}")
            node = node[part]
        return _resolve(node, root)
    return value


def config_from_yaml_text(text: str) -> TripoSRConfig:
    """Parse the published ``config.yaml`` (safe YAML, no object construction) into a :class:`TripoSRConfig`."""
    import yaml

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ModelsUnavailableError(f"TripoSR config.yaml is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(raw, dict):
        raise ModelsUnavailableError("TripoSR config.yaml is not a mapping")
    for key, expected in EXPECTED_CLASSES.items():
        if raw.get(key) != expected:
            raise ModelsUnavailableError(f"TripoSR config.yaml: {key} is {raw.get(key)!r}; only {expected} is supported")

    def part(name: str) -> dict:
        section = raw.get(name) or {}
        return {k: _resolve(v, raw) for k, v in section.items()}

    image, tokens, backbone = part("image_tokenizer"), part("tokenizer"), part("backbone")
    post, decoder, renderer = part("post_processor"), part("decoder"), part("renderer")
    vit_name = image.get("pretrained_model_name_or_path", "facebook/dino-vitb16")
    if vit_name not in KNOWN_VITS:
        raise ModelsUnavailableError(f"TripoSR config.yaml: unknown image tokenizer {vit_name!r}")
    if renderer.get("feature_reduction", "concat") != "concat":
        raise ModelsUnavailableError("TripoSR config.yaml: only feature_reduction 'concat' is supported")
    try:
        config = _config_from_parts(raw, tokens, backbone, post, decoder, renderer, vit_name)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelsUnavailableError(f"TripoSR config.yaml: unsupported or missing value ({exc})") from exc
    checks = {
        "backbone.in_channels": (backbone.get("in_channels"), config.token_channels),
        "backbone.cross_attention_dim": (backbone.get("cross_attention_dim"), config.vit.hidden_size),
        "post_processor.in_channels": (post.get("in_channels"), config.token_channels),
        "decoder.in_channels": (decoder.get("in_channels"), 3 * config.triplane_channels),
    }
    for name, (found, expected) in checks.items():
        if found is not None and int(found) != expected:
            raise ModelsUnavailableError(f"TripoSR config.yaml: {name} is {found}, inconsistent with {expected}")
    return config


def _config_from_parts(raw, tokens, backbone, post, decoder, renderer, vit_name) -> TripoSRConfig:
    # defaults below are the official classes' own defaults, used where the yaml leaves a field out
    return replace(
        PUBLISHED,
        cond_image_size=int(raw["cond_image_size"]),
        vit=KNOWN_VITS[vit_name],
        plane_size=int(tokens["plane_size"]),
        token_channels=int(tokens["num_channels"]),
        backbone_heads=int(backbone.get("num_attention_heads", 16)),
        backbone_head_dim=int(backbone.get("attention_head_dim", 88)),
        backbone_layers=int(backbone.get("num_layers", 1)),
        norm_groups=int(backbone.get("norm_num_groups", 32)),
        triplane_channels=int(post["out_channels"]),
        decoder_neurons=int(decoder["n_neurons"]),
        decoder_hidden_layers=int(decoder["n_hidden_layers"]),
        decoder_activation=str(decoder.get("activation", "relu")),
        radius=float(renderer["radius"]),
        density_activation=str(renderer.get("density_activation", "trunc_exp")),
        density_bias=float(renderer.get("density_bias", -1.0)),
        color_activation=str(renderer.get("color_activation", "sigmoid")),
    )
