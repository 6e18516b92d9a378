"""Issue 20 in bpy: placement clear of existing geometry, game-ready finishing, history outside undo and the
.blend, finished-only re-import. The backend is the fake of tests/blender_fakes.py (a 1 m textured box)."""

from __future__ import annotations

import pytest

from tests.blender_fixtures import datablock_names  # noqa: F401 - keeps the fixtures module imported


def _world_box(obj):
    from mathutils import Vector

    corners = [obj.matrix_world @ Vector(corner) for corner in obj.bound_box]
    return [min(c[i] for c in corners) for i in range(3)], [max(c[i] for c in corners) for i in range(3)]


def _overlap(a, b) -> bool:
    return all(a[0][i] < b[1][i] and b[0][i] < a[1][i] for i in range(3))


def test_import_beside_the_default_cube_does_not_overlap_it(addon_settings):
    import bpy

    bpy.ops.mesh.primitive_cube_add(size=2.0, location=(0.0, 0.0, 0.0))
    cube = bpy.context.active_object
    bpy.context.scene.cursor.location = (0.0, 0.0, 0.0)
    assert bpy.ops.image_to_3d.generate() == {"FINISHED"}
    obj = bpy.data.objects["a coffee cup"]
    bpy.context.view_layer.update()
    assert not _overlap(_world_box(obj), _world_box(cube))
    assert obj.location.x > 1.0 and obj.location.y == pytest.approx(0.0) and obj.location.z == pytest.approx(0.0)
    assert obj.select_get() and not cube.select_get() and bpy.context.view_layer.objects.active == obj


def test_import_into_empty_space_stays_at_the_cursor(addon_settings):
    import bpy

    bpy.ops.mesh.primitive_cube_add(size=2.0, location=(10.0, 0.0, 0.0))
    bpy.context.scene.cursor.location = (0.0, 3.0, 0.0)
    assert bpy.ops.image_to_3d.generate() == {"FINISHED"}
    assert tuple(bpy.data.objects["a coffee cup"].location) == pytest.approx((0.0, 3.0, 0.0))


def test_photo_match_off_leaves_camera_and_render_size_alone(addon_settings):
    import bpy

    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 1920, 1080
    addon_settings.photo_match = False
    assert bpy.ops.image_to_3d.generate() == {"FINISHED"}
    assert scene.camera is None and (scene.render.resolution_x, scene.render.resolution_y) == (1920, 1080)
    assert addon_settings.photo_match_note == ""


def test_describe_photo_match_names_the_changes_and_the_undo(addon_package):
    from image_to_3d.operators.generate_job import describe_photo_match

    note = describe_photo_match("cup photo match", "Camera", (1920, 1080), (600, 400))
    assert "'Camera'" in note and "600 x 400" in note and "1920 x 1080" in note and "Ctrl+Z" in note


def test_game_ready_sets_height_origin_at_base_and_principled_texture(addon_settings):
    import bpy

    bpy.context.scene.cursor.location = (2.0, 1.0, 0.5)
    game_ready = addon_settings.game_ready
    game_ready.enabled, game_ready.height_m, game_ready.origin_at_base = True, 0.3, True
    assert bpy.ops.image_to_3d.generate() == {"FINISHED"}
    obj = bpy.data.objects["a coffee cup"]
    bpy.context.view_layer.update()
    low, high = _world_box(obj)
    assert high[2] - low[2] == pytest.approx(0.3, abs=1e-4)  # the 1 m box is now 0.3 m tall
    assert obj.dimensions.z == pytest.approx(0.3, abs=1e-4)
    # origin = centre of the bottom face: the lowest vertex is at local z 0, the box centred on the origin in x/y
    zs = [v.co.z for v in obj.data.vertices]
    xs = [v.co.x for v in obj.data.vertices]
    assert min(zs) == pytest.approx(0.0, abs=1e-5) and (min(xs) + max(xs)) / 2 == pytest.approx(0.0, abs=1e-5)
    assert low[2] == pytest.approx(obj.location.z, abs=1e-5)
    nodes = obj.active_material.node_tree.nodes
    bsdf = next(node for node in nodes if node.type == "BSDF_PRINCIPLED")
    link = bsdf.inputs["Base Color"].links[0]
    assert link.from_node.type == "TEX_IMAGE" and link.from_node.image is not None
    output = next(node for node in nodes if node.type == "OUTPUT_MATERIAL")
    assert output.inputs["Surface"].links[0].from_node == bsdf


def test_game_ready_y_up_keeps_the_object_standing_in_blender(addon_settings):
    import bpy

    game_ready = addon_settings.game_ready
    game_ready.enabled, game_ready.up_axis, game_ready.height_m = True, "Y", 2.0
    assert bpy.ops.image_to_3d.generate() == {"FINISHED"}
    obj = bpy.data.objects["a coffee cup"]
    ys = [v.co.y for v in obj.data.vertices]
    assert max(ys) - min(ys) == pytest.approx(2.0, abs=1e-4)  # local +Y is the 2 m height
    assert obj.dimensions.y == pytest.approx(2.0, abs=1e-4)
    bpy.context.view_layer.update()
    low, high = _world_box(obj)
    assert high[2] - low[2] == pytest.approx(2.0, abs=1e-4)  # and in the world it still stands along Z


def test_decimate_reaches_the_face_budget(registered_addon):
    import bpy
    from image_to_3d.operators.game_ready import GameReadyConfig, make_game_ready

    bpy.ops.mesh.primitive_uv_sphere_add(segments=64, ring_count=32)
    sphere = bpy.context.active_object
    faces_before = len(sphere.data.polygons)
    result = make_game_ready(sphere, GameReadyConfig(face_budget=300, origin_at_base=False))
    assert faces_before > 1000
    assert result.faces_before == faces_before and 150 <= result.faces_after <= 300
    assert len(sphere.data.polygons) == result.faces_after and not sphere.modifiers


def test_quad_remesh_makes_quads(registered_addon):
    import bpy
    from image_to_3d.operators.game_ready import GameReadyConfig, make_game_ready

    bpy.ops.mesh.primitive_uv_sphere_add(segments=32, ring_count=16)
    sphere = bpy.context.active_object
    result = make_game_ready(sphere, GameReadyConfig(quad_remesh=True, face_budget=400, origin_at_base=False))
    assert "quads (texture UVs lost)" in result.notes, result.notes
    assert all(len(polygon.vertices) == 4 for polygon in sphere.data.polygons)


def test_error_is_not_saved_into_the_blend(addon_settings, tmp_path):
    import bpy

    addon_settings.last_error = "no photo chosen: pick an image file or a loaded image"
    addon_settings.last_message = "generate failed"
    path = str(tmp_path / "scene.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    scene_name = bpy.context.scene.name
    bpy.ops.wm.open_mainfile(filepath=path)  # as a new Blender session would: only the file comes back
    settings = bpy.data.scenes[scene_name].image_to_3d
    assert settings.last_error == settings.last_message == ""  # a stored property would read back


def test_history_lives_outside_the_scene_and_failed_jobs_cannot_be_reimported(addon_settings):
    import bpy

    assert bpy.ops.image_to_3d.generate() == {"FINISHED"}
    addon_settings.image_path = "/no/such/photo.png"
    with pytest.raises(RuntimeError, match="no such photo|cannot read image"):
        bpy.ops.image_to_3d.generate()
    history = addon_settings.history
    assert [item.status for item in history][:2] == ["failed", "done"]
    assert history == bpy.context.window_manager.image_to_3d_session.history  # undo restores scenes only
    assert "history" not in type(addon_settings).bl_rna.properties.keys()
    with pytest.raises(RuntimeError, match="only finished jobs"):
        bpy.ops.image_to_3d.history_reimport(index=0)
    count = len(bpy.data.objects)
    assert bpy.ops.image_to_3d.history_reimport(index=1) == {"FINISHED"}
    assert len(bpy.data.objects) == count + 1


def test_undo_and_redo_leave_the_history_alone(addon_settings):
    import bpy

    bpy.ops.ed.undo_push(message="before generate")
    assert bpy.ops.image_to_3d.generate() == {"FINISHED"}
    bpy.ops.ed.undo_push(message="Image to 3D: a coffee cup")  # what push_undo_step does in the UI
    assert bpy.ops.ed.undo() == {"FINISHED"}
    assert "a coffee cup" not in bpy.data.objects  # undo took the object away ...
    history = bpy.context.scene.image_to_3d.history
    assert [(item.prompt, item.status) for item in history] == [("a coffee cup", "done")]  # ... not the job
    assert bpy.ops.ed.redo() == {"FINISHED"}
    assert "a coffee cup" in bpy.data.objects
    assert len(bpy.context.scene.image_to_3d.history) == 1


def test_download_needs_online_access_and_delete_empties_the_cache(addon_settings, tmp_path, monkeypatch):
    import bpy
    from image_to_3d.backend.models import cache_state
    from image_to_3d.backend.models.catalog import MODEL_CARDS

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    card = MODEL_CARDS["clipseg"]
    snapshot = cache_state.repo_cache_dir(card.repo_id) / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    assert cache_state.model_state(card) == cache_state.CACHED
    if not bpy.app.online_access:  # the bpy module runs with online access off, as a fresh Blender does
        with pytest.raises(RuntimeError, match="Online access is off"):
            bpy.ops.image_to_3d.model_download(key="clipseg")
    assert bpy.ops.image_to_3d.model_delete(key="clipseg") == {"FINISHED"}  # exec: no confirmation popup
    assert cache_state.model_state(card) == cache_state.MISSING


def test_new_object_is_framed_in_the_largest_3d_view(addon_settings):
    import bpy
    from image_to_3d.operators.placement import frame_in_view

    views = [area for window in bpy.context.window_manager.windows for area in window.screen.areas
             if area.type == "VIEW_3D"]
    bpy.ops.mesh.primitive_cube_add(location=(7.0, -3.0, 2.0))
    framed = frame_in_view(bpy.context.active_object)
    if not views:  # a build of the bpy module without a window: framing is skipped, never an error
        assert framed is False
        return
    assert framed is True
    view = max(views, key=lambda area: area.width * area.height).spaces.active.region_3d
    assert tuple(view.view_location) == pytest.approx((7.0, -3.0, 2.0), abs=1e-3)
    # the view a job was started from is the one framed, whichever is largest
    from types import SimpleNamespace

    from image_to_3d.operators.placement import remember_view

    remember_view(SimpleNamespace(area=views[-1]))
    bpy.context.active_object.location = (-4.0, 5.0, 1.0)
    bpy.context.view_layer.update()
    assert frame_in_view(bpy.context.active_object) is True
    view = views[-1].spaces.active.region_3d
    assert tuple(view.view_location) == pytest.approx((-4.0, 5.0, 1.0), abs=1e-3)


def test_several_prompts_come_from_a_text_block_made_on_demand(addon_settings):
    import bpy

    addon_settings.prompt = "a mug"
    assert bpy.ops.image_to_3d.edit_prompts() == {"FINISHED"}
    text = addon_settings.prompt_text
    assert text is not None and text.as_string().strip() == "a mug"
    text.write("the saucer\n")
    assert addon_settings.prompt_lines() == ("a mug", "the saucer")
    assert bpy.ops.image_to_3d.single_prompt() == {"FINISHED"}
    assert addon_settings.prompt_text is None and addon_settings.prompt == "a mug"


def test_open_mask_shows_the_preview_in_an_image_editor(addon_settings):
    import bpy

    assert bpy.ops.image_to_3d.segment() == {"FINISHED"}
    areas = [area for window in bpy.context.window_manager.windows for area in window.screen.areas]
    if not areas:
        pytest.skip("this bpy module build has no window to hold an Image Editor")
    editor = min(areas, key=lambda area: area.width * area.height)
    editor.type = "IMAGE_EDITOR"
    assert bpy.ops.image_to_3d.open_mask() == {"FINISHED"}
    assert editor.spaces.active.image == addon_settings.preview_image == bpy.data.images["a coffee cup overlay"]


def test_a_photo_match_camera_follows_the_resize(registered_addon):
    import bpy
    from image_to_3d.operators.game_ready import GameReadyConfig, follow_geometry, make_game_ready

    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(1.0, 2.0, 0.0))
    cube = bpy.context.active_object
    camera = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    bpy.context.collection.objects.link(camera)
    camera.location = (1.0, -3.0, 0.0)
    bpy.context.view_layer.update()
    result = make_game_ready(cube, GameReadyConfig(height_m=2.0, origin_at_base=True))
    follow_geometry(camera, result.geometry_change)
    # scaled ×2 about the cube's centre: the camera, 5 m in front, is now 10 m in front, seeing the same picture
    assert tuple(camera.location) == pytest.approx((1.0, -8.0, 0.0), abs=1e-5)
    assert tuple(camera.scale) == pytest.approx((1.0, 1.0, 1.0))
    assert cube.dimensions.z == pytest.approx(2.0) and cube.location.z == pytest.approx(-1.0)  # origin at base
