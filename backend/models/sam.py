"""Segment Anything (segment-anything 1.0) in the three model modes of docs/design.md §3.

- ``real``: the official checkpoints (``sam_vit_h_4b8939.pth`` …). Each file's full SHA-256 is checked
  before it is read (the 6 hex digits in the official names are NOT a SHA-256 prefix — the vit_h file's
  SHA-256 starts a7bf3b02 — so we pin the whole digest); then ``torch.load(weights_only=True)`` and
  ``load_state_dict(strict=True)`` into the architecture from ``sam_model_registry`` built without a
  checkpoint. ``build_sam``'s own loading path (a plain ``torch.load``, i.e. unpickling) is never used.
- ``tiny``: segment-anything's ``Sam`` assembled from its components at toy size (64 px input).
- ``full-random``: the real-size architecture with seeded random weights, for GPU timing.

Real checkpoints are looked for in ``local_dir``, ``$IMAGE_TO_3D_MODEL_DIR/ybelkada--segment-anything/``
(file at the top or under ``checkpoints/``), then the Hugging Face cache / download of that mirror repo.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from ..errors import BadInputError, ModelsUnavailableError
from . import hub
from .catalog import SAM_REPO_ID
from .mode import ModelMode

SAM_REVISION = "7790786db131bcdc639f24a915d9f2c331d843ee"


@dataclass(frozen=True)
class SamSpec:
    """One SAM variant: its checkpoint file, that file's SHA-256 (full or a prefix) and its architecture."""

    variant: str
    filename: str
    sha256: str
    build: Callable[[], torch.nn.Module]  # builds the architecture with fresh weights, no checkpoint


def _registry_builder(variant: str) -> Callable[[], torch.nn.Module]:
    def build() -> torch.nn.Module:
        from segment_anything import sam_model_registry

        return sam_model_registry[variant](checkpoint=None)

    return build


def build_tiny_sam() -> torch.nn.Module:
    """SAM from its parts at toy size: 64 px input, 8 px patches, 2 encoder blocks, width 32. CPU: ~10 ms."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    img_size, patch, width = 64, 8, 32
    grid = img_size // patch
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=img_size, patch_size=patch, embed_dim=width, depth=2, num_heads=2, mlp_ratio=2.0,
            out_chans=width, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True, window_size=4, global_attn_indexes=(1,),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=width, image_embedding_size=(grid, grid), input_image_size=(img_size, img_size),
            mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=width, mlp_dim=64, num_heads=2),
            transformer_dim=width, iou_head_depth=2, iou_head_hidden_dim=32,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


# Official files and their SHA-256 digests (as published by the hub's LFS pointers of the official files).
SAM_SPECS: dict[str, SamSpec] = {
    "vit_h": SamSpec("vit_h", "sam_vit_h_4b8939.pth",
                     "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e", _registry_builder("vit_h")),
    "vit_l": SamSpec("vit_l", "sam_vit_l_0b3195.pth",
                     "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622", _registry_builder("vit_l")),
    "vit_b": SamSpec("vit_b", "sam_vit_b_01ec64.pth",
                     "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912", _registry_builder("vit_b")),
}


@dataclass(frozen=True)
class SamModels:
    model: torch.nn.Module  # segment_anything.modeling.Sam, eval mode
    variant: str
    mode: ModelMode
    model_id: str  # checkpoint file name, or a description for random weights
    sha256: str  # verified digest, or "random"


def load_sam(mode: ModelMode, variant: str = "vit_h", device: torch.device | str = "cpu",
             local_dir: str | os.PathLike | None = None, seed: int = 0) -> SamModels:
    """SAM in ``mode`` on ``device``, weights float32 (see ``backend.models.sam_cuda`` for CUDA)."""
    mode = ModelMode(mode)
    if mode is not ModelMode.TINY and variant not in SAM_SPECS:
        raise BadInputError(f"unknown SAM variant {variant!r} (choose one of {', '.join(SAM_SPECS)})")
    if mode is ModelMode.REAL:
        filename = SAM_SPECS[variant].filename
        try:
            folder = hub.fetch_snapshot(SAM_REPO_ID, SAM_REVISION, [f"checkpoints/{filename}"], local_dir=local_dir)
        except ModelsUnavailableError as exc:  # name the official file: that is what people have on disk
            raise ModelsUnavailableError(f"SAM {variant} checkpoint {filename}: {exc}") from None
        models = load_sam_checkpoint(folder, SAM_SPECS[variant])
        return SamModels(models.model.to(device), variant, ModelMode.REAL, models.model_id, models.sha256)
    torch.manual_seed(seed)
    if mode is ModelMode.TINY:
        return SamModels(build_tiny_sam().to(device), "tiny", mode, "sam tiny (random weights)", "random")
    model = SAM_SPECS[variant].build().to(device)  # built on the CPU: its legacy torch.Tensor() buffers
    return SamModels(model.eval(), variant, mode, f"sam {variant} architecture (random weights)", "random")


def find_checkpoint(folder: str | os.PathLike, filename: str) -> Path:
    folder = Path(folder)
    for candidate in (folder / filename, folder / "checkpoints" / filename):
        if candidate.is_file():
            return candidate
    raise ModelsUnavailableError(
        f"SAM checkpoint {filename} not found in {folder} (put the official file there, or under checkpoints/)"
    )


def load_sam_checkpoint(folder: str | os.PathLike, spec: SamSpec) -> SamModels:
    """Verify the checkpoint's SHA-256, then read it as plain tensors into ``spec.build()``.

    A file that fails the check is never read. A file whose tensors do not fit the architecture is
    reported as unavailable too (exit 4), with the first mismatch.
    """
    path = find_checkpoint(folder, spec.filename)
    _verify_once(path, spec.sha256)
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several classes for a damaged or non-tensor pickle
        raise ModelsUnavailableError(f"SAM checkpoint {path} cannot be read ({type(exc).__name__})") from None
    model = spec.build()
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)[:200]
        raise ModelsUnavailableError(f"SAM checkpoint {path} does not fit SAM {spec.variant}: {first}") from None
    from ..numeric_checks import require_finite_module

    require_finite_module(f"SAM checkpoint {path}", model, ModelsUnavailableError)
    return SamModels(model.eval(), spec.variant, ModelMode.REAL, spec.filename, spec.sha256)


def _verified_records_path() -> Path:
    """Where verdicts are kept: the user's own job-cache folder, never beside the weights (issue 19: a forged
    ``.verified.json`` next to a random ``.pth`` was trusted)."""
    from ..job_cache import cache_root

    return cache_root() / "verified-checksums.json"


def _file_identity(path: Path) -> str:
    """What a verdict is keyed by: the real path, inode and the size, mtime and ctime in ns. Changing the bytes
    changes the ctime, which only the system clock sets, so a verdict cannot be carried over to other bytes."""
    info = path.stat()
    return "|".join(str(v) for v in (os.path.realpath(path), info.st_dev, info.st_ino, info.st_size,
                                      info.st_mtime_ns, info.st_ctime_ns))


def _verify_once(path: Path, expected_sha256: str) -> None:
    """``hub.verify_checksum``, remembered in the user's cache keyed by the file's identity.

    Hashing vit_h's 2.5 GB takes seconds; a later run reuses the verdict while the file is unchanged. Where the
    record cannot be read or written we simply hash every time: nothing in the model folder is trusted.
    """
    records_path = _verified_records_path()
    identity = _file_identity(path)
    try:
        records = json.loads(records_path.read_text(encoding="utf-8"))
        if isinstance(records, dict) and records.get(identity) == expected_sha256:
            return
    except (OSError, ValueError):
        records = {}
    hub.verify_checksum(path, expected_sha256)
    if not isinstance(records, dict):
        records = {}
    records[identity] = expected_sha256
    try:
        from ..atomic_output import write_bytes_atomic
        from ..errors import ImageTo3DError
        from ..private_dirs import private_folder

        private_folder(records_path.parent)
        write_bytes_atomic(records_path, json.dumps(records, indent=1).encode("utf-8"))
    except (OSError, ImageTo3DError):
        pass
