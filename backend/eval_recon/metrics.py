"""Image and surface metrics for ``eval-recon``: PSNR, silhouette IoU, Chamfer distance.

PSNR is measured on the object: both images are composited over the same fixed background
(``METRIC_BACKGROUND``, mid grey, so a missing or extra piece of surface always costs error whatever its
colour), and the squared error is averaged over the pixels inside the UNION of the two silhouettes
(alpha > 0.5 in either image). Averaging over the whole frame instead would reward empty background;
``psnr_full_frame`` is reported beside it for comparison with papers that do that.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import BadInputError

METRIC_BACKGROUND = np.array([0.5, 0.5, 0.5], dtype=np.float32)
MAX_PSNR_DB = 100.0  # identical images: PSNR is infinite; report this cap instead (JSON has no inf)
SILHOUETTE_THRESHOLD = 0.5


def _check_image(name: str, image: np.ndarray, channels: int | None) -> None:
    expected_ndim = 2 if channels is None else 3
    if image.ndim != expected_ndim or (channels is not None and image.shape[-1] != channels):
        want = "[H, W]" if channels is None else f"[H, W, {channels}]"
        raise BadInputError(f"{name} has shape {tuple(image.shape)}, expected {want}")


def composite(rgb: np.ndarray,  # [H, W, 3] straight (not premultiplied) colour in [0, 1]
              alpha: np.ndarray,  # [H, W] in [0, 1]
              background: np.ndarray = METRIC_BACKGROUND) -> np.ndarray:  # [H, W, 3]
    _check_image("rgb", rgb, 3)
    _check_image("alpha", alpha, None)
    a = alpha[..., None].astype(np.float32)
    return (rgb.astype(np.float32) * a + np.asarray(background, np.float32) * (1.0 - a)).astype(np.float32)


def psnr(prediction: np.ndarray,  # [H, W, 3] in [0, 1]
         target: np.ndarray,  # [H, W, 3] in [0, 1]
         mask: np.ndarray | None = None,  # [H, W] bool: pixels to average over (None: all)
         max_db: float = MAX_PSNR_DB) -> float:
    """Peak signal-to-noise ratio in dB for a peak of 1.0; capped at ``max_db`` (identical images)."""
    if prediction.shape != target.shape:
        raise BadInputError(f"PSNR of images with different shapes {prediction.shape} and {target.shape}")
    error = (prediction.astype(np.float64) - target.astype(np.float64)) ** 2
    if mask is not None:
        if mask.shape != prediction.shape[:2]:
            raise BadInputError(f"PSNR mask has shape {mask.shape}, expected {prediction.shape[:2]}")
        if not mask.any():
            return max_db  # nothing to compare: both silhouettes empty
        error = error[mask]
    mse = float(error.mean())
    if mse <= 10.0 ** (-max_db / 10.0):
        return max_db
    return -10.0 * math.log10(mse)


def silhouette(alpha: np.ndarray, threshold: float = SILHOUETTE_THRESHOLD) -> np.ndarray:
    """[H, W] alpha → [H, W] bool."""
    _check_image("alpha", alpha, None)
    return alpha > threshold


def silhouette_iou(alpha_a: np.ndarray, alpha_b: np.ndarray, threshold: float = SILHOUETTE_THRESHOLD) -> float:
    """Intersection over union of two alpha masks thresholded at ``threshold``; 1.0 when both are empty."""
    if alpha_a.shape != alpha_b.shape:
        raise BadInputError(f"IoU of masks with different shapes {alpha_a.shape} and {alpha_b.shape}")
    a, b = silhouette(alpha_a, threshold), silhouette(alpha_b, threshold)
    union = np.logical_or(a, b).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(a, b).sum() / union)


def object_psnr(rgb_pred: np.ndarray, alpha_pred: np.ndarray, rgb_true: np.ndarray, alpha_true: np.ndarray
                ) -> tuple[float, float]:
    """(PSNR inside the union of the silhouettes, PSNR over the whole frame), both over ``METRIC_BACKGROUND``."""
    pred, true = composite(rgb_pred, alpha_pred), composite(rgb_true, alpha_true)
    union = np.logical_or(silhouette(alpha_pred), silhouette(alpha_true))
    return psnr(pred, true, union), psnr(pred, true)


def sample_surface(vertices: np.ndarray,  # [V, 3]
                   faces: np.ndarray,  # [F, 3] int
                   count: int, seed: int = 0) -> np.ndarray:  # [count, 3]
    """Points drawn uniformly by area on a triangle mesh."""
    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise BadInputError(f"mesh has vertices {vertices.shape} and faces {faces.shape}, expected [V, 3] and [F, 3]")
    if len(faces) == 0:
        raise BadInputError("cannot sample points on a mesh with no faces")
    corners = vertices[faces]  # [F, 3, 3]
    areas = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    if areas.sum() <= 0:
        raise BadInputError("cannot sample points on a mesh of zero area")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(faces), size=count, p=areas / areas.sum())
    u, v = rng.random(count), rng.random(count)
    flip = u + v > 1.0  # reflect into the triangle so the samples stay uniform
    u[flip], v[flip] = 1.0 - u[flip], 1.0 - v[flip]
    c = corners[chosen]
    return c[:, 0] + u[:, None] * (c[:, 1] - c[:, 0]) + v[:, None] * (c[:, 2] - c[:, 0])


def chamfer_distance(points_a: np.ndarray,  # [N, 3]
                     points_b: np.ndarray) -> float:  # [M, 3]
    """Symmetric mean nearest-neighbour distance: ½ (mean_a min_b |a-b| + mean_b min_a |a-b|), in world units."""
    from scipy.spatial import cKDTree

    if len(points_a) == 0 or len(points_b) == 0:
        raise BadInputError("Chamfer distance needs points on both surfaces")
    a_to_b, _ = cKDTree(points_b).query(points_a)
    b_to_a, _ = cKDTree(points_a).query(points_b)
    return float(0.5 * (a_to_b.mean() + b_to_a.mean()))


def bounding_box_diagonal(points: np.ndarray) -> float:  # [N, 3]
    return float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))
