"""Can a job's pretrained weights be had now? Answered in a few seconds at most, from the file system and one
connection attempt, without torch or huggingface_hub (issue 24: `make demo` without weights used to spend
23 s importing torch and retrying an unreachable hub before saying so twice).

A model is at hand when its files are in ``$IMAGE_TO_3D_MODEL_DIR/<org>--<name>`` or the Hugging Face cache
(backend.models.cache_state). A missing one can only be downloaded when the hub is reachable: not when
HF_HUB_OFFLINE is set, and not when one TCP connection to the hub (or to the proxy in between) fails or gets
no answer within CONNECT_TIMEOUT_S.
"""

from __future__ import annotations

import os
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterable

from ..errors import ModelsUnavailableError
from .cache_state import MISSING, hub_cache_dir, model_state
from .catalog import ModelCard

LOCAL_DIR_ENV = "IMAGE_TO_3D_MODEL_DIR"  # a folder with one sub-folder per model (backend.models.hub)

DEFAULT_HUB_ENDPOINT = "https://huggingface.co"  # huggingface_hub's default; HF_ENDPOINT replaces it
CONNECT_TIMEOUT_S = 3.0  # the one connection attempt (name lookup included) gets this long
_TRUE = ("1", "ON", "YES", "TRUE")  # what huggingface_hub reads as true in its switches


def offline_mode() -> bool:
    """HF_HUB_OFFLINE is set to something true (huggingface_hub's own switch: no request at all)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "").rstrip("/") or DEFAULT_HUB_ENDPOINT


def hub_unreachable_reason(timeout_s: float = CONNECT_TIMEOUT_S) -> str | None:
    """None when the hub (or the proxy configured for it) accepts a TCP connection within ``timeout_s``;
    else why not, in words: "HF_HUB_OFFLINE is set", "https://… cannot be reached (Connection refused)"."""
    if offline_mode():
        return "HF_HUB_OFFLINE is set"
    endpoint = hub_endpoint()
    url = urllib.parse.urlsplit(endpoint)
    proxy = urllib.request.getproxies().get(url.scheme)
    through_proxy = bool(proxy) and not urllib.request.proxy_bypass(url.hostname or "")
    target = urllib.parse.urlsplit(proxy) if through_proxy else url
    address = (target.hostname or "", target.port or (443 if target.scheme == "https" else 80))
    outcome: dict[str, str] = {}

    def connect() -> None:
        try:
            socket.create_connection(address, timeout=timeout_s).close()
        except OSError as exc:
            outcome["error"] = exc.strerror or str(exc) or type(exc).__name__

    # the name lookup ignores socket timeouts: a thread bounds it (a daemon, so a hung lookup cannot hold us)
    thread = threading.Thread(target=connect, name="hub reachability", daemon=True)
    thread.start()
    thread.join(timeout_s)
    via = f" through the proxy {target.hostname}:{address[1]}" if through_proxy else ""
    if thread.is_alive():
        return f"{endpoint} gave no answer within {timeout_s:.0f} s{via}"
    if "error" in outcome:
        return f"{endpoint} cannot be reached{via} ({outcome['error']})"
    return None


def missing_models(cards: Iterable[ModelCard]) -> tuple[ModelCard, ...]:
    """The cards whose files are neither in their $IMAGE_TO_3D_MODEL_DIR folder nor in the hub cache."""
    from .hub import local_model_dir  # (hub imports this module for offline_mode)

    return tuple(card for card in cards
                 if model_state(card, str(local_model_dir(card.repo_id) or "")) == MISSING)


def check_weights_obtainable(cards: Iterable[ModelCard]) -> None:
    """ModelsUnavailableError (exit 4), in one line saying what to do, when some of ``cards`` are not on this
    computer and cannot be downloaded now; nothing when all are here or the hub is reachable."""
    missing = missing_models(cards)
    if not missing:
        return
    reason = hub_unreachable_reason()
    if reason is None:
        return
    names = ", ".join(card.repo_id + (f" ({card.cache_file.rsplit('/', 1)[-1]})" if card.cache_file else "")
                      for card in missing)
    gigabytes = sum(card.size_mb for card in missing) / 1000
    raise ModelsUnavailableError(
        f"pretrained weights missing: {names} ({gigabytes:.1f} GB; looked in {hub_cache_dir()}) and they cannot "
        f"be downloaded now: {reason}. Connect once to download them, or put each model's files in "
        f"${LOCAL_DIR_ENV}/<org>--<name>")
