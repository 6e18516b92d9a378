"""``scene.image_to_3d.game_ready``: what Generate does to the object after import (operators/game_ready.py)."""

import bpy

from ..operators.game_ready import UP_AXES, GameReadyConfig


class ImageTo3DGameReady(bpy.types.PropertyGroup):
    """Game-ready finishing, all with Blender's own tools; each part off leaves the object as generated."""

    enabled: bpy.props.BoolProperty(
        name="Game-ready", default=False,
        description="After import: face budget, size, origin, up axis and a Principled material")
    face_budget: bpy.props.IntProperty(
        name="Face budget", default=5000, min=0, soft_max=100000,
        description="Most faces the object may keep (Decimate modifier, applied); 0: no limit")
    quad_remesh: bpy.props.BoolProperty(
        name="Quads (QuadriFlow)", default=False,
        description="Remesh into quads with Blender's QuadriFlow. The texture's UV layout is lost")
    height_m: bpy.props.FloatProperty(
        name="Height", default=0.0, min=0.0, soft_max=10.0, unit="LENGTH", subtype="DISTANCE",
        description="The object's real-world height; 0: keep the generated size (about 1 m)")
    origin_at_base: bpy.props.BoolProperty(
        name="Origin at base", default=True,
        description="Put the object's origin at the centre of its bottom, so it stands where it is dropped")
    up_axis: bpy.props.EnumProperty(name="Up axis", items=UP_AXES, default="Z",
                                    description="Which of the object's own axes points up")

    def to_config(self) -> GameReadyConfig | None:
        """The finishing to apply, or None when Game-ready is off."""
        if not self.enabled:
            return None
        return GameReadyConfig(face_budget=int(self.face_budget), quad_remesh=bool(self.quad_remesh),
                               height_m=float(self.height_m), origin_at_base=bool(self.origin_at_base),
                               up_axis=self.up_axis)
