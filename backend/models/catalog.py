"""Which pretrained models the project uses, declared once and torch-free (the add-on reads it at register time).

Each family names its Hugging Face repository; a local folder standing in for one is looked for under
``$IMAGE_TO_3D_MODEL_DIR/<repo id with / replaced by -->`` (backend.models.hub.local_model_dir). The family
modules (clipseg.py, sam.py, sam3.py, zero123.py, triposr/) take their repository ids from here.
"""

from __future__ import annotations

from dataclasses import dataclass

CLIPSEG_REPO_ID = "CIDAS/clipseg-rd64-refined"
SAM_REPO_ID = "ybelkada/segment-anything"  # hub mirror of the official SAM files, under checkpoints/
ZERO123_XL_REPO = "ashawkey/zero123-xl-diffusers"
STABLE_ZERO123_REPO = "stabilityai/stable-zero123"
TRIPOSR_REPO_ID = "stabilityai/TripoSR"  # MIT, code and weights; the quick methods (backend/models/triposr)
# Pinned revision of TripoSR's hub repository: the head of its main branch as the model page's public history
# shows it ("Callout to SF3D", Aug 2024: https://huggingface.co/stabilityai/TripoSR/tree/5b521936b01fbe1890f6f9baed0254ab6351c04a),
# holding config.yaml and model.ckpt (whose last change is the earlier "update model" commit); the
# model.safetensors conversion lives only on unmerged pull-request branches, so model.ckpt is what loads. Read
# from a stored copy of that page, not downloaded here: the checkpoint itself has not been loaded against our
# model (the facts in tests/facts come from the official code, github VAST-AI-Research/TripoSR d26e331).
TRIPOSR_REVISION = "5b521936b01fbe1890f6f9baed0254ab6351c04a"
# SAM 3 (promptable concept segmentation, transformers layout). Gated: each user requests access on the model
# page and downloads with their own token; weights under Meta's SAM License (shown before the first download).
SAM3_REPO_ID = "facebook/sam3"
SAM3_MODEL_PAGE = "https://huggingface.co/facebook/sam3"
SAM3_LICENSE = "SAM License (Meta)"
# A commit of facebook/sam3 (Nov 2025) as recorded by a public project that pins it; it could not be checked
# from here (no hub access). Verify before a release: huggingface_hub.HfApi().model_info(SAM3_REPO_ID).sha
SAM3_REVISION = "3c879f39826c281e95690f02c7821c4de09afae7"

# family → repository whose files a local folder (add-on Preferences, --model-dir) stands in for
MODEL_REPOS: dict[str, str] = {
    "clipseg": CLIPSEG_REPO_ID,
    "sam": SAM_REPO_ID,
    "zero123": ZERO123_XL_REPO,
    "triposr": TRIPOSR_REPO_ID,
    "sam3": SAM3_REPO_ID,
}

# SAM image-encoder sizes, largest (best masks) first; the checkpoints are declared in sam.py (SAM_SPECS)
SAM_VARIANTS: tuple[str, ...] = ("vit_h", "vit_l", "vit_b")
DEFAULT_SAM_VARIANT = "vit_h"


# --- what the add-on's Models section lists ------------------------------------------------------------------
@dataclass(frozen=True)
class ModelCard:
    """One downloadable model as a person sees it: what it is for, how big, under which licence."""

    key: str  # "clipseg", "sam:vit_h", "zero123", "triposr", "sam3"
    family: str  # the MODEL_REPOS key whose local folder stands in for it
    label: str
    repo_id: str
    size_mb: int  # download size, rounded (the files the backend fetches, not the whole repository)
    licence: str
    cache_file: str = ""  # for a repository with several models' files: the one file that makes this one present


_SAM_FILES = {"vit_h": ("sam_vit_h_4b8939.pth", 2564), "vit_l": ("sam_vit_l_0b3195.pth", 1249),
              "vit_b": ("sam_vit_b_01ec64.pth", 375)}
MODEL_CARDS: dict[str, ModelCard] = {
    "clipseg": ModelCard("clipseg", "clipseg", "CLIPSeg (text → heatmap)", CLIPSEG_REPO_ID, 603, "Apache-2.0"),
    **{f"sam:{variant}": ModelCard(f"sam:{variant}", "sam", f"Segment Anything ViT-{variant[-1].upper()}",
                                   SAM_REPO_ID, size, "Apache-2.0", cache_file=f"checkpoints/{name}")
       for variant, (name, size) in _SAM_FILES.items()},
    "zero123": ModelCard("zero123", "zero123", "Zero123-XL (views for Best)", ZERO123_XL_REPO, 5700,
                         "MIT (model card)"),
    "triposr": ModelCard("triposr", "triposr", "TripoSR (Quick methods)", TRIPOSR_REPO_ID, 1680, "MIT"),
    "sam3": ModelCard("sam3", "sam3", "SAM 3 (concepts)", SAM3_REPO_ID, 3450, SAM3_LICENSE),
}


def models_needed(method: str, segmenter: str, sam_variant: str) -> tuple[ModelCard, ...]:
    """The models a job with these choices loads, in the order it loads them (names from backend.choices)."""
    cards = [MODEL_CARDS["sam3"]] if segmenter == "sam3" else [MODEL_CARDS["clipseg"],
                                                               MODEL_CARDS[f"sam:{sam_variant}"]]
    if method in ("quick", "quick+refine"):
        cards.append(MODEL_CARDS["triposr"])
    if method in ("dreamgaussian", "quick+refine"):
        cards.append(MODEL_CARDS["zero123"])
    return tuple(cards)
