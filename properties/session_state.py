"""What belongs to this Blender session, not to the .blend: kept out of saved files and out of undo.

- The job history lives on the window manager (``window_manager.image_to_3d_session.history``): undo and redo
  restore scene data, never the window manager, so a finished job stays listed after Ctrl+Z / Ctrl+Shift+Z;
  history.json in the output folder stays the record it is filled from.
- The last error (and what photo match changed) are properties with a getter and a setter over a dict of
  this module: they are never stored in the scene's ID properties, so saving writes none of them and a
  reopened file shows no stale error.
"""

import bpy

from .artist_items import ImageTo3DHistoryItem

_runtime_text: dict[tuple[str, str], str] = {}  # (scene name, property name) → value, this session only


def runtime_string(name: str, description: str, label: str) -> bpy.props.StringProperty:
    """A StringProperty whose value lives in this module, per scene, instead of in the .blend."""

    def get(self) -> str:
        return _runtime_text.get((self.id_data.name, name), "")

    def set(self, value: str) -> None:  # noqa: A001 - the name Blender's get/set API uses
        _runtime_text[(self.id_data.name, name)] = value

    return bpy.props.StringProperty(name=label, description=description, get=get, set=set)


class ImageTo3DSession(bpy.types.PropertyGroup):
    """``window_manager.image_to_3d_session``: the job history the History panel lists."""

    history: bpy.props.CollectionProperty(type=ImageTo3DHistoryItem, name="Job history")


def session_of(context=None) -> ImageTo3DSession:
    return (context or bpy.context).window_manager.image_to_3d_session


@bpy.app.handlers.persistent
def forget_on_load(*_args) -> None:
    """A file was opened (or a new one started): its scenes have no last error or notes yet."""
    _runtime_text.clear()


def register_handlers() -> None:
    _runtime_text.clear()
    if forget_on_load not in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.append(forget_on_load)


def unregister_handlers() -> None:
    if forget_on_load in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(forget_on_load)

