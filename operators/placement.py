"""Where an imported object goes: at the 3D cursor, but never hidden inside what is already in the scene.

How it is decided: the object's world bounding box (axis-aligned) is compared with every other visible
object's; while it overlaps one, the object moves along +X until its left side is ``CLEARANCE`` past the
right side of the boxes it overlaps. Moving along one axis keeps it at the cursor's height and depth, beside
what it would have hidden in, and always ends (each move passes at least one box, and the boxes are finite).
Then it is selected and active, and the 3D view the user worked in frames it (preference "Frame new objects").
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
from mathutils import Vector

CLEARANCE = 0.1  # metres between the moved object and the box it was beside


@dataclass(frozen=True)
class Box:
    """An axis-aligned world bounding box."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]

    def overlaps(self, other: Box) -> bool:
        return all(self.low[i] < other.high[i] and other.low[i] < self.high[i] for i in range(3))


def world_box(obj) -> Box:
    corners = [obj.matrix_world @ Vector(corner) for corner in obj.bound_box]
    return Box(tuple(min(c[i] for c in corners) for i in range(3)), tuple(max(c[i] for c in corners) for i in range(3)))


def place_clear_of_others(obj, context=None) -> float:
    """Move ``obj`` along +X out of every visible object's bounding box; returns how far it moved (metres)."""
    context = context or bpy.context
    context.view_layer.update()
    others = [world_box(other) for other in context.view_layer.objects
              if other != obj and other.type in {"MESH", "CURVE", "SURFACE", "META", "FONT", "VOLUME"}
              and other.visible_get()]
    moved = 0.0
    for _ in range(len(others) + 1):
        box = world_box(obj)
        hit = [other for other in others if box.overlaps(other)]
        if not hit:
            return moved
        step = max(other.high[0] for other in hit) + CLEARANCE - box.low[0]
        obj.location.x += step
        moved += step
        context.view_layer.update()
    return moved


def select_only(obj, context=None) -> None:
    view_layer = (context or bpy.context).view_layer
    for other in view_layer.objects:
        other.select_set(False)
    obj.select_set(True)
    view_layer.objects.active = obj


_last_view: dict[str, int] = {}  # "area": as_pointer() of the 3D view a job was started from (this session)


def remember_view(context) -> None:
    """Note the 3D view an operator runs in; a job's result arrives later, from a timer, with no area."""
    if context.area is not None and context.area.type == "VIEW_3D":
        _last_view["area"] = context.area.as_pointer()


def frame_in_view(obj, context=None) -> bool:
    """Frame ``obj`` in the 3D view the user worked in: the current one, else the one the job was started
    from (remember_view), else the largest. Returns False where there is no 3D view."""
    context = context or bpy.context
    area = context.area if context.area is not None and context.area.type == "VIEW_3D" else None
    window = context.window
    if area is None and "area" in _last_view:
        window, area = next(((w, a) for w in (context.window_manager.windows if context.window_manager else ())
                             for a in w.screen.areas if a.as_pointer() == _last_view["area"]), (window, None))
    if area is None:
        for candidate_window in (context.window_manager.windows if context.window_manager else ()):
            views = [a for a in candidate_window.screen.areas if a.type == "VIEW_3D"]
            if views:
                window, area = candidate_window, max(views, key=lambda a: a.width * a.height)
                break
    if area is None:
        return False
    region = next((r for r in area.regions if r.type == "WINDOW"), None)
    with context.temp_override(window=window, area=area, region=region, active_object=obj, selected_objects=[obj]):
        bpy.ops.view3d.view_selected(use_all_regions=False)
    return True
