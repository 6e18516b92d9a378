"""The add-on's registration, preferences and the one ``to_config()`` (bpy module, no jobs run)."""

from __future__ import annotations

import pytest


def test_register_adds_panel_operators_preferences_and_unregister_removes_them(addon_package):
    import bpy

    from tests.blender_harness import registered_class_names

    before = registered_class_names()
    addon_package.register()
    try:
        names = registered_class_names()
        assert {"IMAGE_TO_3D_PT_main", "IMAGE_TO_3D_OT_segment", "IMAGE_TO_3D_OT_generate",
                "IMAGE_TO_3D_OT_cancel"} <= names
        assert bpy.types.IMAGE_TO_3D_PT_main.bl_category == "Image to 3D"
        assert bpy.types.IMAGE_TO_3D_PT_main.bl_space_type == "VIEW_3D"
        assert hasattr(bpy.ops.image_to_3d, "segment") and hasattr(bpy.ops.image_to_3d, "cancel")
        prefs_cls = addon_package.panels.preferences.ImageTo3DPreferences
        assert prefs_cls.bl_idname == "image_to_3d" and prefs_cls.is_registered
    finally:
        addon_package.unregister()
    assert registered_class_names() == before
    assert not addon_package.panels.preferences.ImageTo3DPreferences.is_registered


def test_to_config_splits_prompts_and_carries_preferences(addon_settings, small_photo):
    import bpy
    from image_to_3d.operators.backend_jobs import job_environment
    from image_to_3d.properties.job_config import JobConfig

    prefs = bpy.context.preferences.addons["image_to_3d"].preferences
    prefs.sam_variant = "vit_b"
    prefs.half_precision = False
    addon_settings.prompt = "  a coffee cup \n\nthe saucer\n"
    addon_settings.seed = 7
    addon_settings.preset = "draft"
    config = addon_settings.to_config()
    assert isinstance(config, JobConfig)
    assert config.prompts == ("a coffee cup", "the saucer")
    assert config.prompt == "a coffee cup"
    assert config.image_path == str(small_photo)
    assert (config.seed, config.preset, config.mode) == (7, "draft", "fast")
    assert config.options.sam_variant == "vit_b" and config.options.half_precision is False
    assert config.options.device == "cpu"
    # The bpy module runs with online access off: the job must not touch the network.
    assert config.options.online_access is bool(getattr(bpy.app, "online_access", True))
    if not config.options.online_access:
        assert job_environment(config.options)["HF_HUB_OFFLINE"] == "1"


def test_prompt_text_datablock_overrides_prompt_field(addon_settings):
    import bpy

    text = bpy.data.texts.new("prompts")
    text.write("the mug\nthe spoon\n")
    addon_settings.prompt_text = text
    assert addon_settings.to_config().prompts == ("the mug", "the spoon")


def test_loaded_image_datablock_is_used_even_when_only_in_memory(addon_settings):
    import bpy
    from PIL import Image

    image = bpy.data.images.new("generated photo", width=8, height=4)
    addon_settings.image = image
    path = addon_settings.to_config().image_path
    with Image.open(path) as saved:
        assert saved.size == (8, 4)


def test_local_model_folders_become_linked_model_dir(addon_settings, tmp_path):
    import bpy
    from image_to_3d.operators.backend_jobs import job_environment

    prefs = bpy.context.preferences.addons["image_to_3d"].preferences
    clipseg = tmp_path / "my clipseg"
    clipseg.mkdir()
    prefs.model_source = "local"
    prefs.clipseg_dir = str(clipseg)
    env = job_environment(addon_settings.to_config().options)
    linked = tmp_path.joinpath(env["IMAGE_TO_3D_MODEL_DIR"], "CIDAS--clipseg-rd64-refined")
    assert linked.resolve() == clipseg.resolve()


def test_local_sam_folder_is_found_where_the_backend_looks(addon_settings, tmp_path, monkeypatch):
    """Regression: the add-on linked a SAM folder under a repository id the backend never reads."""
    import bpy
    from image_to_3d.backend.models import hub
    from image_to_3d.backend.models.catalog import SAM_REPO_ID
    from image_to_3d.operators.backend_jobs import job_environment

    prefs = bpy.context.preferences.addons["image_to_3d"].preferences
    sam = tmp_path / "my sam"
    sam.mkdir()
    prefs.model_source = "local"
    prefs.sam_dir = str(sam)
    env = job_environment(addon_settings.to_config().options)
    monkeypatch.setenv(hub.LOCAL_DIR_ENV, env[hub.LOCAL_DIR_ENV])
    assert hub.local_model_dir(SAM_REPO_ID).resolve() == sam.resolve()


def test_missing_photo_is_reported_not_raised(addon_settings):
    import bpy

    addon_settings.image_path = ""
    with pytest.raises(RuntimeError, match="no photo chosen"):
        bpy.ops.image_to_3d.generate()
    assert "no photo chosen" in addon_settings.last_error
    assert addon_settings.last_exit_code == 2


class _RecordingLayout:
    """Stands in for bpy's UILayout (the bpy module draws no UI): records every call of the panel's draw."""

    def __init__(self, calls):
        self.calls = calls
        self.enabled = True

    def __getattr__(self, name):
        def record(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return self

        return record


def _draw_panel(addon_package, context) -> list:
    calls = []
    panel = type("PanelStandIn", (), {"layout": _RecordingLayout(calls)})()
    addon_package.panels.main_panel.IMAGE_TO_3D_PT_main.draw(panel, context)
    return calls


def test_panel_shows_fields_buttons_error_and_preview(addon_settings, addon_package):
    import bpy

    addon_settings.last_error = "cannot read image /x/photo.png: FileNotFoundError"
    addon_settings.preview_image = bpy.data.images.new("a coffee cup overlay", 4, 4)
    calls = _draw_panel(addon_package, bpy.context)
    props = {args[1] for name, args, _ in calls if name == "prop"}
    assert {"image_path", "prompt", "mode", "preset", "seed", "make_preview_plane"} <= props
    operators = [args[0] for name, args, _ in calls if name == "operator"]
    assert {"image_to_3d.segment", "image_to_3d.generate", "image_to_3d.error_details"} <= set(operators)
    assert "image_to_3d.cancel" not in operators  # no Cancel while idle
    labels = " ".join(kwargs.get("text", "") for name, _, kwargs in calls if name == "label")
    assert "Cannot read image" in labels and "FileNotFoundError" not in labels  # the rest is behind Details
    assert any(name in ("template_icon", "template_ID_preview") for name, _, _ in calls)


def test_panel_shows_progress_and_cancel_while_a_job_runs(addon_settings, addon_package, monkeypatch):
    import bpy
    from image_to_3d.operators import job_runner

    addon_settings.stage, addon_settings.progress = "stage 1", 0.4
    with monkeypatch.context() as patch:
        running = job_runner.Job(kind="generate", work=None, on_success=None, scene_name="Scene")
        patch.setattr(job_runner, "current_job", lambda: running)  # "a job is running"
        calls = _draw_panel(addon_package, bpy.context)
    progress = [kwargs for name, _, kwargs in calls if name == "progress"]
    assert progress and progress[0]["factor"] == pytest.approx(0.4) and "stage 1" in progress[0]["text"]
    assert "image_to_3d.cancel" in [args[0] for name, args, _ in calls if name == "operator"]


def test_models_missing_offline_says_how_to_enable_online_access(addon_package):
    from image_to_3d.backend.errors import ModelsUnavailableError
    from image_to_3d.operators.backend_jobs import _explained_model_errors
    from image_to_3d.properties.job_config import AddonOptions

    with pytest.raises(ModelsUnavailableError, match="Allow Online Access") as caught:
        with _explained_model_errors(AddonOptions(online_access=False)):
            raise ModelsUnavailableError("model CIDAS/clipseg-rd64-refined is not available offline")
    assert str(caught.value).startswith("model CIDAS/clipseg-rd64-refined") and caught.value.exit_code == 4
    with pytest.raises(ModelsUnavailableError) as caught:
        with _explained_model_errors(AddonOptions(online_access=True)):
            raise ModelsUnavailableError("download failed")
    assert str(caught.value) == "download failed"
