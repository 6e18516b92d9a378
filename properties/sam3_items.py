"""Collection item of ``scene.image_to_3d.sam3_instances``: one instance SAM 3 found, as the backend saved it."""

import bpy


class ImageTo3DInstanceItem(bpy.types.PropertyGroup):
    """One SAM 3 instance of the first prompt: its rank, score and the mask file the backend wrote for it."""

    rank: bpy.props.IntProperty(name="Rank", min=1, description="1 = the best-scoring instance")
    score: bpy.props.FloatProperty(name="Score", min=0.0, max=1.0, description="SAM 3's score for this instance")
    mask_path: bpy.props.StringProperty(name="Mask", subtype="FILE_PATH",
                                        description="<prompt>.instance-<rank>.mask.png in the segment folder")
