"""Cameras in the project's one convention (docs/design.md §1, §7).

World: +Y up, metres. Cameras follow OpenGL: in camera space the camera looks down -Z, +X is right and
+Y is up. ``c2w`` is the 4x4 camera-to-world matrix whose columns are right, up, back and position.

Orbit angles: ``elevation`` in degrees, positive means the camera is *above* the object (looking down);
``azimuth`` in degrees, 0 puts the camera on the +Z axis (the reference view, looking at the front of the
object along -Z), positive turns it towards +X. The reference camera is elevation 0, azimuth 0,
radius 2, vertical fov 49.1°.

Zero123 conditions on (Δpolar, Δazimuth, Δradius) relative to the reference view; its polar angle grows
*downwards* from the pole, so Δpolar = -Δelevation. ``backend.guidance`` does that conversion in one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

REFERENCE_ELEVATION_DEG = 0.0
REFERENCE_AZIMUTH_DEG = 0.0
REFERENCE_RADIUS = 2.0
REFERENCE_FOVY_DEG = 49.1


def orbit_position(elevation_deg: float, azimuth_deg: float, radius: float) -> np.ndarray:
    """Camera centre, float64 [3], on a sphere around the origin."""
    e, a = math.radians(elevation_deg), math.radians(azimuth_deg)
    return np.array(
        [radius * math.cos(e) * math.sin(a), radius * math.sin(e), radius * math.cos(e) * math.cos(a)]
    )


def look_at(eye: np.ndarray, target: np.ndarray = np.zeros(3), up: np.ndarray = np.array([0.0, 1.0, 0.0])) -> np.ndarray:
    """OpenGL camera-to-world [4, 4] for a camera at ``eye`` looking at ``target``."""
    back = np.asarray(eye, float) - np.asarray(target, float)
    back /= np.linalg.norm(back)
    right = np.cross(up, back)
    if np.linalg.norm(right) < 1e-8:  # looking straight up or down: any right vector will do
        right = np.array([1.0, 0.0, 0.0])
    right /= np.linalg.norm(right)
    true_up = np.cross(back, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, true_up, back, eye
    return c2w


def orbit_camera(elevation_deg: float, azimuth_deg: float, radius: float = REFERENCE_RADIUS) -> np.ndarray:
    """OpenGL camera-to-world [4, 4] of an orbit camera looking at the origin."""
    return look_at(orbit_position(elevation_deg, azimuth_deg, radius))


def orbit_angles(camera: "Camera") -> tuple[float, float, float]:
    """(elevation°, azimuth°, radius) of a camera's position: the inverse of :meth:`Camera.orbit`."""
    x, y, z = (float(c) for c in camera.c2w[:3, 3])
    radius = math.sqrt(x * x + y * y + z * z)
    return math.degrees(math.asin(max(-1.0, min(1.0, y / radius)))), math.degrees(math.atan2(x, z)), radius


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: pose, vertical field of view and image size in pixels."""

    c2w: np.ndarray  # [4, 4] OpenGL camera-to-world
    fovy_deg: float
    width: int
    height: int

    @property
    def focal(self) -> float:
        """Focal length in pixels (square pixels)."""
        return 0.5 * self.height / math.tan(math.radians(self.fovy_deg) / 2)

    @property
    def K(self) -> np.ndarray:
        """[3, 3] intrinsics for an image whose pixel (0, 0) centre sits at (0.5, 0.5)."""
        f = self.focal
        return np.array([[f, 0, self.width / 2], [0, f, self.height / 2], [0, 0, 1.0]])

    @property
    def w2c(self) -> np.ndarray:
        return np.linalg.inv(self.c2w)

    @property
    def viewmat_opencv(self) -> np.ndarray:
        """[4, 4] world-to-camera in OpenCV axes (+Z forward, +Y down), as gsplat expects."""
        flip = np.diag([1.0, -1.0, -1.0, 1.0])
        return flip @ self.w2c

    @classmethod
    def orbit(cls, elevation_deg: float, azimuth_deg: float, size: int, radius: float = REFERENCE_RADIUS,
              fovy_deg: float = REFERENCE_FOVY_DEG) -> "Camera":
        return cls(orbit_camera(elevation_deg, azimuth_deg, radius), fovy_deg, size, size)


def reference_camera(size: int) -> Camera:
    """The view the photo was taken from (docs/design.md §1)."""
    return Camera.orbit(REFERENCE_ELEVATION_DEG, REFERENCE_AZIMUTH_DEG, size)
