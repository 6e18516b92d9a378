"""What rendering K objects in one call saves: ``render_views_together`` against one ``render_views`` call per
object, forward and backward, with the screen-space gradients retained as stage 1 retains them.

Each object is random Gaussians in a ball (counts spread between ``--count`` and ``--count`` × (1 - ``--spread``),
so the padding is at work), seen by ``--views`` views of ``--size`` pixels. For each K the script times both
ways, ``--repeats`` times after ``--warmup`` untimed rounds, with a device sync around each round, and reports the
median milliseconds per round and the speed-up. ``--spread 0.9`` is the padding's worst case (one large object
among small ones).

On a CUDA machine (a stage-1 draft step renders one 256 px reference view and one SDS view per row):

    python scripts/profile_render_together.py --rows 1,2,4,8 --count 5000 --size 256 --out render_together.json

On the CPU, to know it works (the reference rasterizer: it pads and loops, so expect no gain there):

    python scripts/profile_render_together.py --device cpu --rows 1,2 --count 200 --size 32 --repeats 2 \
        --out /tmp/render_together.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from backend.camera import Camera  # noqa: E402
from backend.gaussians.gaussians import Gaussians  # noqa: E402
from backend.gaussians.render import camera_matrices, render_views, render_views_together  # noqa: E402

FIELDS = ("means", "scales", "quats", "opacities", "colors")


def random_leaves(count: int, seed: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Raw tensors of ``count`` Gaussians in a ball of radius 0.5, each a leaf that takes gradients."""
    g = torch.Generator().manual_seed(seed)
    direction = torch.nn.functional.normalize(torch.randn(count, 3, generator=g), dim=-1)
    tensors = {
        "means": direction * 0.5 * torch.rand(count, 1, generator=g) ** (1 / 3),
        "scales": 0.02 * torch.exp(0.5 * torch.randn(count, 3, generator=g)),
        "quats": torch.nn.functional.normalize(torch.randn(count, 4, generator=g), dim=-1),
        "opacities": 0.1 + 0.8 * torch.rand(count, generator=g),
        "colors": torch.rand(count, 3, generator=g),
    }
    return {name: t.to(device).requires_grad_(True) for name, t in tensors.items()}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def one_round(objects, viewmats, Ks, size, backgrounds, together: bool) -> None:
    gaussians = [Gaussians(**leaves) for leaves in objects]
    if together:
        batches = render_views_together(gaussians, viewmats, Ks, size, size, backgrounds)
    else:
        batches = [render_views(g, viewmats[k], Ks[k], size, size, backgrounds[k]) for k, g in enumerate(gaussians)]
    for batch in batches:
        batch.retain_screen_grads()
    sum(batch.rgb.mean() + batch.alpha.mean() for batch in batches).backward()
    for batch in batches:  # as densification reads them
        batch.screen_grads()
    for leaves in objects:
        for leaf in leaves.values():
            leaf.grad = None


def timed(device: torch.device, repeats: int, warmup: int, fn) -> float:
    for _ in range(warmup):
        fn()
    seconds = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="1,2,4,8", help="comma-separated K (objects per call)")
    parser.add_argument("--count", type=int, default=5000, help="Gaussians of the largest object")
    parser.add_argument("--spread", type=float, default=0.3, help="the smallest object has count × (1 - spread)")
    parser.add_argument("--views", type=int, default=1, help="views per object")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    try:
        rows = [int(k) for k in args.rows.split(",")]
    except ValueError:
        print(f"--rows must be comma-separated integers, got {args.rows!r}", file=sys.stderr)
        return 2
    if min(rows) < 1 or args.count < 1 or not 0 <= args.spread < 1 or args.views < 1 or args.size < 1:
        print("--rows, --count, --views and --size must be positive and --spread in [0, 1)", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("--device cuda but no CUDA device is visible", file=sys.stderr)
        return 2

    found = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
             "count": args.count, "spread": args.spread, "views": args.views, "size": args.size, "rows": {}}
    for k in rows:
        counts = [round(args.count * (1 - args.spread * i / max(1, k - 1))) for i in range(k)]
        objects = [random_leaves(n, seed=i, device=device) for i, n in enumerate(counts)]
        cameras = [[Camera.orbit(15.0 * v, 360.0 * (i * args.views + v) / (k * args.views), args.size)
                    for v in range(args.views)] for i in range(k)]
        mats = [[camera_matrices(c, device) for c in views] for views in cameras]
        viewmats = torch.stack([torch.stack([m[0] for m in views]) for views in mats])
        Ks = torch.stack([torch.stack([m[1] for m in views]) for views in mats])
        backgrounds = torch.ones(k, args.views, 3, device=device)
        inputs = (objects, viewmats, Ks, args.size, backgrounds)
        per_object = timed(device, args.repeats, args.warmup, partial(one_round, *inputs, together=False))
        together = timed(device, args.repeats, args.warmup, partial(one_round, *inputs, together=True))
        found["rows"][k] = {"counts": counts, "per_object_ms": round(per_object, 3),
                            "together_ms": round(together, 3), "speed_up": round(per_object / together, 2)}
        print(k, json.dumps(found["rows"][k]), flush=True)
    Path(args.out).write_text(json.dumps(found, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
