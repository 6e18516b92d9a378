"""Zero123 (novel-view diffusion conditioned on one image and a relative camera) from diffusers parts.

The model is Stable Diffusion 1.x fine-tuned on Objaverse renders (Liu et al., "Zero-1-to-3", 2023):

- ``unet``: ``UNet2DConditionModel`` with 8 input channels, the 4 noisy latents followed by the 4 latents of
  the reference image (channel-wise "c_concat" conditioning), and cross-attention to ONE context token;
- ``image_encoder``: CLIP ViT-L/14 vision tower with its 768-d projection (``image_embeds``);
- ``clip_camera_projection``: Linear(768 + 4 → 768) mapping [CLIP image embedding, camera embedding] to that
  context token (see :mod:`backend.guidance.zero123_guidance` for the camera embedding);
- ``vae``: the SD ``AutoencoderKL``; ``scheduler``: ``DDIMScheduler`` (scaled-linear betas 0.00085 → 0.012).

Everything is built from the same classes in three modes (docs/design.md §3): ``real`` loads the diffusers
on-disk layout of Zero123-XL (``ashawkey/zero123-xl-diffusers``: sub-folders unet/, vae/, image_encoder/,
clip_camera_projection/, scheduler/, feature_extractor/ and model_index.json) at a pinned revision, safetensors
only from the hub, never remote code (that repository also carries a ``zero123.py`` pipeline, which we do not
fetch: the projection is one Linear we load ourselves); ``tiny`` builds tiny seeded configs for tests;
``full-random`` builds the real-size architectures with random weights, directly on the target device, for timing.

Stable Zero123 (``stabilityai/stable-zero123``) is published only as single ldm checkpoints
(``stable_zero123.ckpt`` / ``.safetensors``, 8.6 GB, original CompVis key names), which we do not convert here.
It is an explicit opt-in (``variant="stable-zero123"``) that reads a diffusers-layout folder the user provides
(``local_dir``, or ``$IMAGE_TO_3D_MODEL_DIR/stabilityai--stable-zero123``), made by a community conversion.
Its licence is non-commercial; loading it logs :data:`STABLE_ZERO123_LICENCE_NOTICE` and returns it in
``Zero123Models.licence_notice``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from ..errors import BadInputError, ModelsUnavailableError
from ..numeric_checks import require_finite_module
from . import hub
from .catalog import STABLE_ZERO123_REPO, ZERO123_XL_REPO
from .mode import ModelMode

logger = logging.getLogger(__name__)

ZERO123_XL_REVISION = "10e9e8e75adaa3bf77f5ac9c381419016fed68c7"  # main as of Nov 2023 ("Create zero123.py")
STABLE_ZERO123_LICENCE_NOTICE = (
    "Stable Zero123 is licensed for non-commercial research use only; see "
    "https://huggingface.co/stabilityai/stable-zero123 (Stability AI Non-Commercial Research Community License)"
)
VARIANTS = ("zero123-xl", "stable-zero123")

# Safetensors only from the hub; a local folder may also hold .bin files (loaded with weights_only).
HUB_ALLOW_PATTERNS = (
    "model_index.json",
    "*/config.json",
    "scheduler/scheduler_config.json",
    "feature_extractor/preprocessor_config.json",
    "*/diffusion_pytorch_model.safetensors",
    "image_encoder/model.safetensors",
)
SUBFOLDERS = ("unet", "vae", "image_encoder", "clip_camera_projection", "scheduler", "feature_extractor")

# Zero123 was trained at 256² images, 32² latents, and DreamGaussian hard-codes both (``zero123_utils.py``
# resizes every render to 256 and draws 32² noise). A folder whose configs say otherwise is refused (exit 4)
# rather than run at another size: a UNet config with sample_size 64 would otherwise work at 512 px unnoticed.
ZERO123_IMAGE_SIZE = 256
ZERO123_LATENT_SIZE = 32

# OpenAI CLIP normalisation, used where a folder has no feature_extractor/preprocessor_config.json.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# The scheduler Zero123 was trained with (ldm config: linear_start 0.00085, linear_end 0.012, 1000 steps).
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
)


class CLIPCameraProjection(nn.Module):
    """[CLIP image embedding (``embedding_dim``), camera embedding (``additional_embeddings``)] → context token.

    Same parameter names (``proj.weight``, ``proj.bias``) and config keys as the published
    ``clip_camera_projection`` folder, so its safetensors file loads with ``load_state_dict``.
    """

    def __init__(self, embedding_dim: int = 768, additional_embeddings: int = 4):
        super().__init__()
        self.embedding_dim = embedding_dim
        self.additional_embeddings = additional_embeddings
        self.proj = nn.Linear(embedding_dim + additional_embeddings, embedding_dim)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:  # [..., embedding_dim + 4] → [..., embedding_dim]
        return self.proj(embedding)

    @property
    def config(self) -> dict:
        return {
            "_class_name": "CLIPCameraProjection",
            "embedding_dim": self.embedding_dim,
            "additional_embeddings": self.additional_embeddings,
        }


@dataclass(frozen=True)
class Zero123Models:
    """The frozen parts of one Zero123 model, in eval mode on one device."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    image_encoder: CLIPVisionModelWithProjection
    clip_camera_projection: CLIPCameraProjection
    scheduler: DDIMScheduler
    clip_image_size: int  # side the CLIP encoder takes (224 for ViT-L/14)
    clip_mean: tuple[float, float, float]
    clip_std: tuple[float, float, float]
    image_size: int  # side the VAE/UNet work at: 256 for Zero123 (latents 32x32)
    dtype: torch.dtype
    device: torch.device
    mode: ModelMode
    variant: str
    model_id: str
    revision: str | None
    licence_notice: str | None = None  # set for Stable Zero123: show it to the user

    @property
    def latent_size(self) -> int:
        return self.unet.config.sample_size


def load_zero123(
    mode: ModelMode | str,
    device: torch.device | str,
    dtype: torch.dtype | None = None,
    variant: str = "zero123-xl",
    local_dir: str | os.PathLike | None = None,
) -> Zero123Models:
    """Build or load Zero123 for ``mode`` on ``device``.

    ``dtype`` defaults to float16 on CUDA and float32 elsewhere. ``variant`` is ``"zero123-xl"`` (default, MIT
    licence) or ``"stable-zero123"`` (explicit opt-in, non-commercial; ``real`` mode only, from a
    diffusers-layout folder). ``local_dir`` is a folder in the diffusers layout used instead of the hub.
    Missing files → :class:`ModelsUnavailableError` (exit 4).
    """
    mode = ModelMode(mode)
    device = torch.device(device)
    if dtype is None:
        dtype = torch.float16 if device.type == "cuda" else torch.float32
    if variant not in VARIANTS:
        raise BadInputError(f"unknown Zero123 variant {variant!r} (choose one of {', '.join(VARIANTS)})")
    if mode is ModelMode.REAL:
        return _load_real(variant, device, dtype, local_dir)
    if variant != "zero123-xl":
        raise BadInputError(f"variant {variant!r} exists only with --models real (got {mode.value})")
    if mode is ModelMode.TINY:
        return _build_random(_tiny_configs(), mode, device, dtype, seed=0)
    return _build_random(_full_size_configs(), mode, device, dtype, seed=0)


# ---------------------------------------------------------------------------------------------- real weights


def _load_real(variant: str, device: torch.device, dtype: torch.dtype, local_dir) -> Zero123Models:
    if variant == "stable-zero123":
        folder = _stable_zero123_folder(local_dir)
        model_id, revision, notice = STABLE_ZERO123_REPO, None, STABLE_ZERO123_LICENCE_NOTICE
        logger.warning(notice)
    else:
        folder = hub.fetch_snapshot(ZERO123_XL_REPO, ZERO123_XL_REVISION, HUB_ALLOW_PATTERNS, local_dir=local_dir)
        model_id, revision, notice = ZERO123_XL_REPO, ZERO123_XL_REVISION, None
    models = load_zero123_folder(folder, device, dtype, ModelMode.REAL, variant, model_id, revision, notice)
    check_working_size(models, folder)
    return models


def check_working_size(models: Zero123Models, folder) -> None:
    """Refuse (exit 4) a model whose configs do not give Zero123's 256 px images and 32² latents."""
    if (models.image_size, models.latent_size) != (ZERO123_IMAGE_SIZE, ZERO123_LATENT_SIZE):
        raise ModelsUnavailableError(
            f"Zero123 in {folder} works at {models.image_size} px (unet sample_size {models.latent_size} × VAE "
            f"factor {models.image_size // max(1, models.latent_size)}), not the {ZERO123_IMAGE_SIZE} px / "
            f"{ZERO123_LATENT_SIZE}² latents it was trained at; use the published {ZERO123_XL_REPO} files"
        )


def _stable_zero123_folder(local_dir) -> Path:
    folder = Path(local_dir) if local_dir is not None else hub.local_model_dir(STABLE_ZERO123_REPO)
    if folder is None or not folder.is_dir():
        where = str(folder) if folder is not None else f"${hub.LOCAL_DIR_ENV}/stabilityai--stable-zero123"
        raise ModelsUnavailableError(
            f"Stable Zero123 (opt-in) needs a diffusers-layout folder (unet/, vae/, image_encoder/, "
            f"clip_camera_projection/, scheduler/): none at {where}; {STABLE_ZERO123_REPO} publishes only a "
            f"single ldm checkpoint, convert it first, or use the default zero123-xl variant"
        )
    return folder


def load_zero123_folder(
    folder: str | os.PathLike,
    device: torch.device | str,
    dtype: torch.dtype,
    mode: ModelMode = ModelMode.REAL,
    variant: str = "zero123-xl",
    model_id: str | None = None,
    revision: str | None = None,
    licence_notice: str | None = None,
) -> Zero123Models:
    """Load every part from a folder in the diffusers layout (the one path real weights take).

    Each part: ``from_pretrained(subfolder=…, local_files_only=True)``, safetensors where present, never remote
    code; the camera projection from its safetensors (or ``torch.load(weights_only=True)``) state dict.
    """
    folder = Path(folder)
    device = torch.device(device)
    missing = [sub for sub in ("unet", "vae", "image_encoder", "clip_camera_projection") if not (folder / sub).is_dir()]
    if missing:
        raise ModelsUnavailableError(
            f"Zero123 folder {folder} lacks {', '.join(missing)}/ (expected the diffusers layout of "
            f"{ZERO123_XL_REPO}); download it again or point --model-dir at a complete copy"
        )
    try:
        unet = UNet2DConditionModel.from_pretrained(
            folder, subfolder="unet", torch_dtype=dtype, local_files_only=True, low_cpu_mem_usage=_HAS_ACCELERATE,
            use_safetensors=_has_safetensors(folder / "unet"),
        )
        vae = AutoencoderKL.from_pretrained(
            folder, subfolder="vae", torch_dtype=dtype, local_files_only=True, low_cpu_mem_usage=_HAS_ACCELERATE,
            use_safetensors=_has_safetensors(folder / "vae"),
        )
        image_encoder = CLIPVisionModelWithProjection.from_pretrained(
            folder, subfolder="image_encoder", dtype=dtype, local_files_only=True,
            use_safetensors=_has_safetensors(folder / "image_encoder"), trust_remote_code=False,
        )
        projection = _load_camera_projection(folder / "clip_camera_projection")
        scheduler = _load_scheduler(folder / "scheduler")
        clip_size, clip_mean, clip_std = _read_feature_extractor(folder / "feature_extractor", image_encoder)
    except torch.cuda.OutOfMemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any damaged part (JSON, config values, tensors, a pickle): exit 4
        raise ModelsUnavailableError(_load_failure(folder, exc)) from exc
    for name, module in (("unet", unet), ("vae", vae), ("image_encoder", image_encoder),
                         ("clip_camera_projection", projection)):
        require_finite_module(f"Zero123 {name} in {folder}", module, ModelsUnavailableError)
    return _finish(
        unet, vae, image_encoder, projection, scheduler, clip_size, clip_mean, clip_std,
        image_size=unet.config.sample_size * _vae_factor(vae), dtype=dtype, device=device, mode=mode,
        variant=variant, model_id=model_id or str(folder), revision=revision, licence_notice=licence_notice,
    )


# diffusers prints a multi-line warning on stderr when asked for low-memory loading without accelerate: ask for
# it only when accelerate is there, so a failed load still ends in one line.
_HAS_ACCELERATE = importlib.util.find_spec("accelerate") is not None


def _load_failure(folder: Path, exc: Exception) -> str:
    """One line: torch's refusal of a pickle spans paragraphs and advises ``weights_only=False``, which would
    run the file's code — so that case gets our own words."""
    import pickle

    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in str(exc):
        return (f"could not load Zero123 from {folder}: a .bin file holds more than plain tensors (a pickle that "
                "would run code); use the safetensors files")
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"could not load Zero123 from {folder}: {type(exc).__name__}: {first}"


def _has_safetensors(subfolder: Path) -> bool:
    return any(subfolder.glob("*.safetensors"))


def _load_camera_projection(subfolder: Path) -> CLIPCameraProjection:
    config = json.loads((subfolder / "config.json").read_text())
    if not isinstance(config, dict):
        raise ValueError(f"{subfolder / 'config.json'} is not a JSON object")
    module = CLIPCameraProjection(
        embedding_dim=int(config.get("embedding_dim", 768)),
        additional_embeddings=int(config.get("additional_embeddings", 4)),
    )
    weights = subfolder / "diffusion_pytorch_model.safetensors"
    if weights.is_file():
        from safetensors.torch import load_file

        state = load_file(str(weights))
    else:
        state = torch.load(subfolder / "diffusion_pytorch_model.bin", map_location="cpu", weights_only=True)
    module.load_state_dict(state, strict=True)
    return module


def save_camera_projection(module: CLIPCameraProjection, subfolder: str | os.PathLike) -> None:
    """Write ``config.json`` + ``diffusion_pytorch_model.safetensors`` as in the published layout."""
    from safetensors.torch import save_file

    subfolder = Path(subfolder)
    subfolder.mkdir(parents=True, exist_ok=True)
    (subfolder / "config.json").write_text(json.dumps(module.config, indent=2))
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    save_file(state, str(subfolder / "diffusion_pytorch_model.safetensors"))


def _load_scheduler(subfolder: Path) -> DDIMScheduler:
    if (subfolder / "scheduler_config.json").is_file():
        # The published config may name another scheduler class; DDIM reads the same betas.
        return DDIMScheduler.from_pretrained(subfolder.parent, subfolder="scheduler", local_files_only=True)
    return DDIMScheduler(**SCHEDULER_CONFIG)


def _read_feature_extractor(subfolder: Path, image_encoder) -> tuple[int, tuple, tuple]:
    """CLIP input side and normalisation from ``preprocessor_config.json`` (applied in torch, on the GPU)."""
    path = subfolder / "preprocessor_config.json"
    size = int(image_encoder.config.image_size)
    if not path.is_file():
        return size, CLIP_MEAN, CLIP_STD
    try:
        config = json.loads(path.read_text())
        crop = config.get("crop_size", size)
        if isinstance(crop, dict):
            crop = crop.get("height", size)
        mean = tuple(float(v) for v in config.get("image_mean", CLIP_MEAN))
        std = tuple(float(v) for v in config.get("image_std", CLIP_STD))
        if int(crop) < 1 or len(mean) != 3 or len(std) != 3 or not all(v > 0 for v in std):
            raise ValueError("crop_size, image_mean or image_std out of range")
    except (AttributeError, TypeError, ValueError) as exc:
        raise ValueError(f"{path} is damaged ({type(exc).__name__}: {exc})") from None
    return int(crop), mean, std


def _vae_factor(vae: AutoencoderKL) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


# ------------------------------------------------------------------------------------------- random weights


@dataclass(frozen=True)
class _Configs:
    unet: dict
    vae: dict
    clip: dict
    projection: dict
    clip_image_size: int


def _tiny_configs() -> _Configs:
    """Tiny parts for tests: 32 px images, 16x16 latents, 32-d CLIP embedding."""
    return _Configs(
        unet=dict(
            sample_size=16, in_channels=8, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32,
        ),
        vae=dict(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64), layers_per_block=1,
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
            norm_num_groups=32, sample_size=32,
        ),
        clip=dict(
            hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32,
            patch_size=8, projection_dim=32, hidden_act="quick_gelu",
        ),
        projection=dict(embedding_dim=32, additional_embeddings=4),
        clip_image_size=32,
    )


def _full_size_configs() -> _Configs:
    """Zero123-XL's architecture: SD 1.x UNet (8 input channels), SD VAE, CLIP ViT-L/14 vision + projection."""
    return _Configs(
        unet=dict(
            sample_size=32, in_channels=8, out_channels=4, layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280),
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=768, attention_head_dim=8,
        ),
        vae=dict(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
            layers_per_block=2, down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4, sample_size=256, scaling_factor=0.18215,
        ),
        clip=dict(
            hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
            image_size=224, patch_size=14, projection_dim=768, hidden_act="quick_gelu",
        ),
        projection=dict(embedding_dim=768, additional_embeddings=4),
        clip_image_size=224,
    )


def _build_random(configs: _Configs, mode: ModelMode, device: torch.device, dtype: torch.dtype, seed: int):
    """Random weights, seeded; built directly on ``device`` and in ``dtype``, so real-size parts skip a slow CPU
    init and never hold a float32 copy on the GPU (peak memory then matches loading real fp16 weights)."""
    torch.manual_seed(seed)
    previous_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            unet = UNet2DConditionModel(**configs.unet)
            vae = AutoencoderKL(**configs.vae)
            image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**configs.clip))
            projection = CLIPCameraProjection(**configs.projection)
    finally:
        torch.set_default_dtype(previous_dtype)
    return _finish(
        unet, vae, image_encoder, projection, DDIMScheduler(**SCHEDULER_CONFIG), configs.clip_image_size,
        CLIP_MEAN, CLIP_STD, image_size=configs.unet["sample_size"] * _vae_factor(vae), dtype=dtype,
        device=device, mode=mode, variant="zero123-xl", model_id=f"zero123-xl ({mode.value})", revision=None,
    )


def _finish(unet, vae, image_encoder, projection, scheduler, clip_size, clip_mean, clip_std, **fields):
    """Move to device/dtype, freeze, eval; channels_last for the UNet (faster fp16 convolutions on CUDA)."""
    device, dtype = fields["device"], fields["dtype"]
    for module in (unet, vae, image_encoder, projection):
        current = next(module.parameters())
        if current.dtype != dtype or current.device != device:  # diffusers warns on every dtype cast
            module.to(device=device, dtype=dtype)
        module.eval()
        module.requires_grad_(False)
    if device.type == "cuda":
        # The UNet only: the VAE encoder's group norms force NCHW copies around every block in channels-last
        # (a third of its forward + backward at 256² on an H100), so the VAE stays NCHW.
        unet.to(memory_format=torch.channels_last)
    return Zero123Models(
        unet=unet, vae=vae, image_encoder=image_encoder, clip_camera_projection=projection, scheduler=scheduler,
        clip_image_size=int(clip_size), clip_mean=tuple(clip_mean), clip_std=tuple(clip_std), **fields,
    )


def save_zero123_folder(models: Zero123Models, folder: str | os.PathLike) -> Path:
    """Write ``models`` in the published diffusers layout (what :func:`load_zero123_folder` reads).

    Used by the tests to round-trip tiny models through the real loading path, and to keep a converted
    model (e.g. a Stable Zero123 conversion) in the form ``local_dir`` expects.
    """
    from transformers import CLIPImageProcessor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    models.unet.save_pretrained(folder / "unet", safe_serialization=True)
    models.vae.save_pretrained(folder / "vae", safe_serialization=True)
    models.image_encoder.save_pretrained(folder / "image_encoder", safe_serialization=True)
    save_camera_projection(models.clip_camera_projection, folder / "clip_camera_projection")
    models.scheduler.save_pretrained(folder / "scheduler")
    size = models.clip_image_size
    CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size},
        image_mean=list(models.clip_mean), image_std=list(models.clip_std),
    ).save_pretrained(folder / "feature_extractor")
    index = {
        "_class_name": "Zero123Pipeline",
        "clip_camera_projection": ["zero123", "CLIPCameraProjection"],
        "feature_extractor": ["transformers", "CLIPImageProcessor"],
        "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder


def load_zero123_cached(mode: ModelMode, device: torch.device, dtype: torch.dtype) -> Zero123Models:
    """:func:`load_zero123` through the process-wide model cache (``backend.models.loaded``)."""
    from .loaded import ModelKey, get_or_load

    key = ModelKey("zero123", mode.value, "zero123-xl", str(device), str(dtype),
                   hub.model_source(ZERO123_XL_REPO) if mode is ModelMode.REAL else "")
    return get_or_load(key, lambda: load_zero123(mode, device, dtype=dtype))
