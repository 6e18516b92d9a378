"""SAM 3 (transformers ``Sam3Model``, promptable concept segmentation) in the three model modes.

- ``real``: ``facebook/sam3`` at a pinned revision. The repository is gated (each user requests access on
  the model page and downloads with their own Hugging Face token) and the weights are under Meta's SAM
  License, so nothing is fetched unless the user has said yes to that licence once (``Sam3Access``); files
  already on disk (a local folder, ``$IMAGE_TO_3D_MODEL_DIR/facebook--sam3`` or the hub cache) are used
  without asking again. Weights are read from safetensors only; never ``trust_remote_code``. The repository's
  transformers files are a ``sam3_video`` composite (detector + video tracker, as a public project's tests
  record it; not seen from here); ``Sam3Model.from_pretrained`` takes the detector and skips the tracker.
- ``tiny``: the same class with a tiny ``Sam3Config``, seeded random weights and CLIPSeg's offline
  byte-level tokenizer (SAM 3's text encoder is a CLIP text model with a CLIP tokenizer).
- ``full-random``: the real architecture (default ``Sam3Config``: ViT-L-ish 1008 px backbone, 24-layer CLIP
  text encoder, 200 queries) with random weights, for GPU timing.

The image preprocessing mirrors SAM 3's image processor (squash-resize to a square, rescale to [0, 1],
normalise); we do it in torch so a photo never round-trips through PIL.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ModelsUnavailableError
from . import hub
from .catalog import SAM3_LICENSE, SAM3_MODEL_PAGE, SAM3_REPO_ID, SAM3_REVISION
from .clipseg import build_offline_tokenizer
from .mode import ModelMode

# The transformers layout of the repository; sam3.pt (the original code's checkpoint) is never fetched.
SAM3_FILES = (
    "config.json", "model.safetensors", "preprocessor_config.json", "processor_config.json",
    "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json",
)
# SAM 3's image processor: 1008 x 1008, mean = std = 0.5 per channel
DEFAULT_IMAGE_SIZE = 1008
DEFAULT_IMAGE_MEAN = (0.5, 0.5, 0.5)
DEFAULT_IMAGE_STD = (0.5, 0.5, 0.5)
MAX_PROMPT_TOKENS = 32  # SAM 3's text context (its processor pads every prompt to 32 tokens)
TINY_IMAGE_SIZE = 56  # 4 x 4 patches of 14 px


@dataclass(frozen=True)
class Sam3Access:
    """What the user allowed for the gated real weights (the Blender preferences or CLI flags fill it)."""

    accept_license: bool = False  # the user accepted the SAM License: a download may happen
    token: str | None = None  # a Hugging Face token; None → the stored login (`hf auth login`) or $HF_TOKEN


@dataclass(frozen=True)
class Sam3Models:
    model: torch.nn.Module  # transformers Sam3Model, eval mode
    tokenizer: object  # transformers CLIPTokenizer
    image_size: int  # square input side the model expects
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    mode: ModelMode
    model_id: str  # repo id, or a description for random weights
    revision: str  # pinned revision, or "random"


def load_sam3(mode: ModelMode, device: torch.device | str = "cpu", local_dir: str | os.PathLike | None = None,
              access: Sam3Access = Sam3Access(), seed: int = 0) -> Sam3Models:
    """SAM 3 in ``mode`` on ``device``, weights float32 as stored (callers convert for CUDA)."""
    mode = ModelMode(mode)
    if mode is ModelMode.REAL:
        models = load_sam3_folder(find_sam3_files(local_dir, access))
    elif mode is ModelMode.TINY:
        models = build_tiny_sam3(seed)
    else:
        models = build_full_random_sam3(seed)
    models.model.to(device)
    return models


def find_sam3_files(local_dir: str | os.PathLike | None = None, access: Sam3Access = Sam3Access()) -> Path:
    """The folder of the real weights: on disk if they are there, else downloaded, only with consent.

    Raises ModelsUnavailableError (exit 4) whose message says what the user can do.
    """
    try:
        return hub.fetch_snapshot(SAM3_REPO_ID, SAM3_REVISION, SAM3_FILES, local_dir=local_dir, allow_download=False)
    except ModelsUnavailableError:
        if local_dir is not None:
            raise
    if not access.accept_license:
        raise ModelsUnavailableError(
            f"SAM 3 weights are not on this computer, and downloading them needs your consent to their licence "
            f"({SAM3_LICENSE}, read it on {SAM3_MODEL_PAGE}): pass --accept-sam3-license (in Blender: tick "
            f"'Accept the SAM License' in the preferences), or use the default segmenter (--segmenter clipseg-sam)"
        )
    try:
        return hub.fetch_snapshot(SAM3_REPO_ID, SAM3_REVISION, SAM3_FILES, token=access.token)
    except ModelsUnavailableError as exc:
        # hub names the folders it looked in; what matters here is why the download failed
        cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else "offline: HF_HUB_OFFLINE is set"
        raise ModelsUnavailableError(no_access_message(cause)) from None


def no_access_message(cause: str) -> str:
    """What to do when the gated download fails (no access granted, not logged in, or offline)."""
    return (
        f"SAM 3 weights could not be downloaded ({cause}). {SAM3_REPO_ID} is gated: request access on "
        f"{SAM3_MODEL_PAGE} (logged in to Hugging Face), then log in here with `hf auth login` or give a token "
        f"(--hf-token, $HF_TOKEN, or the token preference in Blender); or use the default segmenter "
        f"(--segmenter clipseg-sam)"
    )


def load_sam3_folder(folder: str | os.PathLike, model_id: str = SAM3_REPO_ID,
                     revision: str = SAM3_REVISION) -> Sam3Models:
    """Load SAM 3 saved in the hub's transformers layout (config.json, model.safetensors, tokenizer files)."""
    from transformers import CLIPTokenizer, Sam3Model

    folder = Path(folder)
    if not (folder / "model.safetensors").is_file():
        raise ModelsUnavailableError(f"no SAM 3 weights (model.safetensors) in {folder}")
    try:
        model = Sam3Model.from_pretrained(folder, use_safetensors=True, trust_remote_code=False,
                                          local_files_only=True)
        tokenizer = CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - safetensors, json, tokenizers each raise their own classes
        raise ModelsUnavailableError(
            f"SAM 3 files in {folder} cannot be loaded ({type(exc).__name__}: {str(exc)[:200]}); "
            "delete them and download again"
        ) from None
    size, mean, std = _read_preprocessing(folder)
    return Sam3Models(model.eval(), tokenizer, size, mean, std, ModelMode.REAL, model_id, revision)


def _read_preprocessing(folder: Path) -> tuple[int, tuple, tuple]:
    """Size, mean and std from preprocessor_config.json, or from processor_config.json's image_processor."""
    for name in ("preprocessor_config.json", "processor_config.json"):
        path = folder / name
        if path.is_file():
            cfg = json.loads(path.read_text())
            cfg = cfg.get("image_processor", cfg)
            size = cfg.get("size", DEFAULT_IMAGE_SIZE)
            if isinstance(size, dict):
                size = size.get("height", DEFAULT_IMAGE_SIZE)
            return (int(size), tuple(cfg.get("image_mean", DEFAULT_IMAGE_MEAN)),
                    tuple(cfg.get("image_std", DEFAULT_IMAGE_STD)))
    return DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_MEAN, DEFAULT_IMAGE_STD


def tiny_sam3_config(vocab_size: int, bos: int, eos: int):
    """A Sam3Config of width 32 (~0.3 M parameters): 56 px input, 8 queries. CPU forward: tens of ms."""
    from transformers import CLIPTextConfig, Sam3Config, Sam3VisionConfig, Sam3ViTConfig

    grid = TINY_IMAGE_SIZE // 14
    backbone = Sam3ViTConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                             image_size=TINY_IMAGE_SIZE, patch_size=14, window_size=2, global_attn_indexes=[1],
                             pretrain_image_size=TINY_IMAGE_SIZE)
    vision = Sam3VisionConfig(backbone_config=backbone, fpn_hidden_size=32,
                              backbone_feature_sizes=[[4 * grid] * 2, [2 * grid] * 2, [grid] * 2])
    text = CLIPTextConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, projection_dim=16,
                          num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=MAX_PROMPT_TOKENS,
                          bos_token_id=bos, eos_token_id=eos, pad_token_id=eos)
    small = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64)
    return Sam3Config(
        vision_config=vision, text_config=text,
        geometry_encoder_config=dict(num_layers=1, **small),
        detr_encoder_config=dict(num_layers=1, **small),
        detr_decoder_config=dict(num_layers=1, num_queries=8, **small),
        mask_decoder_config=dict(hidden_size=32, num_upsampling_stages=3, num_attention_heads=2),
    )


def build_tiny_sam3(seed: int = 0) -> Sam3Models:
    """Same class, tiny config, seeded random weights, offline tokenizer: tests only."""
    from transformers import Sam3Model

    tokenizer, vocab_size, bos, eos = build_offline_tokenizer()
    torch.manual_seed(seed)
    model = Sam3Model(tiny_sam3_config(vocab_size, bos, eos)).eval()
    return Sam3Models(model, tokenizer, TINY_IMAGE_SIZE, DEFAULT_IMAGE_MEAN, DEFAULT_IMAGE_STD,
                      ModelMode.TINY, "sam3 tiny (random weights)", "random")


def build_full_random_sam3(seed: int = 0) -> Sam3Models:
    """The released architecture (default Sam3Config, ~850 M parameters) with seeded random weights: timing only.

    The text encoder's vocabulary is CLIP's 49408 tokens; the offline tokenizer uses only its first 514 ids,
    which costs the same per token.
    """
    from transformers import Sam3Config, Sam3Model

    tokenizer, _, bos, eos = build_offline_tokenizer()
    config = Sam3Config()
    config.text_config.bos_token_id, config.text_config.eos_token_id = bos, eos
    config.text_config.pad_token_id = eos
    torch.manual_seed(seed)
    model = Sam3Model(config).eval()
    return Sam3Models(model, tokenizer, DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_MEAN, DEFAULT_IMAGE_STD,
                      ModelMode.FULL_RANDOM, "sam3 architecture (random weights)", "random")


def save_sam3_folder(models: Sam3Models, folder: str | os.PathLike, composite: bool = True) -> Path:
    """Write ``models`` as :func:`load_sam3_folder` reads them (used by tests).

    ``composite`` (as ``facebook/sam3`` is published): config.json is a ``sam3_video`` config whose
    ``detector_config`` is the Sam3Config, and model.safetensors holds the detector's weights under
    ``detector_model.`` beside the video tracker's (one stand-in tensor here), which Sam3Model skips.
    Otherwise: plain ``save_pretrained`` of the Sam3Model.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    models.model.save_pretrained(folder, safe_serialization=True)
    if composite:
        from safetensors.torch import save_file

        detector = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({
            "model_type": "sam3_video", "architectures": ["Sam3VideoModel"], "detector_config": detector,
        }))
        weights = {f"detector_model.{name}": t.detach().contiguous() for name, t in models.model.state_dict().items()}
        weights["tracker_model.memory_attention.layers.0.weight"] = torch.zeros(2)
        save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    models.tokenizer.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "Sam3ImageProcessor", "image_mean": list(models.image_mean),
        "image_std": list(models.image_std), "size": {"height": models.image_size, "width": models.image_size},
    }))
    return folder
