"""Collection items of ``scene.image_to_3d``: mask-correction points and the job history the panel lists."""

import bpy


class ImageTo3DMaskPoint(bpy.types.PropertyGroup):
    """One mask-correction click: a photo pixel (x right, y down, from the top-left corner) and its sign."""

    x: bpy.props.IntProperty(name="X", min=0, description="Pixel column, from the photo's left edge")
    y: bpy.props.IntProperty(name="Y", min=0, description="Pixel row, from the photo's top edge")
    positive: bpy.props.BoolProperty(name="Object", default=True,
                                     description="On: this pixel belongs to the object; off: it does not")


class ImageTo3DHistoryItem(bpy.types.PropertyGroup):
    """One past generate job, as read from the output folder's history.json (see operators/job_history.py)."""

    out_dir: bpy.props.StringProperty(name="Folder", subtype="DIR_PATH")
    prompt: bpy.props.StringProperty(name="Prompt")
    image_path: bpy.props.StringProperty(name="Photo", subtype="FILE_PATH")
    status: bpy.props.StringProperty(name="Status")  # done | failed | cancelled
    finished_at: bpy.props.StringProperty(name="Time")
    seed: bpy.props.IntProperty(name="Seed")
    preset: bpy.props.StringProperty(name="Preset")
    mode: bpy.props.StringProperty(name="Mode")
    method: bpy.props.StringProperty(name="Method")
    thumbnail: bpy.props.PointerProperty(name="Thumbnail", type=bpy.types.Image)
