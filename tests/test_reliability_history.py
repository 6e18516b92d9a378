"""Issue 19 §6: a damaged history.json never breaks the add-on, and heals; failed jobs add no images."""

from __future__ import annotations

import json

import pytest

DAMAGED = {
    "not JSON": "{ not json",
    "a list": "[1, 2, 3]",
    "jobs is a string": '{"jobs": "abc"}',
    "jobs is an object": '{"jobs": {"out_dir": "x"}}',
    "entry is a number": '{"jobs": [5]}',
    "entry is null": '{"jobs": [null]}',
    "seed is text": '{"jobs": [{"out_dir": "x", "prompt": "p", "image_path": "i", "status": "done", '
                    '"finished_at": "t", "seed": "seven"}]}',
    "seed too big for the panel": '{"jobs": [{"out_dir": "x", "prompt": "p", "image_path": "i", "status": "done", '
                                  '"finished_at": "t", "seed": 99999999999}]}',
    "prompt is a list": '{"jobs": [{"out_dir": "x", "prompt": ["p"], "image_path": "i", "status": "done", '
                        '"finished_at": "t"}]}',
    "deeply nested": "[" * 100000 + "]" * 100000,
}
GOOD = {"out_dir": "good", "prompt": "a mug", "image_path": "photo.png", "status": "done", "finished_at": "now"}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_a_damaged_history_reads_as_empty_and_heals(addon_package, tmp_path, case):
    from image_to_3d.operators.job_history import HistoryEntry, read_history, record_job

    (tmp_path / "history.json").write_text(DAMAGED[case])
    assert read_history(tmp_path) == []
    record_job(tmp_path, HistoryEntry(**GOOD))
    assert [e.out_dir for e in read_history(tmp_path)] == ["good"]
    assert json.loads((tmp_path / "history.json").read_text())["jobs"][0]["prompt"] == "a mug"


def test_good_entries_survive_beside_damaged_ones(addon_package, tmp_path):
    from image_to_3d.operators.job_history import read_history

    (tmp_path / "history.json").write_text(json.dumps({"jobs": [GOOD, {"seed": 1}, "x", dict(GOOD, seed=True)]}))
    assert [e.out_dir for e in read_history(tmp_path)] == ["good"]


def test_history_json_that_cannot_be_written_never_fails_the_job(addon_package, tmp_path):
    from image_to_3d.operators.job_history import HistoryEntry, record_job

    (tmp_path / "history.json").mkdir()  # a folder where the file goes
    assert [e.out_dir for e in record_job(tmp_path, HistoryEntry(**GOOD))] == ["good"]


def test_refresh_with_a_damaged_history_and_failed_jobs_add_no_images(addon_settings, tmp_path):
    import bpy
    from image_to_3d.operators.job_history import HistoryEntry, sync_history_items

    from tests import reliability_helpers as photos

    jobs = tmp_path / "jobs"
    jobs.mkdir(exist_ok=True)
    (jobs / "history.json").write_text(DAMAGED["seed is text"])
    assert bpy.ops.image_to_3d.history_refresh() == {"FINISHED"}
    assert len(addon_settings.history) == 0

    done = jobs / "done-job"
    done.mkdir()
    photos.write_png(done / "reference.png")
    images_before = set(bpy.data.images.keys())
    entry = HistoryEntry(str(done), "a mug", "photo.png", "done", "now")
    sync_history_items(addon_settings, [HistoryEntry(str(jobs / "failed"), "x", "p", "failed", "now"), entry],
                       load_thumbnails=False)  # what a failed job's on_finish does
    assert set(bpy.data.images.keys()) == images_before
    assert [item.status for item in addon_settings.history] == ["failed", "done"]
    sync_history_items(addon_settings, [entry])  # a finished job loads the thumbnail
    assert addon_settings.history[0].thumbnail is not None


def test_the_default_output_folder_is_private_not_the_shared_temp_folder(addon_package, tmp_path, monkeypatch):
    import stat
    import tempfile

    from image_to_3d.operators.backend_jobs import output_root
    from image_to_3d.properties.job_config import AddonOptions

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root = output_root(AddonOptions())
    assert not str(root).startswith(tempfile.gettempdir() + "/image_to_3d")
    assert root.is_dir() and not root.is_symlink() and stat.S_IMODE(root.stat().st_mode) == 0o700
    assert output_root(AddonOptions(output_dir=str(tmp_path / "mine"))) == tmp_path / "mine"
