"""Artist workflow through the operators (bpy module): several objects per photo, photo match after Generate,
mask correction, job history. Generate is faked (files like the real job's); mask correction runs the real
tiny SAM."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.blender_fakes import write_textured_box_glb


@dataclass(frozen=True)
class FakeResult:
    out_dir: Path
    glb_path: Path
    reference_crop: tuple[float, float, float]
    image_size: tuple[int, int]


@dataclass(frozen=True)
class FakeObjectDone:
    index: int
    count: int
    prompt: str
    result: FakeResult


def write_fake_job(out_dir: Path, seed: int) -> FakeResult:
    """What generate writes that the add-on reads: model.glb, mask.png, reference.png, job.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_textured_box_glb(out_dir / "model.glb")
    mask = np.zeros((48, 64), np.uint8)
    mask[12:36, 16:48] = 255
    Image.fromarray(mask).save(out_dir / "mask.png")
    Image.fromarray(np.full((16, 16, 4), 200, np.uint8), "RGBA").save(out_dir / "reference.png")
    crop, size = (2.0, -8.0, 53.0), (64, 48)
    (out_dir / "job.json").write_text(json.dumps({"seed": seed, "reference_crop": crop, "image_size": size}))
    return FakeResult(out_dir, out_dir / "model.glb", crop, size)


@pytest.fixture
def fake_generate(job_backend, monkeypatch):
    """Generate (one and many) replaced by fakes; records each job's config. ``gate``: many-object jobs wait
    after their first object until it is set (or cancelled)."""
    calls: list = []
    gate = threading.Event()
    gate.set()

    def build_one(config, out_dir):
        def work(control):
            calls.append(config)
            control.report("stage1", 0.5)
            return write_fake_job(Path(out_dir), config.seed)

        return work

    def build_many(config, out_root, deliver):
        def work(control):
            calls.append(config)
            count = len(config.prompts)
            for index, prompt in enumerate(config.prompts):
                control.report(f"object {index + 1} of {count}: stage1", 0.5, "optimising Gaussians")
                while index > 0 and not gate.is_set():
                    control.report(f"object {index + 1} of {count}: stage1", 0.5)
                    time.sleep(0.005)
                result = write_fake_job(Path(out_root) / f"{index + 1}-obj", config.seed)
                deliver(FakeObjectDone(index, count, prompt, result))
            return None

        return work

    monkeypatch.setattr(job_backend, "build_generate_work", build_one)
    monkeypatch.setattr(job_backend, "build_generate_many_work", build_many)
    return calls, gate


def _world_x_range(obj) -> tuple[float, float]:
    from mathutils import Vector

    xs = [(obj.matrix_world @ Vector(corner)).x for corner in obj.bound_box]
    return min(xs), max(xs)


def test_several_prompts_make_objects_side_by_side_each_with_photo_match(addon_settings, fake_generate):
    import bpy

    text = bpy.data.texts.new("prompts")
    text.write("the mug\nthe spoon\nthe saucer\n")
    addon_settings.prompt_text = text
    assert bpy.ops.image_to_3d.generate() == {"FINISHED"}

    objects = [bpy.data.objects[name] for name in ("the mug", "the spoon", "the saucer")]
    ranges = [_world_x_range(obj) for obj in objects]
    for (_, left_right), (right_left, _) in zip(ranges, ranges[1:], strict=False):
        assert right_left - left_right == pytest.approx(0.25, abs=1e-4)  # margin, no overlap
    for obj in objects:
        camera = bpy.data.objects[f"{obj.name} photo match"]
        assert (camera.location - obj.location).length == pytest.approx(2.0)
    assert bpy.context.scene.camera == bpy.data.objects["the mug photo match"]
    assert addon_settings.stage == "done"
    assert [item.prompt for item in addon_settings.history][:3] == ["the saucer", "the spoon", "the mug"]


def test_cancel_keeps_finished_objects_and_drops_the_rest(addon_settings, fake_generate, monkeypatch):
    import bpy
    from image_to_3d.operators import job_runner

    monkeypatch.setattr(job_runner, "blocks_until_done", lambda: False)
    _, gate = fake_generate
    gate.clear()
    text = bpy.data.texts.new("prompts")
    text.write("the mug\nthe spoon\nthe saucer\n")
    addon_settings.prompt_text = text
    bpy.ops.image_to_3d.generate()
    job = job_runner.current_job()
    deadline = time.monotonic() + 10
    while "the mug" not in bpy.data.objects and time.monotonic() < deadline:
        job_runner.poll_running_job()  # the timer: brings object 1 in while object 2 is being built
        time.sleep(0.01)
    assert "the mug" in bpy.data.objects
    job_runner.poll_running_job()
    assert addon_settings.stage == "object 2 of 3: stage1"
    bpy.ops.image_to_3d.cancel()
    job.join(10)
    assert job_runner.poll_running_job() is None
    assert "the mug" in bpy.data.objects and "the spoon" not in bpy.data.objects
    assert addon_settings.stage == "cancelled"
    history = addon_settings.history
    assert (history[0].status, history[0].prompt) == ("cancelled", "the spoon; the saucer")
    assert (history[1].status, history[1].prompt) == ("done", "the mug")


def test_photo_match_option_off_adds_no_camera(addon_settings, fake_generate):
    import bpy

    addon_settings.photo_match = False
    assert bpy.ops.image_to_3d.generate() == {"FINISHED"}
    assert [obj.type for obj in bpy.data.objects] == ["MESH"]


def test_history_json_panel_items_reimport_rerun_and_open_folder(addon_settings, fake_generate, tmp_path,
                                                                  monkeypatch):
    import bpy
    from image_to_3d.operators import artist_operators
    from image_to_3d.operators.job_history import read_history

    calls, _ = fake_generate
    addon_settings.seed = 7
    addon_settings.method = "quick"
    bpy.ops.image_to_3d.generate()
    entries = read_history(tmp_path / "jobs")
    assert len(entries) == 1 and entries[0].status == "done" and entries[0].seed == 7
    assert entries[0].method == addon_settings.history[0].method == "quick"
    item = addon_settings.history[0]
    assert (item.prompt, item.status, item.seed) == ("a coffee cup", "done", 7)
    assert item.thumbnail is not None and Path(item.thumbnail.filepath).name == "reference.png"

    # a fresh scene list is refilled from the file
    addon_settings.history.clear()
    assert bpy.ops.image_to_3d.history_refresh() == {"FINISHED"}
    assert addon_settings.history[0].out_dir == entries[0].out_dir

    assert bpy.ops.image_to_3d.history_reimport(index=0) == {"FINISHED"}
    assert {"a coffee cup", "a coffee cup.001"} <= set(bpy.data.objects.keys())

    addon_settings.image_path = str(tmp_path / "gone.png")  # the panel's photo and method no longer matter
    addon_settings.method = "dreamgaussian"
    assert bpy.ops.image_to_3d.history_rerun(index=0) == {"FINISHED"}
    rerun = calls[-1]
    assert rerun.seed == 8 and rerun.prompts == ("a coffee cup",) and rerun.method == "quick"
    assert rerun.mask_path == str(Path(entries[0].out_dir) / "mask.png")  # the mask is reused
    assert len(read_history(tmp_path / "jobs")) == 2

    opened = []
    monkeypatch.setattr(artist_operators, "open_folder", opened.append)
    assert bpy.ops.image_to_3d.history_open_folder(index=1) == {"FINISHED"}
    assert opened == [entries[0].out_dir]


def test_history_keeps_the_last_ten(tmp_path):
    from image_to_3d.operators.job_history import HistoryEntry, read_history, record_job

    for i in range(12):
        record_job(tmp_path, HistoryEntry(str(tmp_path / f"job{i}"), f"p{i}", "photo.png", "done", "now", seed=i))
    entries = read_history(tmp_path)
    assert [e.seed for e in entries] == list(range(11, 1, -1))
    (tmp_path / "history.json").write_text("{ not json")
    assert read_history(tmp_path) == []


def test_mask_correction_runs_tiny_sam_updates_preview_and_feeds_generate(addon_settings, fake_generate):
    import bpy

    bpy.ops.image_to_3d.segment()  # the fake segmentation: an ellipse mask
    before = bpy.data.images["a coffee cup mask"]
    with pytest.raises(RuntimeError, match="no correction points"):
        bpy.ops.image_to_3d.correct_mask()
    assert "correction points" in addon_settings.last_error

    bpy.ops.image_to_3d.mask_point_add(x=5, y=5, positive=True)
    bpy.ops.image_to_3d.mask_point_add(x=32, y=24, positive=False)
    assert [(p.x, p.y, p.positive) for p in addon_settings.mask_points] == [(5, 5, True), (32, 24, False)]
    assert bpy.ops.image_to_3d.correct_mask() == {"FINISHED"}  # real tiny SAM

    corrected = Path(addon_settings.corrected_mask_path)
    assert corrected.is_file() and corrected.parent != Path(addon_settings.segment_dir)
    with Image.open(corrected) as mask:
        assert mask.size == (64, 48) and set(np.unique(np.asarray(mask))) <= {0, 255}
    image = bpy.data.images["a coffee cup mask"]
    assert image != before and image.packed_file is not None  # the preview was replaced, same name
    assert "a coffee cup mask.001" not in bpy.data.images
    assert addon_settings.preview_image == bpy.data.images["a coffee cup overlay"]

    calls, _ = fake_generate
    bpy.ops.image_to_3d.generate()
    assert calls[-1].mask_path == str(corrected)  # Generate uses the corrected mask
    addon_settings.prompt = "another thing"  # a different prompt: the corrected mask no longer applies
    assert addon_settings.to_config().mask_path is None


def test_image_editor_click_maps_to_photo_pixels():
    from image_to_3d.operators.artist_operators import image_pixel_from_view

    assert image_pixel_from_view(0.0, 1.0, (64, 48)) == (0, 0)  # top-left corner
    assert image_pixel_from_view(0.5, 0.25, (64, 48)) == (32, 36)  # y runs down in the photo
    assert image_pixel_from_view(1.2, 0.5, (64, 48)) is None  # outside the image
