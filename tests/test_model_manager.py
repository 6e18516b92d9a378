"""The Models section's backend side: which models the choices need, their cache state, delete, and a download
that reports bytes and speed (huggingface_hub's snapshot_download replaced by a writer of growing files)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from backend.job_control import JobControl
from backend.models import cache_state, download
from backend.models.catalog import MODEL_CARDS, models_needed


def test_models_needed_follow_method_segmenter_and_sam_size():
    keys = lambda *args: [card.key for card in models_needed(*args)]  # noqa: E731
    assert keys("dreamgaussian", "clipseg-sam", "vit_h") == ["clipseg", "sam:vit_h", "zero123"]
    assert keys("quick", "clipseg-sam", "vit_b") == ["clipseg", "sam:vit_b", "triposr"]
    assert keys("quick+refine", "sam3", "vit_h") == ["sam3", "triposr", "zero123"]
    assert all(card.size_mb > 0 and card.licence for card in MODEL_CARDS.values())


def _fake_snapshot(cache: Path, repo_id: str, files: dict[str, int]) -> None:
    folder = cache_state.repo_cache_dir(repo_id, cache)
    for name, size in files.items():
        (folder / "blobs").mkdir(parents=True, exist_ok=True)
        (folder / "blobs" / name.replace("/", "_")).write_bytes(b"x" * size)
        target = folder / "snapshots" / "abc" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"")


def test_state_is_cached_missing_or_local_folder_and_delete_frees_the_repository(tmp_path):
    sam_b, sam_h, clipseg = MODEL_CARDS["sam:vit_b"], MODEL_CARDS["sam:vit_h"], MODEL_CARDS["clipseg"]
    assert cache_state.model_state(clipseg, cache=tmp_path) == cache_state.MISSING
    _fake_snapshot(tmp_path, sam_b.repo_id, {sam_b.cache_file: 1000})
    assert cache_state.model_state(sam_b, cache=tmp_path) == cache_state.CACHED
    assert cache_state.model_state(sam_h, cache=tmp_path) == cache_state.MISSING  # same repository, other file
    assert cache_state.model_state(clipseg, str(tmp_path), cache=tmp_path) == cache_state.LOCAL_FOLDER
    assert cache_state.delete_cached_model(sam_b, cache=tmp_path) >= 1000
    assert cache_state.model_state(sam_b, cache=tmp_path) == cache_state.MISSING
    assert cache_state.delete_cached_model(sam_b, cache=tmp_path) == 0


def test_download_reports_bytes_and_speed(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(download, "POLL_S", 0.02)
    card = MODEL_CARDS["sam:vit_b"]
    total = card.size_mb * 1_000_000

    def fake_snapshot_download(repo_id, revision, allow_patterns, token=None):
        assert repo_id == card.repo_id and allow_patterns == [card.cache_file]
        blob = cache_state.repo_cache_dir(repo_id) / "blobs" / "x.incomplete"
        blob.parent.mkdir(parents=True, exist_ok=True)
        with blob.open("wb") as fh:
            for _ in range(5):
                fh.seek(total // 5 - 1, 1)  # sparse: grows by a fifth of the size at a time
                fh.write(b"\0")
                fh.flush()
                time.sleep(0.05)
        return str(blob.parent.parent / "snapshots" / revision)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    events = []
    result = download.download_model(card.key, JobControl(on_progress=events.append))
    assert result.bytes == total and result.key == card.key
    assert all(event.stage == "download" for event in events)
    middle = [event for event in events if 0.0 < event.fraction < 1.0]
    assert middle and " of 375 MB · " in middle[-1].message and middle[-1].message.endswith("MB/s")
    assert events[-1].fraction == 1.0 and events[-1].message.startswith("375 of 375 MB")


def test_download_can_be_cancelled_while_waiting(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(download, "POLL_S", 0.02)
    release = threading.Event()

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: release.wait(5) and "")
    control = JobControl()
    threading.Timer(0.1, control.cancel).start()
    from backend.errors import CancelledError

    with pytest.raises(CancelledError):
        download.download_model("clipseg", control)
    release.set()


def test_unknown_model_and_unaccepted_sam3_licence_are_bad_input():
    from backend import api
    from backend.errors import BadInputError

    with pytest.raises(BadInputError, match="unknown model"):
        download.download_model("gpt-5", JobControl())
    with pytest.raises(BadInputError, match="licence"):
        api.download_model(api.DownloadModelRequest("sam3"))


@pytest.mark.parametrize(("code", "message", "short"), [
    (4, "model CIDAS/clipseg-rd64-refined is not available offline (looked in /x); connect once …",
     "A model is missing"),
    (2, "no photo chosen: pick an image file or a loaded image", "No photo chosen"),
    (2, "cannot read image /a/very/long/path/photo.png: FileNotFoundError", "Cannot read image…"),
    (5, "out of GPU memory during stage1: try the draft preset", "Out of GPU memory"),
    (1, "internal error (KeyError: 'x'); see the system console and report it", "Something went wrong"),
])
def test_error_text_is_one_short_line_and_the_whole_message(code, message, short):
    from backend.errors import SHORT_MAX_CHARS, error_text

    text = error_text(code, message)
    assert text.short == short and len(text.short) <= SHORT_MAX_CHARS and text.details == message


def test_a_model_fetched_during_a_job_reports_its_bytes_as_the_jobs_progress(tmp_path, monkeypatch):
    """hub.fetch_snapshot's download branch, inside an api entry point's reporting_downloads block."""
    from backend.models import hub

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(download, "POLL_S", 0.02)
    card = MODEL_CARDS["clipseg"]

    def fake_snapshot_download(repo_id, revision, allow_patterns, local_files_only=False, token=None):
        if local_files_only:
            raise FileNotFoundError("not cached")
        blob = cache_state.repo_cache_dir(repo_id) / "blobs" / "weights.incomplete"
        blob.parent.mkdir(parents=True, exist_ok=True)
        for part in range(1, 4):
            blob.write_bytes(b"x" * 100_000 * part)
            time.sleep(0.05)
        return str(tmp_path / "snapshot")

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    events = []
    control = JobControl(on_progress=events.append)
    with download.reporting_downloads(control):
        folder = hub.fetch_snapshot(card.repo_id, "rev", ["model.safetensors"])
    assert folder == tmp_path / "snapshot"
    assert [e.stage for e in events] and {e.stage for e in events} == {"download"}
    assert events[-1].message.startswith("0 of 603 MB") or "of 603 MB" in events[-1].message
    assert any("MB/s" in e.message for e in events)
    events.clear()  # outside a job nothing is reported
    hub.fetch_snapshot(card.repo_id, "rev", ["model.safetensors"])
    assert events == []
