"""CLIPSeg (transformers ``CLIPSegForImageSegmentation``) in the three model modes of docs/design.md §3.

- ``real``: ``CIDAS/clipseg-rd64-refined`` at a pinned revision, from a local folder or the Hugging Face
  cache (``hub.fetch_snapshot``); safetensors when the folder has them, else ``pytorch_model.bin`` which
  transformers reads with ``torch.load(weights_only=True)``; never ``trust_remote_code``.
- ``tiny``: the same class with a tiny config, seeded random weights and an offline byte-level BPE tokenizer
  built here (no download).
- ``full-random``: the real architecture (default ``CLIPSegConfig`` is the rd64 model) with random weights.

The image preprocessing mirrors the model's ``preprocessor_config.json`` (squash-resize to a square, then
normalise); we do it in torch so the image never round-trips through PIL per prompt.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from ..cuda_graph import GraphCache
from ..errors import ModelsUnavailableError
from . import hub
from .catalog import CLIPSEG_REPO_ID
from .mode import ModelMode

# Head of main ("Update preprocessor_config.json", 2023-01-04). Its weights are pytorch_model.bin only; a
# folder that also has model.safetensors (e.g. from the hub's safetensors PR) is read through safetensors.
CLIPSEG_REVISION = "583b388deb98a04feb3e1f816dcdb8f3062ee205"
CLIPSEG_FILES = (
    "config.json", "preprocessor_config.json", "model.safetensors", "pytorch_model.bin",
    "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
)
# preprocessor_config.json of the real model (ViTImageProcessor): 352x352, ImageNet mean/std
DEFAULT_IMAGE_SIZE = 352
DEFAULT_IMAGE_MEAN = (0.485, 0.456, 0.406)
DEFAULT_IMAGE_STD = (0.229, 0.224, 0.225)
MAX_PROMPT_TOKENS = 77  # CLIP's text context; longer prompts are truncated by the tokenizer
TINY_IMAGE_SIZE = 64


@dataclass(frozen=True)
class ClipSegModels:
    model: torch.nn.Module  # CLIPSegForImageSegmentation, eval mode
    tokenizer: object  # transformers CLIPTokenizer
    image_size: int  # square input side the model expects
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    mode: ModelMode
    model_id: str  # repo id, or a description for random weights
    revision: str  # pinned revision, or "random"
    graphs: GraphCache | None = None  # CUDA: forward replayed from a graph per prompt count (prepare_clipseg)


def load_clipseg(mode: ModelMode, device: torch.device | str = "cpu", local_dir: str | os.PathLike | None = None,
                 seed: int = 0) -> ClipSegModels:
    """CLIPSeg in ``mode`` on ``device``, weights float32 (see :func:`prepare_clipseg` for CUDA)."""
    mode = ModelMode(mode)
    if mode is ModelMode.REAL:
        folder = hub.fetch_snapshot(CLIPSEG_REPO_ID, CLIPSEG_REVISION, CLIPSEG_FILES, local_dir=local_dir)
        models = load_clipseg_folder(folder, model_id=CLIPSEG_REPO_ID, revision=CLIPSEG_REVISION)
    elif mode is ModelMode.TINY:
        models = build_tiny_clipseg(seed)
    else:
        models = build_full_random_clipseg(seed)
    models.model.to(device)
    return models


def prepare_clipseg(models: ClipSegModels, device: torch.device | str, half: bool, graphs: bool) -> ClipSegModels:
    """``models`` moved to ``device`` with fp16 weights and/or a CUDA graph of its forward (modifies the model).

    For CUDA. CLIP runs well in plain fp16 (OpenAI ships it that way) and so does CLIPSeg's small decoder, so no
    autocast is needed. The graph replays the whole forward of ``clipseg_logits(model, input_ids, pixel_values)``;
    callers keep shapes fixed by padding the tokens to CLIP's full 77-token context (``backend.segment.heatmap``),
    so there is one graph per prompt count. Meant for a model loaded on the CPU just now: weights are converted
    per tensor on the way to the device.
    """
    models.model.to(device=device, dtype=torch.float16 if half else None)
    if not graphs:
        return models
    return dataclasses.replace(models, graphs=GraphCache(partial(clipseg_logits, models.model), max_graphs=8))


def clipseg_logits(
    model: torch.nn.Module,  # CLIPSegForImageSegmentation
    input_ids: torch.Tensor,  # [P, T] int64
    pixel_values: torch.Tensor,  # [P, 3, S, S] normalised
    attention_mask: torch.Tensor | None = None,  # [P, T] int64, 0 = padding
) -> torch.Tensor:  # [P, S, S] logits
    """One CLIPSeg forward, tensors in and tensors out: the shape of call a CUDA graph can capture.

    Without ``attention_mask`` the logits are the same: CLIPSeg conditions on the text model's output at the
    first end-of-text token only, and CLIP's causal attention never lets that token see the padding after it.
    The graph is captured without it, which also spares transformers building (and checking) a padding mask.
    """
    return model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values).logits


def load_clipseg_folder(folder: str | os.PathLike, model_id: str = CLIPSEG_REPO_ID,
                        revision: str = CLIPSEG_REVISION) -> ClipSegModels:
    """Load a CLIPSeg model saved in the hub layout (config.json, weights, vocab.json, merges.txt)."""
    from transformers import CLIPSegForImageSegmentation, CLIPTokenizer

    folder = Path(folder)
    has_safetensors = (folder / "model.safetensors").is_file()
    if not has_safetensors and not (folder / "pytorch_model.bin").is_file():
        raise ModelsUnavailableError(f"no CLIPSeg weights (model.safetensors or pytorch_model.bin) in {folder}")
    try:
        model = CLIPSegForImageSegmentation.from_pretrained(
            folder, use_safetensors=has_safetensors, trust_remote_code=False, local_files_only=True
        )
        tokenizer = CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - safetensors, json, torch each raise their own classes
        # a truncated or tampered file fails to parse here; it is never half-loaded into a model we use
        raise ModelsUnavailableError(
            f"CLIPSeg files in {folder} cannot be loaded ({type(exc).__name__}: {str(exc)[:200]}); "
            "delete them and download again"
        ) from None
    from ..numeric_checks import require_finite_module

    require_finite_module(f"CLIPSeg in {folder}", model, ModelsUnavailableError)
    size, mean, std = _read_preprocessing(folder)
    return ClipSegModels(model.eval(), tokenizer, size, mean, std, ModelMode.REAL, model_id, revision)


def _read_preprocessing(folder: Path) -> tuple[int, tuple, tuple]:
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_MEAN, DEFAULT_IMAGE_STD
    cfg = json.loads(path.read_text())
    size = cfg.get("size", DEFAULT_IMAGE_SIZE)
    if isinstance(size, dict):
        size = size.get("height", size.get("shortest_edge", DEFAULT_IMAGE_SIZE))
    return int(size), tuple(cfg.get("image_mean", DEFAULT_IMAGE_MEAN)), tuple(cfg.get("image_std", DEFAULT_IMAGE_STD))


def build_full_random_clipseg(seed: int = 0) -> ClipSegModels:
    """The rd64-refined architecture (CLIP ViT-B/16 + decoder) with seeded random weights: timing only."""
    from transformers import CLIPSegConfig, CLIPSegForImageSegmentation

    tokenizer, vocab_size, bos, eos = build_offline_tokenizer()
    config = CLIPSegConfig(extract_layers=[3, 6, 9], reduce_dim=64, use_complex_transposed_convolution=True,
                           text_config={"bos_token_id": bos, "eos_token_id": eos, "pad_token_id": eos})
    torch.manual_seed(seed)
    model = CLIPSegForImageSegmentation(config).eval()
    return ClipSegModels(model, tokenizer, DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_MEAN, DEFAULT_IMAGE_STD,
                         ModelMode.FULL_RANDOM, "clipseg-rd64 architecture (random weights)", "random")


def tiny_clipseg_config(vocab_size: int, bos: int, eos: int):
    from transformers import CLIPSegConfig

    return CLIPSegConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=MAX_PROMPT_TOKENS, bos_token_id=bos,
                         eos_token_id=eos, pad_token_id=eos, projection_dim=16),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
                           image_size=TINY_IMAGE_SIZE, patch_size=16, projection_dim=16),
        projection_dim=16, extract_layers=[1, 2], reduce_dim=16, decoder_num_attention_heads=2,
        decoder_intermediate_size=32, use_complex_transposed_convolution=True,
    )


def build_tiny_clipseg(seed: int = 0) -> ClipSegModels:
    """Same class, tiny config (~0.1 M parameters), seeded random weights, offline tokenizer: tests only."""
    from transformers import CLIPSegForImageSegmentation

    tokenizer, vocab_size, bos, eos = build_offline_tokenizer()
    torch.manual_seed(seed)
    model = CLIPSegForImageSegmentation(tiny_clipseg_config(vocab_size, bos, eos)).eval()
    return ClipSegModels(model, tokenizer, TINY_IMAGE_SIZE, DEFAULT_IMAGE_MEAN, DEFAULT_IMAGE_STD,
                         ModelMode.TINY, "clipseg tiny (random weights)", "random")


def save_clipseg_folder(models: ClipSegModels, folder: str | os.PathLike) -> Path:
    """Write ``models`` in the hub layout that :func:`load_clipseg_folder` reads (used by tests)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    models.model.save_pretrained(folder)
    vocab, merges = offline_vocab()
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("\n".join(["#version: 0.2", *merges]) + "\n", encoding="utf-8")
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": True, "do_resize": True, "image_mean": list(models.image_mean),
        "image_std": list(models.image_std), "size": {"height": models.image_size, "width": models.image_size},
    }))
    return folder


# --- offline tokenizer ---------------------------------------------------------------------------------

def _byte_alphabet() -> list[str]:
    """The 256 printable characters byte-level BPE (GPT-2, CLIP) uses to stand for the 256 byte values."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def offline_vocab() -> tuple[dict[str, int], list[str]]:
    """A CLIP-style vocabulary with no merges: every byte, every byte ending a word, then the two specials.

    Same order as CLIP's own vocab.json (bytes, bytes + "</w>", merges, <|startoftext|>, <|endoftext|>), so
    end-of-text has the largest id, as CLIP's text pooling expects. Any UTF-8 text tokenizes (byte by byte).
    """
    alphabet = _byte_alphabet()
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    vocab.update({ch + "</w>": 256 + i for i, ch in enumerate(alphabet)})
    vocab["<|startoftext|>"] = 512
    vocab["<|endoftext|>"] = 513
    return vocab, []


def build_offline_tokenizer():
    """(CLIPTokenizer, vocab_size, bos_id, eos_id) built from :func:`offline_vocab` without any download."""
    from transformers import CLIPTokenizer

    vocab, merges = offline_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)
    return tokenizer, len(vocab), vocab["<|startoftext|>"], vocab["<|endoftext|>"]
