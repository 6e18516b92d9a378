"""Is a model on this computer? Answered from the file system alone (no torch, no huggingface_hub), so the
add-on's Models section can ask it while drawing.

The Hugging Face cache keeps a repository in ``<hub cache>/models--<org>--<name>/snapshots/<revision>/``;
the hub cache is $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
~/.cache/huggingface/hub (huggingface_hub's own order).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .catalog import ModelCard

CACHED, MISSING, LOCAL_FOLDER = "cached", "missing", "local folder"


def hub_cache_dir() -> Path:
    """huggingface_hub's hub cache folder, read from the environment now (hub.hf_cache_dir is huggingface_hub's
    own answer; tests/test_hub_cache_dir.py holds the two equal)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def repo_cache_dir(repo_id: str, cache: Path | None = None) -> Path:
    return (cache or hub_cache_dir()) / f"models--{repo_id.replace('/', '--')}"


def model_state(card: ModelCard, local_dir: str = "", cache: Path | None = None) -> str:
    """LOCAL_FOLDER when ``local_dir`` is an existing folder, CACHED when a snapshot holds the model's files,
    else MISSING."""
    if local_dir and Path(local_dir).is_dir():
        return LOCAL_FOLDER
    snapshots = repo_cache_dir(card.repo_id, cache) / "snapshots"
    for snapshot in snapshots.iterdir() if snapshots.is_dir() else ():
        if card.cache_file and (snapshot / card.cache_file).is_file():
            return CACHED
        if not card.cache_file and any(snapshot.iterdir()):
            return CACHED
    return MISSING


def delete_cached_model(card: ModelCard, cache: Path | None = None) -> int:
    """Remove the model's repository from the hub cache; returns the bytes freed (0 if it was not there).

    One repository can hold several models (Segment Anything's sizes): deleting one deletes them all."""
    folder = repo_cache_dir(card.repo_id, cache)
    if not folder.is_dir():
        return 0
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink())
    shutil.rmtree(folder)
    return size
