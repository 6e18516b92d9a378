"""3D Gaussian Splatting PLY (the layout of the reference implementation and its viewers).

binary_little_endian, one float32 property each, in this order:
x y z · nx ny nz (zeros) · f_dc_0..2 (degree-0 SH: (rgb - 0.5) / C0) · opacity (logit) · scale_0..2 (log σ)
· rot_0..3 (w, x, y, z quaternion).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..gaussians.gaussians import Gaussians

SH_C0 = 0.28209479177387814  # the degree-0 real spherical harmonic, 1 / (2√π)
PLY_PROPERTIES = (
    ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity"]
    + [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)]
)


def gaussians_to_ply_rows(gaussians: Gaussians) -> np.ndarray:
    """[N, 17] float32 rows in :data:`PLY_PROPERTIES` order."""
    def host(t: torch.Tensor) -> np.ndarray:
        return t.detach().to("cpu", torch.float64).numpy()

    opacity = np.clip(host(gaussians.opacities), 1e-7, 1 - 1e-7)
    quats = host(gaussians.quats)
    quats = quats / np.maximum(np.linalg.norm(quats, axis=1, keepdims=True), 1e-12)
    rows = np.concatenate([
        host(gaussians.means),
        np.zeros((len(gaussians), 3)),
        (host(gaussians.colors) - 0.5) / SH_C0,
        np.log(opacity / (1 - opacity))[:, None],
        np.log(np.maximum(host(gaussians.scales), 1e-12)),
        quats,
    ], axis=1)
    return rows.astype("<f4")


def export_gaussians_ply(gaussians: Gaussians, path: str | Path) -> Path:
    """Write ``gaussians`` as a 3DGS PLY file at ``path``."""
    rows = gaussians_to_ply_rows(gaussians)
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment image_to_3d\n"
        f"element vertex {rows.shape[0]}\n"
        + "".join(f"property float {name}\n" for name in PLY_PROPERTIES)
        + "end_header\n"
    )
    path = Path(path)
    path.write_bytes(header.encode("ascii") + np.ascontiguousarray(rows).tobytes())
    return path
