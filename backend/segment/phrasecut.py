"""``python -m backend eval-phrasecut --data DIR --split miniv``: mask accuracy on PhraseCut (VGPhraseCut v0).

Layout read (as published): ``DIR/refer_<split>.json`` — a list of tasks, each with ``task_id``,
``image_id``, ``phrase`` and ``Polygons`` (per instance a list of polygons, each a list of [x, y] points);
``DIR/image_data_split.json`` — per image its ``image_id``, ``width``, ``height``; ``DIR/images/<id>.jpg``.

Metrics, as PhraseCut's own evaluator (utils/evaluator.py, utils/iou.py) computes them: per task the IoU
of prediction and ground truth (0 when the intersection is empty); mean IoU; cumulative IoU = sum of
intersections / sum of unions; Pr@t = share of tasks with IoU strictly greater than t, t = 0.5 … 0.9.

Ground truth, as PhraseCut's ``polygons_to_mask`` (utils/data_transfer.py) rasterises it: every polygon of
every instance is drawn with PIL ``ImageDraw.polygon`` (fill and 1-px outline) on its own W×H canvas after
truncating each coordinate with ``int()``; polygons of fewer than 2 points are skipped; the result is the
union. We reproduce that rule (drawing all polygons on one canvas gives the same union).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..atomic_output import write_bytes_atomic
from ..errors import BadInputError

PRECISION_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class PhraseCutTask:
    task_id: str
    image_id: int
    phrase: str
    polygons: list  # flattened over instances: a list of polygons, each a list of [x, y]


@dataclass(frozen=True)
class PhraseCutMetrics:
    count: int
    mean_iou: float
    cumulative_iou: float
    precision: dict[float, float]  # threshold → share of tasks with IoU > threshold
    per_task: dict[str, dict]  # task_id → {"iou", "intersection", "union"}
    missing: int  # tasks with no prediction (scored as an empty mask)

    def to_json(self) -> dict:
        return {
            "count": self.count, "mean_iou": self.mean_iou, "cumulative_iou": self.cumulative_iou,
            "precision": {f"{t:.1f}": p for t, p in self.precision.items()}, "missing": self.missing,
            "per_task": self.per_task,
        }


def polygons_to_mask(polygons: list, width: int, height: int) -> np.ndarray:
    """Ground-truth mask [height, width] bool, rasterised the way PhraseCut's evaluator does (module doc)."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon in polygons:
        if len(polygon) < 2:
            continue
        points = [(int(x), int(y)) for x, y in polygon]
        draw.polygon(points, outline=1, fill=1)
    return np.asarray(canvas) > 0


def intersection_union(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in size")
    return int(np.logical_and(pred, gt).sum()), int(np.logical_or(pred, gt).sum())


def summarise(per_task: dict[str, tuple[int, int]], missing: int = 0) -> PhraseCutMetrics:
    """Metrics from each task's (intersection, union)."""
    if not per_task:
        raise BadInputError("no tasks to evaluate")
    ious = {tid: (i / u if i > 0 else 0.0) for tid, (i, u) in per_task.items()}
    values = np.array(list(ious.values()), dtype=np.float64)
    total_i = sum(i for i, _ in per_task.values())
    total_u = sum(u for _, u in per_task.values())
    return PhraseCutMetrics(
        count=len(values),
        mean_iou=float(values.mean()),
        cumulative_iou=float(total_i / total_u) if total_u else 0.0,
        precision={t: float((values > t).mean()) for t in PRECISION_THRESHOLDS},
        per_task={tid: {"iou": ious[tid], "intersection": i, "union": u} for tid, (i, u) in per_task.items()},
        missing=missing,
    )


def read_dataset(data_dir: str | Path, split: str) -> tuple[list[PhraseCutTask], dict[int, tuple[int, int]]]:
    """Tasks of ``split`` and each image's (width, height)."""
    data_dir = Path(data_dir)
    refer_path = data_dir / f"refer_{split}.json"
    sizes_path = data_dir / "image_data_split.json"
    for path in (refer_path, sizes_path):
        if not path.is_file():
            raise BadInputError(f"PhraseCut file not found: {path}")
    try:
        raw_tasks = json.loads(refer_path.read_text(encoding="utf-8"))
        raw_images = json.loads(sizes_path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise BadInputError(f"cannot read PhraseCut files in {data_dir}: {exc}") from None
    try:  # parsable JSON of the wrong shape is as unusable as a broken file: exit 2, naming which
        if isinstance(raw_images, dict):
            raw_images = list(raw_images.values())
        sizes = {int(img["image_id"]): (int(img["width"]), int(img["height"])) for img in raw_images}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadInputError(f"{sizes_path} is malformed ({type(exc).__name__}: {exc}); expected a list of "
                            "{image_id, width, height}") from None
    tasks = []
    try:
        for raw in raw_tasks:
            polygons = [[(float(x), float(y)) for x, y in polygon] for instance in raw["Polygons"]
                        for polygon in instance]
            tasks.append(PhraseCutTask(str(raw["task_id"]), int(raw["image_id"]), str(raw["phrase"]), polygons))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadInputError(f"{refer_path} is malformed ({type(exc).__name__}: {exc}); expected a list of "
                            "{task_id, image_id, phrase, Polygons}") from None
    unknown = {t.image_id for t in tasks} - set(sizes)
    if unknown:
        raise BadInputError(f"image_data_split.json lacks images {sorted(unknown)[:5]}")
    return tasks, sizes


def score_prediction_folder(tasks: list[PhraseCutTask], sizes: dict, pred_dir: str | Path) -> PhraseCutMetrics:
    """Score ``<pred_dir>/<task_id>.png`` masks (nonzero = object); a missing file counts as an empty mask."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise BadInputError(f"predictions folder not found: {pred_dir}")
    per_task, missing = {}, 0
    for task in tasks:
        width, height = sizes[task.image_id]
        gt = polygons_to_mask(task.polygons, width, height)
        path = pred_dir / f"{task.task_id}.png"
        if path.is_file():
            with Image.open(path) as img:
                pred = np.asarray(img.convert("L")) > 127
            if pred.shape != gt.shape:
                raise BadInputError(f"{path} is {pred.shape[1]}x{pred.shape[0]}, image is {width}x{height}")
        else:
            missing += 1
            pred = np.zeros_like(gt)
        per_task[task.task_id] = intersection_union(pred, gt)
    return summarise(per_task, missing)


def score_segmentation(tasks: list[PhraseCutTask], sizes: dict, data_dir: str | Path, config,
                       quiet: bool = False) -> PhraseCutMetrics:
    """Run our segmentation on every image (all its phrases in one call) and score it."""
    from tqdm import tqdm

    from ..images import load_image, resize_mask
    from .api import run_segmentation

    by_image: dict[int, list[PhraseCutTask]] = defaultdict(list)
    for task in tasks:
        by_image[task.image_id].append(task)
    per_task = {}
    for image_id, image_tasks in tqdm(by_image.items(), desc="phrasecut", file=sys.stderr, disable=quiet):
        image = load_image(Path(data_dir) / "images" / f"{image_id}.jpg")
        width, height = sizes[image_id]
        results, _ = run_segmentation(image, [t.phrase for t in image_tasks], config, allow_empty=True)
        for task, result in zip(image_tasks, results, strict=True):
            pred = resize_mask(result.mask, height, width)
            per_task[task.task_id] = intersection_union(pred, polygons_to_mask(task.polygons, width, height))
    return summarise(per_task)


def run_eval_phrasecut_command(args: argparse.Namespace) -> int:
    tasks, sizes = read_dataset(args.data, args.split)
    if args.limit is not None:
        tasks = tasks[: max(0, args.limit)]
    if args.predictions:
        metrics = score_prediction_folder(tasks, sizes, args.predictions)
        source = {"predictions": str(args.predictions)}
    else:
        from .. import api
        from ..job_commands import segmenter_fields

        # the settings a segment request would carry (the front door's one translation); the phrases and
        # images come from the dataset, so the request's own photo, prompts and folder are not used
        config = api.SegmentRequest(image_path=str(args.data), prompts=(), out_dir="", mode=args.mode,
                                    sam_variant=args.sam, threshold=args.threshold, models=args.models,
                                    device=args.device, **segmenter_fields(args)).segment_config()
        mode = config.models
        metrics = score_segmentation(tasks, sizes, args.data, config, quiet=args.quiet)
        source = {"mode": config.mode, "threshold": config.threshold, "sam": config.sam_variant,
                  "models": mode.value, "segmenter": config.segmenter}
        if config.segmenter == "sam3":
            source.update(mode="sam3", threshold=None, sam=None, instance=str(config.sam3.instance))
        if mode.meaningless:
            source["note"] = f"models are '{mode.value}' (random weights): these scores are meaningless"
    precision = "  ".join(f"Pr@{t:.1f}={p:.4f}" for t, p in metrics.precision.items())
    print(f"{args.split}: {metrics.count} tasks  mean IoU={metrics.mean_iou:.4f}  "
          f"cum IoU={metrics.cumulative_iou:.4f}  {precision}" + (f"  ({metrics.missing} missing)" if
                                                                  metrics.missing else ""))
    if args.out:
        report = {"split": args.split, **source, **metrics.to_json()}
        write_bytes_atomic(args.out, json.dumps(report, indent=2, ensure_ascii=False).encode("utf-8"))
    return 0
