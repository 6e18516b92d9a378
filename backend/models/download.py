"""Downloading models into the Hugging Face cache with byte progress: one model of the catalog on request
(the add-on's Download button), or any model a job fetches on first use (``reporting_downloads``).

huggingface_hub draws its own byte bars on a terminal and offers no hook per byte that stays stable across
its versions, so progress is measured instead: while ``snapshot_download`` runs in a thread, the size of the
repository's ``blobs/`` folder (finished files plus the ``.incomplete`` ones it grows) is read twice a second
and reported as bytes of the card's size, with the speed over the last few seconds. A cancel stops the
waiting at once; the download thread cannot be interrupted and finishes in the background of the worker
(huggingface_hub resumes from its ``.incomplete`` files either way).
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInputError, ModelsUnavailableError
from ..job_control import JobControl
from .cache_state import repo_cache_dir
from .catalog import MODEL_CARDS, ModelCard

POLL_S = 0.5
SPEED_WINDOW_S = 5.0

# key prefix → (module, revision constant, allow-patterns constant or None for the card's one file)
_SOURCES = {
    "clipseg": ("backend.models.clipseg", "CLIPSEG_REVISION", "CLIPSEG_FILES"),
    "sam": ("backend.models.sam", "SAM_REVISION", None),
    "zero123": ("backend.models.zero123", "ZERO123_XL_REVISION", "HUB_ALLOW_PATTERNS"),
    "triposr": ("backend.models.catalog", "TRIPOSR_REVISION", None),
    "sam3": ("backend.models.catalog", "SAM3_REVISION", None),
}
_TRIPOSR_FILES = ("config.yaml", "model.ckpt")
_SAM3_FILES_MODULE = "backend.models.sam3"


@dataclass(frozen=True)
class DownloadResult:
    key: str
    folder: Path
    bytes: int
    seconds: float


def download_text(done: int, total: int, speed: float) -> str:
    """"1.2 of 2.6 GB · 14.0 MB/s", "75 of 375 MB · 3.2 MB/s"."""
    unit, scale, digits = ("GB", 1e9, 1) if total >= 1e9 else ("MB", 1e6, 0)
    return f"{done / scale:.{digits}f} of {total / scale:.{digits}f} {unit} · {speed / 1e6:.1f} MB/s"


def _sources(card: ModelCard) -> tuple[str, tuple[str, ...]]:
    module_name, revision_name, patterns_name = _SOURCES[card.family]
    module = importlib.import_module(module_name)
    revision = getattr(module, revision_name)
    if card.cache_file:
        return revision, (card.cache_file,)
    if patterns_name is not None:
        return revision, tuple(getattr(module, patterns_name))
    if card.family == "sam3":
        return revision, tuple(importlib.import_module(_SAM3_FILES_MODULE).SAM3_FILES)
    return revision, _TRIPOSR_FILES


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) if folder.is_dir() else 0


# The job whose thread is running now, so a model fetched in the middle of it (hub.fetch_snapshot) reports its
# bytes through the job's progress: set by the api's entry points (reporting_downloads), read in the same thread.
_current_control: ContextVar[JobControl | None] = ContextVar("image_to_3d_download_control", default=None)


@contextlib.contextmanager
def reporting_downloads(control: JobControl) -> Iterator[None]:
    """Within this block, a model download in this thread reports stage "download" to ``control``."""
    token = _current_control.set(control)
    try:
        yield
    finally:
        _current_control.reset(token)


def expected_bytes(repo_id: str, patterns) -> int:
    """The catalog's size for this repository and files (0 where the catalog does not know it)."""
    for card in MODEL_CARDS.values():
        if card.repo_id == repo_id and (not card.cache_file or card.cache_file in patterns):
            return card.size_mb * 1_000_000
    return 0


def fetch_reporting_bytes(fetch: Callable[[], str], repo_id: str, label: str, total: int,
                          control: JobControl | None = None) -> tuple[Path, int]:
    """Run ``fetch`` (a snapshot_download) in a thread; while it runs, report the repository's growing blobs
    folder as bytes of ``total`` and a speed to ``control`` (default: the current job's). Returns the folder
    and the bytes fetched. Raises what ``fetch`` raised, or CancelledError when the job is cancelled."""
    control = control or _current_control.get()
    if control is None:
        return Path(fetch()), 0
    blobs = repo_cache_dir(repo_id) / "blobs"
    start_bytes = _folder_bytes(blobs)
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["folder"] = Path(fetch())
        except Exception as exc:  # noqa: BLE001 - handed to the waiting thread, which raises it
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=f"download {repo_id}", daemon=True)
    thread.start()
    samples: deque[tuple[float, int]] = deque()
    control.report("download", 0.0, f"{label}: starting")
    while thread.is_alive():
        thread.join(POLL_S)
        control.check_cancelled("download")
        now, done = time.monotonic(), _folder_bytes(blobs) - start_bytes
        samples.append((now, done))
        while samples and now - samples[0][0] > SPEED_WINDOW_S:
            samples.popleft()
        speed = (done - samples[0][1]) / max(now - samples[0][0], 1e-6) if len(samples) > 1 else 0.0
        control.report("download", min(done / total, 0.99) if total else 0.0,
                       download_text(done, max(total, done), speed))
    if "error" in outcome:
        raise outcome["error"]
    done = _folder_bytes(blobs) - start_bytes
    control.report("download", 1.0, download_text(done, max(done, total), 0.0))
    return outcome["folder"], done


def download_model(key: str, control: JobControl, token: str | None = None) -> DownloadResult:
    """Fetch the model ``key`` (a MODEL_CARDS key) into the hub cache; progress stage "download"."""
    card = MODEL_CARDS.get(key)
    if card is None:
        raise BadInputError(f"unknown model {key!r} (choose one of {', '.join(MODEL_CARDS)})")
    revision, patterns = _sources(card)
    from huggingface_hub import snapshot_download

    started = time.monotonic()
    try:
        folder, done = fetch_reporting_bytes(
            lambda: snapshot_download(card.repo_id, revision=revision, allow_patterns=list(patterns), token=token),
            card.repo_id, card.label, card.size_mb * 1_000_000, control)
    except Exception as exc:
        from ..errors import CancelledError

        if isinstance(exc, CancelledError):
            raise
        raise ModelsUnavailableError(f"could not download {card.repo_id}: {type(exc).__name__}: {exc}") from exc
    return DownloadResult(key, folder, done, time.monotonic() - started)
