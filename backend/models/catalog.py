"""Which pretrained models the project uses, declared once and torch-free (the add-on reads it at register time).

Each family names its Hugging Face repository; a local folder standing in for one is looked for under
``$IMAGE_TO_3D_MODEL_DIR/<repo id with / replaced by -->`` (backend.models.hub.local_model_dir). The family
modules (clipseg.py, sam.py, sam3.py, zero123.py) take their repository ids from here.
"""

from __future__ import annotations

CLIPSEG_REPO_ID = "CIDAS/clipseg-rd64-refined"
SAM_REPO_ID = "ybelkada/segment-anything"  # hub mirror of the official SAM files, under checkpoints/
ZERO123_XL_REPO = "ashawkey/zero123-xl-diffusers"
STABLE_ZERO123_REPO = "stabilityai/stable-zero123"
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
    "sam3": SAM3_REPO_ID,
}

# SAM image-encoder sizes, largest (best masks) first; the checkpoints are declared in sam.py (SAM_SPECS)
SAM_VARIANTS: tuple[str, ...] = ("vit_h", "vit_l", "vit_b")
DEFAULT_SAM_VARIANT = "vit_h"
