"""Photo match: a camera that sees the generated object as the photo saw it, with the photo behind it.

The maths, from the backend's conventions (docs/design.md §1, backend/camera.py, backend/preprocess.py):

1. Stage 1 fits the object to a square reference image of side S taken by the *reference camera*: at
   (0, 0, R) in our +Y-up world (R = 2), looking down -Z, +Y up, vertical (= horizontal) field of view
   49.1°, principal point in the middle. Blender's glTF importer maps our (x, y, z) to Blender's
   (x, -z, y), so in the object's own frame that camera sits at (0, -R, 0), looks along +Y with +Z up:
   a Blender camera (which looks down its local -Z, +Y up) rotated +90° about X. The object's origin is
   our world origin; scaled by s, the camera must be R·s away: camera = object's location and rotation
   @ translate(0, -R·s, 0) @ rotate_x(90°).
2. The reference image is the photo square ``reference_crop`` = (x0, y0, side) photo pixels (see
   backend.preprocess.reference_crop), so one reference pixel spans side / S photo pixels and the camera's
   focal length in *photo* pixels is f = (side / 2) / tan(fov / 2). A camera with that focal length whose
   image is the whole W x H photo and whose optical axis goes through the square's centre
   (cx, cy) = (x0 + side / 2, y0 + side / 2) sees the object exactly where the photo shows it.
3. In Blender terms: render resolution W x H; sensor fit VERTICAL so the sensor height spans H pixels,
   hence lens = f · sensor_height / H; and a lens shift moving the frame's centre (W/2, H/2) away from the
   optical axis. Blender's shift is in units of the fitted dimension (here H) and +y is up while photo
   rows go down: shift_x = (W/2 - cx) / H, shift_y = (cy - H/2) / H.
4. The photo is the camera's background image, stretched to the frame (same aspect as the render).
"""

from __future__ import annotations

import math

import bpy
from mathutils import Matrix

SENSOR_HEIGHT_MM = 24.0  # any value works (lens is derived from it); 24 mm is a full-frame sensor's height


def photo_match_lens(crop: tuple[float, float, float], image_size: tuple[int, int]) -> dict[str, float]:
    """Blender camera settings for the photo: {"lens", "shift_x", "shift_y"} with sensor fit VERTICAL."""
    x0, y0, side = crop
    width, height = image_size
    if side <= 0 or width <= 0 or height <= 0:
        raise ValueError(f"bad photo crop {crop} for a {width}x{height} photo")
    from ..backend import camera  # the reference camera is declared there; numpy loads when a job lands

    focal_px = (side / 2) / math.tan(math.radians(camera.REFERENCE_FOVY_DEG) / 2)
    cx, cy = x0 + side / 2, y0 + side / 2
    return {"lens": focal_px * SENSOR_HEIGHT_MM / height,
            "shift_x": (width / 2 - cx) / height,
            "shift_y": (cy - height / 2) / height}


def photo_match_matrix(obj) -> Matrix:
    """The camera's world matrix: the reference camera placed relative to ``obj`` (location, rotation, scale)."""
    from ..backend import camera

    location, rotation, scale = obj.matrix_world.decompose()
    mean_scale = (abs(scale.x) + abs(scale.y) + abs(scale.z)) / 3
    return (Matrix.LocRotScale(location, rotation, None)
            @ Matrix.Translation((0.0, -camera.REFERENCE_RADIUS * mean_scale, 0.0))
            @ Matrix.Rotation(math.radians(90.0), 4, "X"))


def add_photo_match_camera(obj, photo, crop: tuple[float, float, float], image_size: tuple[int, int],
                           context=None):
    """A camera "<object> photo match" seeing ``obj`` as the photo did, the photo as its background image.

    ``photo`` is the photo's image datablock (or None: no background image); ``crop`` the reference square
    (x0, y0, side) in photo pixels and ``image_size`` the photo's (width, height), both from the backend's
    GenerationResult / job.json. Sets the scene's render resolution to the photo's and makes the camera
    the scene camera. Replaces an older camera of the same name.
    """
    context = context or bpy.context
    scene = context.scene
    settings = photo_match_lens(crop, image_size)
    name = f"{obj.name} photo match"
    old = bpy.data.objects.get(name)
    if old is not None and old.type == "CAMERA":
        bpy.data.batch_remove([old, old.data])
    data = bpy.data.cameras.new(name)
    data.sensor_fit = "VERTICAL"
    data.sensor_height = SENSOR_HEIGHT_MM
    data.lens = settings["lens"]
    data.shift_x, data.shift_y = settings["shift_x"], settings["shift_y"]
    mean_scale = sum(abs(v) for v in obj.matrix_world.to_scale()) / 3
    data.clip_start, data.clip_end = 0.01 * mean_scale, 100.0 * mean_scale
    if photo is not None:
        background = data.background_images.new()
        background.image = photo
        background.frame_method = "STRETCH"  # the render has the photo's aspect, so nothing is distorted
        data.show_background_images = True
    camera = bpy.data.objects.new(name, data)
    context.collection.objects.link(camera)
    camera.matrix_world = photo_match_matrix(obj)
    scene.render.resolution_x, scene.render.resolution_y = image_size
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
    scene.camera = camera
    return camera


def photo_datablock(image_name: str | None, image_path: str):
    """The photo as an image datablock: the one the user picked, else the file loaded (reused if loaded)."""
    image = bpy.data.images.get(image_name) if image_name else None
    if image is not None:
        return image
    try:
        return bpy.data.images.load(image_path, check_existing=True)
    except RuntimeError:
        return None
