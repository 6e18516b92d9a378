"""Training and held-out cameras for ``eval-recon``, and their JSON form for the Blender script.

All cameras orbit the origin at the reference radius (2) with the reference fov (49.1°), in our
convention (``backend.camera``: OpenGL, +Y up, elevation > 0 above). Training view 0 is the reference
view (elevation 0, azimuth 0) because stage 1 treats ``targets[0]`` as the reference. Held-out views sit
between the training azimuths and at elevations no training view uses, so none coincides with a training
view, but they stay inside the band of elevations the training views cover.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..camera import REFERENCE_FOVY_DEG, REFERENCE_RADIUS, Camera
from ..errors import BadInputError

# elevations cycled through by the training views: the reference, then above, below, a little above
TRAIN_ELEVATIONS_DEG = (0.0, 35.0, -20.0, 15.0)
HELD_OUT_ELEVATIONS_DEG = (10.0, -10.0, 25.0, 5.0)


@dataclass(frozen=True)
class NamedCamera:
    """A camera with the file stem its image is rendered to (``train-03`` → ``train-03.png``)."""

    name: str
    camera: Camera
    elevation_deg: float
    azimuth_deg: float

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "c2w": self.camera.c2w.tolist(),
            "fovy_deg": self.camera.fovy_deg,
            "width": self.camera.width,
            "height": self.camera.height,
            "elevation_deg": self.elevation_deg,
            "azimuth_deg": self.azimuth_deg,
        }

    @classmethod
    def from_json(cls, data: dict) -> NamedCamera:
        """The inverse of :meth:`to_json` (exact: ``c2w`` is float64, which JSON round-trips)."""
        try:
            camera = Camera(np.asarray(data["c2w"], dtype=np.float64), float(data["fovy_deg"]), int(data["width"]),
                            int(data["height"]))
            if camera.c2w.shape != (4, 4):
                raise ValueError(f"c2w has shape {camera.c2w.shape}")
            return cls(str(data["name"]), camera, float(data["elevation_deg"]), float(data["azimuth_deg"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInputError(f"bad camera in the eval-recon manifest: {exc!r}") from exc


def _orbit_views(prefix: str, count: int, size: int, elevations: tuple[float, ...],
                 azimuth_offset_deg: float) -> list[NamedCamera]:
    if count < 1:
        raise BadInputError(f"need at least one {prefix} view, got {count}")
    if size < 8:
        raise BadInputError(f"image size {size} is too small (at least 8 pixels)")
    views = []
    for i in range(count):
        elevation = elevations[i % len(elevations)]
        azimuth = (azimuth_offset_deg + 360.0 * i / count) % 360.0
        camera = Camera.orbit(elevation, azimuth, size, radius=REFERENCE_RADIUS, fovy_deg=REFERENCE_FOVY_DEG)
        views.append(NamedCamera(f"{prefix}-{i:02d}", camera, elevation, azimuth))
    return views


def training_cameras(count: int, size: int) -> list[NamedCamera]:
    """``count`` views evenly spread in azimuth; view 0 is the reference view (elevation 0, azimuth 0)."""
    return _orbit_views("train", count, size, TRAIN_ELEVATIONS_DEG, 0.0)


def held_out_cameras(count: int, size: int, train_count: int) -> list[NamedCamera]:
    """``count`` views half a training step away in azimuth (and at other elevations) from every training view."""
    offset = 180.0 / max(train_count, 1)
    offset += 7.0  # also off the training grid when count and train_count differ
    return _orbit_views("heldout", count, size, HELD_OUT_ELEVATIONS_DEG, offset)
