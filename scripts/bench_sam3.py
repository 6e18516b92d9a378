"""Timing of the SAM 3 segmenter (issue 21 targets on an H200: ≤ 40 ms first prompt, ≤ 5 ms per further prompt).

    python scripts/bench_sam3.py --models full-random --device cuda --dtypes bfloat16,float16 --out bench_sam3.json
    python scripts/bench_sam3.py --models tiny --device cpu --repeats 2      # the smoke run (CI, no GPU)

On scikit-image's coffee.png (600×400, as ``python -m backend bench``), models loaded once per dtype, each
number the median of ``--repeats`` runs after one warm-up (``backend.bench_timing.time_stage``, CUDA
synchronised around every run), with the peak GPU memory of those runs:

- ``first_prompt``: a new photo and one phrase: scaling the photo, the vision pass, the phrase, the chosen
  mask at the photo's size (``segment_concepts`` without model loading).
- ``vision``: the vision pass alone (``ConceptSegmenter.set_image``).
- ``further_prompt``: one more phrase against the kept features (``ConceptSegmenter.segment``), post-processing
  to working-size instance masks included.
- ``six_prompts``: six phrases in one batch against the kept features; ``per_prompt_s`` = median / 6.

Random weights make every query an instance (thresholds 0), so each phrase post-processes
``Sam3SegmentConfig.max_instances`` (20) masks: more than real weights usually keep, so the times are an upper
bound for that step. Outputs are checked for NaN (fp16 with random weights can overflow) and reported.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.bench import BENCH_PROMPTS  # noqa: E402
from backend.bench_timing import time_stage  # noqa: E402
from backend.device import resolve_device  # noqa: E402
from backend.images import fit_within, load_image, resize_rgb  # noqa: E402
from backend.models.loaded import clear_loaded_models  # noqa: E402
from backend.models.mode import ModelMode  # noqa: E402
from backend.segment.sam3_config import Sam3SegmentConfig  # noqa: E402
from backend.segment.sam3_segmenter import ConceptSegmenter, load_sam3_cached, segment_concepts  # noqa: E402

MAX_SIDE = 1024  # SegmentConfig's default working resolution


def bench_dtype(dtype_name: str, mode: ModelMode, device: torch.device, repeats: int) -> dict:
    dtype = getattr(torch, dtype_name)
    settings = Sam3SegmentConfig(half_dtype=dtype_name if dtype != torch.float32 else "bfloat16")
    half = dtype != torch.float32
    photo = load_image(Path(__import__("skimage").__file__).parent / "data" / "coffee.png")
    work = resize_rgb(photo.rgb, *fit_within(*photo.size, MAX_SIDE))

    started = time.perf_counter()
    models = load_sam3_cached(mode, settings, device, dtype)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    report: dict = {"load_s": round(time.perf_counter() - started, 3),
                    "parameters_m": round(sum(p.numel() for p in models.model.parameters()) / 1e6, 1)}

    def first_prompt():
        return segment_concepts(photo, BENCH_PROMPTS[:1], settings, mode, device, half, MAX_SIDE)

    segmenter = ConceptSegmenter(models, settings, device, dtype)
    stages = [time_stage("first_prompt", first_prompt, device, repeats),
              time_stage("vision", lambda: segmenter.set_image(work, photo.size), device, repeats)]
    segmenter.set_image(work, photo.size)
    stages.append(time_stage("further_prompt", lambda: segmenter.segment(BENCH_PROMPTS[1:2]), device, repeats))
    six = ConceptSegmenter(models, Sam3SegmentConfig(prompts_per_batch=6), device, dtype)
    six.set_image(work, photo.size)
    stages.append(time_stage("six_prompts", lambda: six.segment(BENCH_PROMPTS[:6]), device, repeats))
    for stage in stages:
        report[stage.name] = stage.as_dict()
    report["six_prompts"]["per_prompt_s"] = round(stages[-1].median_s / 6, 5)
    answer = segmenter.segment(BENCH_PROMPTS[:1])[0]
    report["finite_outputs"] = bool(torch.isfinite(torch.tensor(answer.presence)).item()
                                    and all(i.score == i.score for i in answer.instances))
    report["instances_per_prompt"] = len(answer.instances)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", choices=["tiny", "full-random"], default="full-random")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--dtypes", default="bfloat16,float16",
                        help="comma-separated: float32, float16, bfloat16 (the CPU always runs float32)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", default=None, help="JSON report")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    mode = ModelMode(args.models)
    dtypes = ["float32"] if device.type == "cpu" else [d.strip() for d in args.dtypes.split(",") if d.strip()]
    report = {"models": mode.value, "device": str(device), "torch": torch.__version__,
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
              "targets": {"first_prompt_s": 0.040, "further_prompt_s": 0.005}, "dtypes": {}}
    for name in dtypes:
        try:
            report["dtypes"][name] = bench_dtype(name, mode, device, args.repeats)
        except Exception as exc:  # noqa: BLE001 - one dtype failing must not lose the others' numbers
            traceback.print_exc()
            report["dtypes"][name] = {"error": f"{type(exc).__name__}: {exc}"}
        clear_loaded_models()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        row = report["dtypes"][name]
        if "error" not in row:
            print(f"{name}: first prompt {row['first_prompt']['median_s'] * 1e3:.1f} ms, vision "
                  f"{row['vision']['median_s'] * 1e3:.1f} ms, further prompt {row['further_prompt']['median_s'] * 1e3:.1f}"
                  f" ms, 6 prompts {row['six_prompts']['per_prompt_s'] * 1e3:.1f} ms each, peak "
                  f"{row['first_prompt']['peak_gpu_memory_mb']:.0f} MB")
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=2))
    return 0 if all("error" not in row for row in report["dtypes"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
