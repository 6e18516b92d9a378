import bpy


class ImageTo3DSettings(bpy.types.PropertyGroup):
    """What the user chose for the next job, and the status the panel shows."""

    image_path: bpy.props.StringProperty(name="Photo", subtype="FILE_PATH")
    prompt: bpy.props.StringProperty(name="Prompt", description="What to take out of the photo")
    mode: bpy.props.EnumProperty(
        name="Mode",
        items=[("fast", "Fast", "SAM prompted from the text heatmap"),
               ("paper", "Paper", "SAM automatic masks fused by the IoU rule")],
        default="fast",
    )
    preset: bpy.props.EnumProperty(
        name="Preset",
        items=[("draft", "Draft", ""), ("standard", "Standard", ""), ("high", "High", "")],
        default="standard",
    )
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0)
    stage: bpy.props.StringProperty(name="Stage")
    progress: bpy.props.FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR")
    last_message: bpy.props.StringProperty(name="Message")
    last_error: bpy.props.StringProperty(name="Error")
