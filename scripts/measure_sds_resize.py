"""How faithfully does a 512 px render reach Zero123's 256 px input: plain bilinear (DreamGaussian) or antialiased?

A checker-coloured sphere of small Gaussians is rendered at 512 px (stage 1's last SDS size, stage 2's size)
and at 1024 px; the 1024 px render, area-averaged to 256 px, stands for the ideal 256 px image. Prints the PSNR
of each 512 → 256 resize against it, over the whole frame (2026-11-30: 48.85 dB plain bilinear, 44.73 dB
antialiased, so ``GuidanceConfig.antialias_downscale`` defaults to False). Runs on the CPU in about a minute:

    python scripts/measure_sds_resize.py [--gaussians 20000] [--device cpu]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.camera import reference_camera  # noqa: E402
from backend.gaussians.gaussians import Gaussians  # noqa: E402
from backend.gaussians.render import render_gaussians  # noqa: E402


def checker_sphere(count: int, radius: float = 0.5, squares: int = 12, seed: int = 0) -> Gaussians:
    """``count`` flat-ish Gaussians on a sphere, coloured by a latitude/longitude checker."""
    generator = torch.Generator().manual_seed(seed)
    direction = torch.randn(count, 3, generator=generator)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    latitude = torch.asin(direction[:, 1])
    longitude = torch.atan2(direction[:, 0], direction[:, 2])
    cell = (torch.floor(latitude / math.pi * squares) + torch.floor(longitude / math.pi * squares)) % 2
    colors = torch.where(cell[:, None] > 0, torch.tensor([0.9, 0.5, 0.1]), torch.tensor([0.1, 0.4, 0.8]))
    spacing = math.sqrt(4 * math.pi * radius**2 / count)
    scales = torch.full((count, 3), 0.6 * spacing)
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]]).expand(count, 4).clone()
    return Gaussians(direction * radius, scales, quats, torch.full((count,), 0.95), colors)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a - b) ** 2).mean()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaussians", type=int, default=20000)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    gaussians = checker_sphere(args.gaussians).to(args.device)
    white = torch.ones(3, device=args.device)
    with torch.no_grad():
        renders = {size: render_gaussians(gaussians, reference_camera(size), white).rgb.permute(2, 0, 1)[None]
                   for size in (512, 1024)}
    ideal = F.interpolate(renders[1024], (256, 256), mode="area")
    for name, antialias in (("bilinear (DreamGaussian)", False), ("antialiased bilinear (ours)", True)):
        resized = F.interpolate(renders[512], (256, 256), mode="bilinear", align_corners=False, antialias=antialias)
        print(f"512 -> 256 {name}: {psnr(resized, ideal):.2f} dB against the area-averaged 1024 px render")


if __name__ == "__main__":
    main()
