"""Finding pretrained weights: a local folder, or the Hugging Face cache, offline-first.

Revisions are pinned by the caller. Nothing here runs remote code or unpickles: callers load
safetensors, or ``torch.load(..., weights_only=True)``. Every failure becomes
:class:`~backend.errors.ModelsUnavailableError` (exit 4) naming the model id, the folder looked in and how
to provide the files.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import CancelledError, ModelsUnavailableError
from .availability import LOCAL_DIR_ENV, hub_unreachable_reason, offline_mode


def hf_cache_dir() -> Path:
    """The hub cache folder snapshot_download searches: huggingface_hub's own answer, fixed when it was imported.

    cache_state.hub_cache_dir answers the same without huggingface_hub (for Blender's process);
    tests/test_hub_cache_dir.py holds them equal over HF_HUB_CACHE, HF_HOME and XDG_CACHE_HOME. This one stays
    separate because it also follows what that one does not (the legacy HUGGINGFACE_HUB_CACHE, $VAR expansion,
    variables changed after import), and an error must name the folder really searched."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def local_model_dir(repo_id: str, root: str | os.PathLike | None = None) -> Path | None:
    """``<root>/<repo_id with / replaced by -->`` if it exists; root defaults to $IMAGE_TO_3D_MODEL_DIR."""
    root = root or os.environ.get(LOCAL_DIR_ENV)
    if not root:
        return None
    candidate = Path(root) / repo_id.replace("/", "--")
    return candidate if candidate.is_dir() else None


def model_source(repo_id: str, local_dir: str | os.PathLike | None = None) -> str:
    """The real folder a model's files would be read from when one is set (``local_dir``, else the
    $IMAGE_TO_3D_MODEL_DIR sub-folder, links followed), else "" (the hub cache). The loaded-model cache keys on
    it, so pointing at another folder loads again while a fresh link to the same folder does not."""
    folder = Path(local_dir) if local_dir is not None else local_model_dir(repo_id)
    return str(folder.resolve()) if folder is not None else ""


def fetch_snapshot(
    repo_id: str,
    revision: str,
    allow_patterns: Sequence[str],
    local_dir: str | os.PathLike | None = None,
    allow_download: bool = True,
    token: str | None = None,
) -> Path:
    """Return a folder holding the model's files.

    Order: an explicit ``local_dir`` (used as is); ``$IMAGE_TO_3D_MODEL_DIR/<repo>``; the hub cache at the
    pinned revision; a download (resumable: huggingface_hub keeps ``.incomplete`` files and continues them)
    when ``allow_download`` and not ``HF_HUB_OFFLINE``. ``token`` (gated repositories): a Hugging Face token;
    None lets huggingface_hub use the stored login or $HF_TOKEN.
    """
    if local_dir is not None:
        path = Path(local_dir)
        if not path.is_dir():
            raise ModelsUnavailableError(f"model folder for {repo_id} not found: {path}")
        return path
    found = local_model_dir(repo_id)
    if found is not None:
        return found
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = hf_cache_dir()
    try:
        return Path(
            snapshot_download(repo_id, revision=revision, allow_patterns=list(allow_patterns), local_files_only=True)
        )
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        pass
    if not allow_download or offline_mode():
        raise ModelsUnavailableError(_missing_message(repo_id, cache))
    # huggingface_hub logs each failed request as a warning; our one-line error says it all (exit 4).
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    try:
        from .download import expected_bytes, fetch_reporting_bytes  # the running job hears of the bytes

        folder, _ = fetch_reporting_bytes(
            lambda: snapshot_download(repo_id, revision=revision, allow_patterns=list(allow_patterns), token=token),
            repo_id, repo_id.rpartition("/")[2], expected_bytes(repo_id, allow_patterns))
        return folder
    except CancelledError:
        raise
    except Exception as exc:  # network errors come in many classes; the cause in words, else the first line
        first_line = next(iter(str(exc).strip().splitlines()), "")
        cause = hub_unreachable_reason() or f"{type(exc).__name__}: {first_line}"
        raise ModelsUnavailableError(f"{_missing_message(repo_id, cache)}; download failed: {cause}") from exc
    finally:
        hub_logger.setLevel(level)


def _missing_message(repo_id: str, cache: Path) -> str:
    return (
        f"model {repo_id} is not available offline (looked in {cache}); connect once to download it, "
        f"or put its files in ${LOCAL_DIR_ENV}/{repo_id.replace('/', '--')}; "
        f"for an offline smoke run use IMAGE_TO_3D_MODELS=tiny"
    )


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(path: str | os.PathLike, expected: str) -> None:
    """Full SHA-256, or a hex prefix of it (as published in some file names); exit 4 on mismatch."""
    actual = sha256_of(path)
    if not actual.startswith(expected.lower()):
        raise ModelsUnavailableError(
            f"checkpoint {path} failed its integrity check (sha256 {actual[:16]}…, expected {expected[:16]}…); "
            "delete it and download it again"
        )
