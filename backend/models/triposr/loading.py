"""Getting a TripoSR model in each mode (docs/design.md §3): ``real``, ``tiny``, ``full-random``.

``real`` reads ``config.yaml`` and the checkpoint of ``stabilityai/TripoSR`` (MIT licence, code and weights)
at the revision pinned in backend/models/catalog.py, from ``$IMAGE_TO_3D_MODEL_DIR/stabilityai--TripoSR`` or the hub cache, offline-first
(backend.models.hub). The checkpoint is ``model.ckpt``, a pickled state dict: it is read with
``torch.load(weights_only=True)``, which unpickles tensors and plain containers only, never code; a
``model.safetensors`` beside it is preferred when present. Nothing from the repository is executed.
``tiny`` builds :data:`~.config.TINY` with seeded random weights (tests); ``full-random`` the published
architecture with random weights, built directly on the device (timing).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ...errors import ModelsUnavailableError
from .. import hub
from ..catalog import TRIPOSR_REPO_ID, TRIPOSR_REVISION
from ..mode import ModelMode
from .config import PUBLISHED, TINY, TripoSRConfig, config_from_yaml_text
from .model import TripoSR

HUB_ALLOW_PATTERNS = ("config.yaml", "model.ckpt", "model.safetensors")
LICENCE = "MIT (code and weights: github.com/VAST-AI-Research/TripoSR, huggingface.co/stabilityai/TripoSR)"


@dataclass(frozen=True)
class LoadedTripoSR:
    """A TripoSR model in eval mode on one device, and where it came from."""

    model: TripoSR
    mode: ModelMode
    device: torch.device
    dtype: torch.dtype
    model_id: str
    revision: str | None

    @property
    def config(self) -> TripoSRConfig:
        return self.model.config


def load_triposr(mode: ModelMode | str, device: torch.device | str, dtype: torch.dtype = torch.float32,
                 local_dir: str | os.PathLike | None = None) -> LoadedTripoSR:
    """Build or load TripoSR for ``mode``; missing or damaged files → ModelsUnavailableError (exit 4).

    float32 by default, as the official code runs it; the model is small enough (420 M parameters, 1.7 GB)
    that half precision buys little for a single forward pass.
    """
    mode = ModelMode(mode)
    device = torch.device(device)
    if mode is ModelMode.REAL:
        folder = hub.fetch_snapshot(TRIPOSR_REPO_ID, TRIPOSR_REVISION, HUB_ALLOW_PATTERNS, local_dir=local_dir)
        return load_triposr_folder(folder, device, dtype, model_id=TRIPOSR_REPO_ID, revision=TRIPOSR_REVISION)
    config = TINY if mode is ModelMode.TINY else PUBLISHED
    torch.manual_seed(0)
    with torch.device(device):
        model = TripoSR(config)
    return _finish(model, mode, device, dtype, f"triposr ({mode.value})", None)


def load_triposr_folder(folder: str | os.PathLike, device: torch.device | str, dtype: torch.dtype = torch.float32,
                        model_id: str | None = None, revision: str | None = None) -> LoadedTripoSR:
    """A folder with ``config.yaml`` and ``model.safetensors`` or ``model.ckpt`` (the published layout)."""
    folder = Path(folder)
    config_path = folder / "config.yaml"
    if not config_path.is_file():
        raise ModelsUnavailableError(f"TripoSR folder {folder} has no config.yaml")
    config = config_from_yaml_text(config_path.read_text())
    state = read_checkpoint(folder)
    with torch.device("meta"):
        model = TripoSR(config)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise ModelsUnavailableError(
            f"TripoSR checkpoint in {folder} does not fit its config.yaml: {str(exc).splitlines()[0][:200]}"
        ) from exc
    from ...numeric_checks import require_finite_module

    require_finite_module(f"TripoSR checkpoint in {folder}", model, ModelsUnavailableError)
    return _finish(model, ModelMode.REAL, torch.device(device), dtype, model_id or str(folder), revision)


def read_checkpoint(folder: Path) -> dict[str, torch.Tensor]:
    """The state dict from ``model.safetensors`` if present, else ``model.ckpt`` (weights_only)."""
    safetensors_path, ckpt_path = folder / "model.safetensors", folder / "model.ckpt"
    try:
        if safetensors_path.is_file():
            from safetensors.torch import load_file

            return load_file(str(safetensors_path))
        if ckpt_path.is_file():
            state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
                state = state["state_dict"]
            if not isinstance(state, dict):
                raise ModelsUnavailableError(f"{ckpt_path} does not hold a state dict")
            return state
    except ModelsUnavailableError:
        raise
    except Exception as exc:  # a truncated or tampered file fails in many ways; all mean "download it again"
        raise ModelsUnavailableError(
            f"could not read the TripoSR checkpoint in {folder}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        ) from exc
    raise ModelsUnavailableError(f"TripoSR folder {folder} has neither model.safetensors nor model.ckpt")


def _finish(model: TripoSR, mode: ModelMode, device: torch.device, dtype: torch.dtype, model_id: str,
            revision: str | None) -> LoadedTripoSR:
    # the ImageNet statistics are non-persistent buffers: a meta-built model gets them re-made here
    tokenizer = model.image_tokenizer
    if tokenizer.image_mean.is_meta:
        from .image_tokenizer import IMAGENET_MEAN, IMAGENET_STD

        tokenizer.image_mean = torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1)
        tokenizer.image_std = torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1)
    model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return LoadedTripoSR(model=model, mode=mode, device=device, dtype=dtype, model_id=model_id, revision=revision)


def triposr_provenance(mode: ModelMode) -> dict:
    """job.json's record of the TripoSR a job in ``mode`` used (what :func:`load_triposr` names it) and its
    licence; also for a job whose TripoSR work came from the job cache."""
    real = mode is ModelMode.REAL
    return {"model": TRIPOSR_REPO_ID if real else f"triposr ({mode.value})",
            "revision": TRIPOSR_REVISION if real else None, "licence": LICENCE}


def load_triposr_cached(mode: ModelMode, device: torch.device, dtype: torch.dtype = torch.float32) -> LoadedTripoSR:
    """:func:`load_triposr` through the process-wide model cache (backend.models.loaded)."""
    from ..loaded import ModelKey, get_or_load

    key = ModelKey("triposr", mode.value, "", str(device), str(dtype),
                   hub.model_source(TRIPOSR_REPO_ID) if mode is ModelMode.REAL else "")
    return get_or_load(key, lambda: load_triposr(mode, device, dtype=dtype))
