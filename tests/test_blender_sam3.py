"""SAM 3 in the add-on (bpy module, headless): the segmenter choice and the licence consent reach the backend's
requests, the token stays out of reprs, a SAM 3 Segment lists its instances in the panel, and choosing one
changes the mask file Generate uses. Segment and Generate are the fakes of tests/blender_fakes.py; choosing an
instance runs the real backend.api.choose_instance (a file operation, no model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

TOKEN = "hf_blender_secret"


def _prefs():
    import bpy

    return bpy.context.preferences.addons["image_to_3d"].preferences


def test_segmenter_choice_consent_and_token_reach_the_requests(addon_settings, tmp_path):
    from image_to_3d.operators.backend_jobs import generate_request, segment_request

    assert addon_settings.segmenter == "clipseg-sam"  # the default, from backend.choices
    assert addon_settings.to_config().request.segmenter == "clipseg-sam"
    assert addon_settings.to_config().request.sam3.accept_license is False
    addon_settings.segmenter = "sam3"
    prefs = _prefs()
    prefs.accept_sam3_license = True
    prefs.hf_token = TOKEN
    assert type(prefs).bl_rna.properties["hf_token"].subtype == "PASSWORD"
    config = addon_settings.to_config()
    for request in (segment_request(config, tmp_path / "s"), generate_request(config, tmp_path / "g")):
        assert (request.segmenter, request.sam3.accept_license, request.sam3.hf_token) == ("sam3", True, TOKEN)
    assert segment_request(config, tmp_path / "s").prompts == ("a coffee cup",)
    assert TOKEN not in repr(config)  # JobConfig, its options and its request
    prefs.hf_token = ""
    assert addon_settings.to_config().request.sam3.hf_token is None  # empty: the stored Hugging Face login


def _draw_instances_panel(addon_package, context) -> list:
    from tests.test_blender_addon import _RecordingLayout

    calls = []
    panel = type("PanelStandIn", (), {"layout": _RecordingLayout(calls)})()
    addon_package.panels.sam3_panel.IMAGE_TO_3D_PT_sam3_instances.draw(panel, context)
    return calls


def test_sam3_segment_lists_instances_and_choosing_two_changes_the_mask_generate_uses(
        addon_settings, addon_package, job_backend, monkeypatch):
    import bpy

    generated = []

    def recording_generate_work(config, out_dir):
        generated.append(config)
        from tests.blender_fakes import fake_generate_work

        return fake_generate_work(config, out_dir)

    monkeypatch.setattr(job_backend, "build_generate_work", recording_generate_work)
    addon_settings.segmenter = "sam3"
    _prefs().accept_sam3_license = True
    assert bpy.ops.image_to_3d.segment() == {"FINISHED"}
    instances = [(item.rank, round(item.score, 2)) for item in addon_settings.sam3_instances]
    assert instances == [(1, 0.91), (2, 0.47)]
    saved = [Path(item.mask_path) for item in addon_settings.sam3_instances]

    panel = addon_package.panels.sam3_panel.IMAGE_TO_3D_PT_sam3_instances
    assert panel.poll(bpy.context)
    buttons = [(kwargs["text"], kwargs.get("depress")) for name, args, kwargs in
               _draw_instances_panel(addon_package, bpy.context) if name == "operator"]
    assert buttons == [("1.  score 0.91", True), ("2.  score 0.47", False), ("All of them", False)]

    bpy.ops.image_to_3d.generate()
    assert generated[-1].mask_path is None  # before a choice: Generate segments as usual (best instance)

    assert bpy.ops.image_to_3d.choose_instance(rank=2) == {"FINISHED"}
    chosen = Path(addon_settings.corrected_mask_path)
    assert chosen.is_file() and chosen.parent != saved[1].parent
    with Image.open(chosen) as got, Image.open(saved[1]) as want:
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert addon_settings.sam3_instance_chosen == 2
    assert addon_settings.preview_image == bpy.data.images["a coffee cup overlay"]
    bpy.ops.image_to_3d.generate()
    assert generated[-1].mask_path == str(chosen)  # Generate uses instance 2's mask

    assert bpy.ops.image_to_3d.choose_instance(rank=0) == {"FINISHED"}  # All of them
    with Image.open(addon_settings.corrected_mask_path) as union, Image.open(saved[0]) as a, \
            Image.open(saved[1]) as b:
        np.testing.assert_array_equal(np.asarray(union) > 127, (np.asarray(a) > 127) | (np.asarray(b) > 127))


def test_choosing_without_sam3_instances_is_reported(addon_settings):
    import bpy
    import pytest

    with pytest.raises(RuntimeError, match="Segment with the SAM 3 segmenter first"):
        bpy.ops.image_to_3d.choose_instance(rank=2)
    assert "SAM 3 segmenter first" in addon_settings.last_error


def test_preferences_show_the_licence_notice_the_model_page_and_the_consent(addon_package):
    from image_to_3d.backend.models.catalog import SAM3_MODEL_PAGE
    from image_to_3d.panels.preferences import draw_sam3_access

    from tests.test_blender_addon import _RecordingLayout

    calls = []
    layout = _RecordingLayout(calls)
    draw_sam3_access(layout, object())
    labels = " ".join(kwargs.get("text", "") for name, _, kwargs in calls if name == "label")
    assert "SAM License" in labels and "gated" in labels
    assert [args[1] for name, args, _ in calls if name == "prop"] == ["accept_sam3_license", "hf_token"]
    assert any(name == "operator" and args[0] == "wm.url_open" for name, args, _ in calls)
    assert layout.url == SAM3_MODEL_PAGE  # set on the operator button (the recording layout returns itself)
