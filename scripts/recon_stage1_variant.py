"""Stage 1 alone, with changed settings, on an eval-recon ground truth made smaller: a CPU-sized fit experiment.

    python scripts/recon_stage1_variant.py --out DIR --object NAME --size 64 --label NAME [--set JSON]

DIR is an ``eval-recon`` folder with ground truth (``--phase render-gt``). Its training and held-out renders are
averaged down to ``--size`` (a divisor of the render size; colour averaged premultiplied, as a smaller render would
be), stage 1 fits the training views with eval-recon's small-size stage-1 settings (``reconstruct.stage1_config``)
changed by ``--set``, and the fitted Gaussians are scored with our rasterizer at both sets of views: the object PSNR
of ``--phase score`` and the silhouette IoU. No meshing, no Blender. One JSON line per run on stdout.

``--set`` is a JSON object of Stage1Config fields, with ``densify`` and ``lrs`` objects for DensifyConfig and
LearningRates fields, e.g. ``'{"steps": 800, "views_per_step": 2, "densify": {"stop_step": 600}}'``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.errors import BadInputError  # noqa: E402
from backend.eval_recon import metrics  # noqa: E402
from backend.eval_recon.config import SMALL  # noqa: E402
from backend.eval_recon.layout import load_ground_truth, read_manifest  # noqa: E402
from backend.eval_recon.reconstruct import stage1_config  # noqa: E402
from backend.generate.stages import render_straight  # noqa: E402
from backend.stage1 import ViewTarget, fit_gaussians  # noqa: E402


def averaged_down(views, cameras, size: int):
    """(camera at ``size``, rgb [size, size, 3], alpha [size, size]) per view, by box averaging."""
    result = []
    for (rgb, alpha), named in zip(views, cameras, strict=True):
        factor = alpha.shape[0] // size
        if factor * size != alpha.shape[0]:
            raise BadInputError(f"--size {size} does not divide the render size {alpha.shape[0]}")
        premultiplied = (rgb * alpha[..., None]).reshape(size, factor, size, factor, 3).mean((1, 3))
        small_alpha = alpha.reshape(size, factor, size, factor).mean((1, 3))
        straight = np.where(small_alpha[..., None] > 0, premultiplied / np.maximum(small_alpha[..., None], 1e-6), 0)
        result.append((dataclasses.replace(named.camera, width=size, height=size), straight.astype(np.float32),
                       small_alpha.astype(np.float32)))
    return result


def changed_config(changes: dict):
    config = stage1_config(SMALL)
    changes = dict(changes)
    densify = dataclasses.replace(config.densify, **changes.pop("densify", {}))
    lrs = dataclasses.replace(config.lrs, **changes.pop("lrs", {}))
    return dataclasses.replace(config, densify=densify, lrs=lrs, **changes)


def mean_scores(gaussians, views) -> tuple[float, float]:
    scores = []
    for camera, rgb, alpha in views:
        ours_rgb, ours_alpha = (t.numpy() for t in render_straight(gaussians, camera))
        scores.append((metrics.object_psnr(ours_rgb, ours_alpha, rgb, alpha)[0],
                       metrics.silhouette_iou(ours_alpha, alpha)))
    return float(np.mean([s[0] for s in scores])), float(np.mean([s[1] for s in scores]))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="an eval-recon folder with ground truth")
    parser.add_argument("--object", required=True)
    parser.add_argument("--size", type=int, default=64, help="square size the renders are averaged down to")
    parser.add_argument("--label", default="variant")
    parser.add_argument("--set", default="{}", help="Stage1Config changes as JSON (module docstring)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        manifest = read_manifest(args.out)
        truth = next((o for o in manifest.objects if o.name == args.object), None)
        if truth is None:
            raise BadInputError(f"{args.object!r} is not in {args.out}")
        config = changed_config(json.loads(args.set))
        folder = args.out / truth.name
        train = averaged_down(load_ground_truth(folder, truth.train), truth.train, args.size)
        held_out = averaged_down(load_ground_truth(folder, truth.held_out), truth.held_out, args.size)
    except (BadInputError, ValueError, TypeError) as exc:
        print(f"recon_stage1_variant: error: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    fitted = fit_gaussians([ViewTarget(c, torch.from_numpy(rgb), torch.from_numpy(alpha)) for c, rgb, alpha in train],
                           config, None, device=torch.device("cpu"), seed=args.seed)
    train_psnr, _ = mean_scores(fitted.gaussians, train)
    held_psnr, held_iou = mean_scores(fitted.gaussians, held_out)
    print(json.dumps({"label": args.label, "object": truth.name, "size": args.size, "train_psnr": round(train_psnr, 2),
                      "held_psnr": round(held_psnr, 2), "held_iou": round(held_iou, 4),
                      "gaussians": len(fitted.gaussians), "seconds": round(time.perf_counter() - started)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
