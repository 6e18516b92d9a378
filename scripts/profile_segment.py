"""A/B timing of the fast-mode segmentation speed-ups on one CUDA machine (issue #8: ≤ 0.10 s first prompt).

    python scripts/profile_segment.py --models full-random --device cuda --repeats 20 --out profile_segment.json

Each number is the median of ``--repeats`` runs after ``--warmup`` untimed runs, with torch.cuda.synchronize()
around every run (``backend.bench_timing.time_stage``), on scikit-image's coffee.png (600×400, as the bench):

1. CLIPSeg heatmap, one prompt: fp32 weights under autocast, eager (the earlier path) · fp16 weights, eager ·
   fp16 weights replayed from a CUDA graph (the new default).
2. SAM image embedding (``--sam-variant``, vit_h): fp32 weights under autocast (earlier) · the same with SDPA
   attention · fp16 weights · fp16 + SDPA · fp16 + SDPA + CUDA graph (the new default).
3. The whole fast mode through ``segment_image`` (models loaded and graphs captured by the warm-up runs): the
   earlier config (``half_weights``, ``sdpa_attention``, ``cuda_graphs`` off) against the new defaults, for 1
   and 6 prompts, with the per-stage split of one run. Threshold 0, so no prompt short-circuits.

Every variant runs in its own try/except: a failure is printed and recorded, and the script goes on. Beside
each time: how far that variant's output is from the earlier path's (heatmap differences, embedding cosine),
and the peak GPU memory of its timed runs. The JSON report (``--out``) is rewritten after every variant.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import json
import platform
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.bench import BENCH_PROMPTS  # noqa: E402
from backend.bench_timing import time_stage  # noqa: E402
from backend.images import fit_within, load_image, resize_rgb, to_uint8  # noqa: E402
from backend.models import catalog  # noqa: E402
from backend.models.clipseg import load_clipseg, prepare_clipseg  # noqa: E402
from backend.models.loaded import clear_loaded_models  # noqa: E402
from backend.models.mode import ModelMode  # noqa: E402
from backend.models.sam import load_sam  # noqa: E402
from backend.models.sam_cuda import prepare_sam  # noqa: E402
from backend.segment import SegmentConfig, segment_image  # noqa: E402
from backend.segment.heatmap import compute_heatmaps  # noqa: E402
from backend.segment.sam_masks import embed_image  # noqa: E402

EARLIER = dict(half_weights=False, sdpa_attention=False, cuda_graphs=False)  # SegmentConfig of the earlier path


@dataclasses.dataclass(frozen=True)
class ClipSegVariant:
    name: str
    half: bool
    graphs: bool
    autocast: bool


@dataclasses.dataclass(frozen=True)
class SamVariant:
    name: str
    half: bool
    sdpa: bool
    graphs: bool
    autocast: bool


CLIPSEG_VARIANTS = (
    ClipSegVariant("fp32 weights + autocast, eager [earlier]", half=False, graphs=False, autocast=True),
    ClipSegVariant("fp16 weights, eager", half=True, graphs=False, autocast=False),
    ClipSegVariant("fp16 weights + CUDA graph [new]", half=True, graphs=True, autocast=False),
)
SAM_VARIANTS = (
    SamVariant("fp32 weights + autocast [earlier]", half=False, sdpa=False, graphs=False, autocast=True),
    SamVariant("fp32 weights + autocast + SDPA", half=False, sdpa=True, graphs=False, autocast=True),
    SamVariant("fp16 weights", half=True, sdpa=False, graphs=False, autocast=False),
    SamVariant("fp16 weights + SDPA", half=True, sdpa=True, graphs=False, autocast=False),
    SamVariant("fp16 weights + SDPA + CUDA graph [new]", half=True, sdpa=True, graphs=True, autocast=False),
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", choices=["full-random", "tiny"], default="full-random",
                        help="full-random: real-size architectures, random weights (timing); tiny: smoke run")
    parser.add_argument("--device", default="cuda", help="cuda (what the numbers are for) or cpu (smoke run)")
    parser.add_argument("--sam-variant", choices=catalog.SAM_VARIANTS, default=catalog.DEFAULT_SAM_VARIANT)
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per variant (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first (loads, autotunes, captures)")
    parser.add_argument("--out", default="profile_segment.json", help="JSON report, rewritten after each variant")
    parser.add_argument("--skip", nargs="*", default=[], choices=["clipseg", "sam", "whole"],
                        help="sections to leave out")
    return parser.parse_args(argv)


class Report:
    """The rows measured so far, printed as they come and written to JSON after each one."""

    def __init__(self, args: argparse.Namespace, device: torch.device):
        self.path = Path(args.out)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict] = []
        self.header = {
            "generator": "scripts/profile_segment.py",
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "versions": _versions(),
            "models": args.models,
            "sam_variant": args.sam_variant,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "photo": "skimage coffee.png (600x400)",
        }

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if "error" in row:
            print(f"[{row['group']}] {row['variant']}: FAILED {row['error']}", flush=True)
        else:
            extra = row.get("accuracy", row.get("stages_ms_first_prompt", ""))
            print(f"[{row['group']}] {row['variant']}: {row['median_ms']:.2f} ms (min {row['min_ms']:.2f}, "
                  f"peak {row['peak_gpu_memory_mb']:.0f} MB) {extra}", flush=True)
        self.path.write_text(json.dumps({**self.header, "results": self.rows}, indent=2))

    def print_table(self) -> None:
        earlier = {r["group"]: r["median_ms"] for r in self.rows if "[earlier]" in r["variant"] and "error" not in r}
        print(f"\n{'group':<22} {'variant':<44} {'median ms':>10} {'min ms':>8} {'peak MB':>8} {'vs earlier':>10}")
        for row in self.rows:
            if "error" in row:
                print(f"{row['group']:<22} {row['variant']:<44} FAILED: {row['error'][:60]}")
                continue
            base = earlier.get(row["group"])
            ratio = f"{base / row['median_ms']:.2f}x" if base and row["median_ms"] > 0 else ""
            print(f"{row['group']:<22} {row['variant']:<44} {row['median_ms']:>10.2f} {row['min_ms']:>8.2f} "
                  f"{row['peak_gpu_memory_mb']:>8.0f} {ratio:>10}")
        summary = self.summary()
        for name, numbers in summary.items():
            print(f"{name}: first prompt {numbers['first_prompt_ms']:.1f} ms (target 100), each further prompt "
                  f"{numbers['per_further_prompt_ms']:.1f} ms (target 30)")
        self.path.write_text(json.dumps({**self.header, "results": self.rows, "summary": summary}, indent=2))
        print(f"\nwritten to {self.path}")

    def summary(self) -> dict:
        """Fast mode's two targets per config: the 1-prompt median, and (6-prompt - 1-prompt) / 5."""
        medians = {r["variant"]: r["median_ms"] for r in self.rows if "error" not in r}
        out = {}
        for name in ("earlier", "new"):
            tag = " [earlier]" if name == "earlier" else ""
            one, six = medians.get(f"{name}: 1 prompt{tag}"), medians.get(f"{name}: 6 prompts{tag}")
            if one is not None and six is not None:
                out[name] = {"first_prompt_ms": round(one, 2), "per_further_prompt_ms": round((six - one) / 5, 2)}
        return out


def _versions() -> dict:
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("transformers", "segment_anything"):
        try:
            versions[name] = getattr(__import__(name), "__version__", "?")
        except ImportError:
            versions[name] = "missing"
    return versions


def measure(report: Report, group: str, variant: str, setup, device: torch.device, args, describe=None) -> object:
    """Time the work ``setup()`` returns; record the row (or the error); return one output of the work, or None.

    ``describe(output)`` adds fields to the row (how far the output is from the earlier path's, a stage split).
    """
    _free(device)  # the previous variant's models (SAM's patched modules hold reference cycles)
    try:
        work = setup()
        timing = time_stage(variant, work, device, repeats=args.repeats, warmup=args.warmup)
        output = work()
        row = {"group": group, "variant": variant, "median_ms": timing.median_s * 1000,
               "min_ms": min(timing.runs_s) * 1000, "runs_ms": [round(r * 1000, 3) for r in timing.runs_s],
               "peak_gpu_memory_mb": timing.peak_gpu_memory_mb}
        if describe is not None:
            row.update(describe(output))
        report.add(row)
        return output
    except Exception as exc:  # noqa: BLE001 - one shot on the GPU: record, go on with the next variant
        traceback.print_exc()
        report.add({"group": group, "variant": variant, "error": f"{type(exc).__name__}: {str(exc)[:500]}"})
        return None


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def heatmap_difference(reference: torch.Tensor | None):
    def compare(heatmap: torch.Tensor) -> dict:
        if reference is None:
            return {}
        diff = (heatmap.float() - reference.float()).abs()
        agree = float(((heatmap > 0.4) == (reference > 0.4)).float().mean())
        return {"accuracy": {"heatmap_mean_abs_diff": round(float(diff.mean()), 6),
                             "heatmap_max_abs_diff": round(float(diff.max()), 6), "agree_at_0.4": round(agree, 6)}}
    return compare


def embedding_difference(reference: torch.Tensor | None):
    def compare(features: torch.Tensor) -> dict:
        if reference is None:
            return {}
        a, b = reference.double().flatten(), features.double().flatten()
        return {"accuracy": {"cosine": round(float(torch.nn.functional.cosine_similarity(a, b, dim=0)), 6),
                             "max_abs_diff_over_max": round(float((a - b).abs().max() / a.abs().max()), 6),
                             "finite": bool(torch.isfinite(b).all())}}
    return compare


def profile_clipseg(report: Report, mode: ModelMode, device: torch.device, image_t: torch.Tensor, args) -> None:
    base = load_clipseg(mode, "cpu")
    prompts = list(BENCH_PROMPTS[:1])
    reference = None
    for variant in CLIPSEG_VARIANTS:
        def setup(variant=variant):
            models = prepare_clipseg(dataclasses.replace(base, model=copy.deepcopy(base.model)), device,
                                     half=variant.half, graphs=variant.graphs)
            return lambda: compute_heatmaps(models, image_t, prompts, variant.autocast)

        output = measure(report, "clipseg heatmap", variant.name, setup, device, args, heatmap_difference(reference))
        if reference is None and output is not None:
            reference = output


def profile_sam(report: Report, mode: ModelMode, device: torch.device, work: np.ndarray, args) -> None:
    from segment_anything import SamPredictor

    base = load_sam(mode, args.sam_variant, "cpu")
    reference = None
    for variant in SAM_VARIANTS:
        def setup(variant=variant):
            models = prepare_sam(dataclasses.replace(base, model=copy.deepcopy(base.model)), device,
                                 half=variant.half, sdpa=variant.sdpa, graphs=variant.graphs)
            predictor = SamPredictor(models.model)

            def embed():
                embed_image(predictor, work, variant.autocast)
                return predictor.features
            return embed

        output = measure(report, "sam embedding", variant.name, setup, device, args, embedding_difference(reference))
        if reference is None and output is not None:
            reference = output.float().clone()


def split(results) -> dict:
    """Per-stage times of the first prompt (shared stages divided by the prompt count), as segment_image says."""
    return {"stages_ms_first_prompt": {k: round(v * 1000, 3) for k, v in results[0].timings.items()}}


def profile_whole(report: Report, mode: ModelMode, device: torch.device, photo, args) -> None:
    configs = (("earlier", SegmentConfig(mode="fast", models=mode, device=device.type, threshold=0.0, **EARLIER)),
               ("new", SegmentConfig(mode="fast", models=mode, device=device.type, threshold=0.0)))
    for name, config in configs:
        for count in (1, 6):
            label = f"{name}: {count} prompt{'s' if count > 1 else ''}" + (" [earlier]" if name == "earlier" else "")

            def setup(config=config, count=count):
                prompts = list(BENCH_PROMPTS[:count])
                return lambda: segment_image(photo, prompts, config)

            measure(report, f"fast mode, {count} prompt(s)", label, setup, device, args, split)
        clear_loaded_models()


def main(argv=None) -> int:
    import skimage

    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available here", file=sys.stderr)
        return 1
    mode = ModelMode(args.models)
    photo = load_image(str(Path(skimage.__file__).parent / "data" / "coffee.png"))
    work_h, work_w = fit_within(*photo.size, SegmentConfig().max_side)  # the working image segment_image uses
    work = resize_rgb(photo.rgb, work_h, work_w)
    image_t = torch.from_numpy(np.ascontiguousarray(work)).permute(2, 0, 1).to(device)
    report = Report(args, device)
    print(json.dumps(report.header), flush=True)
    sections = (("clipseg", lambda: profile_clipseg(report, mode, device, image_t, args)),
                ("sam", lambda: profile_sam(report, mode, device, to_uint8(work), args)),
                ("whole", lambda: profile_whole(report, mode, device, photo, args)))
    for name, run in sections:
        if name in args.skip:
            continue
        try:
            run()
        except Exception as exc:  # noqa: BLE001 - a section's setup (e.g. building the models) failed
            traceback.print_exc()
            report.add({"group": name, "variant": "(section setup)", "error": f"{type(exc).__name__}: {exc}"})
        _free(device)
    report.print_table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
