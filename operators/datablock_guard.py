"""Undo-by-hand for one import: anything new in bpy.data is removed if the import fails part-way."""

from __future__ import annotations

from contextlib import contextmanager

import bpy

# Every kind of datablock the glTF importer or our own scene code may create.
_GUARDED = ("objects", "meshes", "materials", "images", "textures", "node_groups", "collections", "cameras",
            "lights", "actions", "armatures", "curves", "shape_keys")


def _pointers() -> dict[str, set[int]]:
    return {kind: {block.as_pointer() for block in getattr(bpy.data, kind)} for kind in _GUARDED}


@contextmanager
def rolled_back_on_failure(view_layer=None):
    """Run the body; on any exception remove the datablocks it created and restore selection, then re-raise."""
    view_layer = view_layer or bpy.context.view_layer
    before = _pointers()
    selected = [obj for obj in view_layer.objects if obj.select_get(view_layer=view_layer)]
    active = view_layer.objects.active
    try:
        yield
    except BaseException:
        for obj in view_layer.objects:  # selection first, while every object is still valid
            if obj is not None:  # an inner guard's removal leaves a gap until the view layer updates
                obj.select_set(obj in selected, view_layer=view_layer)
        view_layer.objects.active = active
        remove_new_datablocks(before)
        raise


def remove_new_datablocks(before: dict[str, set[int]]) -> None:
    # Objects first (they use the meshes), then whatever else appeared; batch_remove also clears users.
    for kind in _GUARDED:
        new = [block for block in getattr(bpy.data, kind) if block.as_pointer() not in before[kind]]
        if new:
            bpy.data.batch_remove(new)
