"""Timing of the SAM 3 segmenter (issue 21 targets on an H200: ≤ 40 ms first prompt, ≤ 5 ms per further prompt).

    python scripts/bench_sam3.py --models full-random --device cuda --dtypes bfloat16,float16 --out bench_sam3.json
    python scripts/bench_sam3.py --models tiny --device cpu --repeats 2      # the smoke run (CI, no GPU)
    python scripts/bench_sam3.py --models full-random --device cuda --dtypes bfloat16 --variants static \
        --compile off,on --repeats 10 --out x.json                           # torch.compile A/B in one call

On scikit-image's coffee.png (600×400, as ``python -m backend bench``), the model loaded once per dtype and run
three ways: ``plain`` (transformers' ``Sam3Model.forward``), ``static`` (``backend.segment.sam3_static``: no
host syncs inside the model, text features cached per phrase, CUDA graphs for the vision pass, the text
encoder and the decoding; the same numbers, tested on the CPU) and ``static_eager`` (the same without graphs).
``--compile on`` runs the static variants with their one-prompt text encoder and decoding compiled by
``torch.compile`` where the device allows (CUDA with Triton; ``backend.segment.sam3_compile``; off by default, as
users run them: ``Sam3SegmentConfig.compile_mode``);
``--compile off,on`` runs each static variant both ways, the compiled cells named ``static+compile``. Each number
is the median of ``--repeats`` runs after one warm-up (``backend.bench_timing.time_stage``, CUDA synchronised
around every run), with the peak GPU memory of those runs:

- ``first_prompt``: a new photo and one new phrase: scaling the photo, the vision pass, the phrase, the chosen
  mask at the photo's size (``segment_concepts`` without model loading).
- ``first_prompt_cold_s``: the variant's very first prompt in the process, once: what the median leaves out
  (CUDA-graph captures and, compiled, torch.compile; ``compile`` gives the compile's share per part).
- ``vision``: the vision pass alone (``ConceptSegmenter.set_image``).
- ``further_prompt``: one more phrase, never seen before, against the kept features (text encoder included),
  post-processing to working-size instance masks included.
- ``repeated_prompt``: a phrase asked before on this model (the static path's text cache serves it).
- ``six_prompts``: six new phrases in one batch against the kept features; ``per_prompt_s`` = median / 6
  (batches are never compiled: each prompt count would be a compile of its own); ``further_in_batch_s`` =
  (six − ``further_prompt``) / 5, what each phrase after the first adds when phrases are asked together (how
  docs/performance.md counts a further prompt of the default segmenter).
- ``ops_further_prompt``: what one further prompt launches, counted once with ``torch.profiler``: ATen
  operators and scalar reads everywhere; on a GPU also CUDA kernels, graph launches and the host's waits.

Random weights make every query an instance (thresholds 0), so each phrase post-processes
``Sam3SegmentConfig.max_instances`` (20) masks: more than real weights usually keep, so the times are an upper
bound for that step. Outputs are checked for NaN (fp16 with random weights can overflow) and reported.
"""

from __future__ import annotations

import argparse
import gc
import itertools
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
from backend.segment.sam3_config import COMPILE_MODES, COMPILE_OFF, INDUCTOR_MODE, Sam3SegmentConfig  # noqa: E402
from backend.segment.sam3_segmenter import ConceptSegmenter, load_sam3_cached, segment_concepts  # noqa: E402

MAX_SIDE = 1024  # SegmentConfig's default working resolution
# name → (Sam3SegmentConfig.static_decoding, CUDA graphs): static_eager tells the graphs' share from the rest
VARIANTS = {"plain": (False, False), "static_eager": (True, False), "static": (True, True)}


def cell_name(variant: str, compiled: bool) -> str:
    return f"{variant}+compile" if compiled else variant


def bench_variant(name: str, models, dtype_name: str, mode: ModelMode, device: torch.device, repeats: int,
                  photo, work, compile_mode: str = COMPILE_OFF) -> dict:
    dtype = getattr(torch, dtype_name)
    half_dtype = dtype_name if dtype != torch.float32 else "bfloat16"
    static, graphs = VARIANTS[name]
    settings = Sam3SegmentConfig(half_dtype=half_dtype, static_decoding=static, compile_mode=compile_mode)
    half = dtype != torch.float32
    fresh = itertools.count()  # phrases never asked before: each run pays for its text encoder

    def new_phrase(base: str) -> str:
        return f"{base} {next(fresh)}"

    def first_prompt():
        return segment_concepts(photo, [new_phrase(BENCH_PROMPTS[0])], settings, mode, device, half, MAX_SIDE,
                                graphs=graphs)

    segmenter = ConceptSegmenter(models, settings, device, dtype, graphs)
    cold = time_stage("first_prompt_cold", first_prompt, device, repeats=1, warmup=0)
    stages = [time_stage("first_prompt", first_prompt, device, repeats),
              time_stage("vision", lambda: segmenter.set_image(work, photo.size), device, repeats)]
    segmenter.set_image(work, photo.size)
    stages += [
        time_stage("further_prompt", lambda: segmenter.segment([new_phrase(BENCH_PROMPTS[1])]), device, repeats),
        time_stage("repeated_prompt", lambda: segmenter.segment(BENCH_PROMPTS[2:3]), device, repeats),
    ]
    six = ConceptSegmenter(models, Sam3SegmentConfig(prompts_per_batch=6, half_dtype=half_dtype,
                                                     static_decoding=static, compile_mode=compile_mode),
                           device, dtype, graphs)
    six.set_image(work, photo.size)
    stages.append(time_stage("six_prompts", lambda: six.segment([new_phrase(p) for p in BENCH_PROMPTS[:6]]),
                             device, repeats))
    report: dict = {stage.name: stage.as_dict() for stage in stages}
    report["first_prompt_cold_s"] = round(cold.median_s, 3)
    report["six_prompts"]["per_prompt_s"] = round(stages[-1].median_s / 6, 5)
    # what each phrase after the first adds when phrases are asked together (`segment --prompt A --prompt B …`):
    # (six − one) / 5, as docs/performance.md counts "each further prompt" for the default segmenter
    report["six_prompts"]["further_in_batch_s"] = round(
        (stages[-1].median_s - report["further_prompt"]["median_s"]) / 5, 5)
    report["ops_further_prompt"] = count_ops(lambda: segmenter.segment([new_phrase(BENCH_PROMPTS[3])]), device)
    answer = segmenter.segment(BENCH_PROMPTS[:1])[0]
    report["finite_outputs"] = bool(answer.presence == answer.presence and all(i.score == i.score
                                                                               for i in answer.instances))
    report["instances_per_prompt"] = len(answer.instances)
    decoder = segmenter.static_decoder
    if decoder is not None:
        report["compile"] = {call.name: {"compile_s": round(call.compile_seconds, 2),
                                         "compiled_shapes": len(call.first_call_seconds), "failure": call.failure}
                             for call in decoder.compiled} or "not compiled (off, or not CUDA with Triton)"
    if static and graphs and device.type == "cuda":
        report["cuda_graphs"] = {part: {"captured": len(getattr(cache, "graphs", ())),
                                        "fell_back_to_eager": len(getattr(cache, "eager_signatures", ()))}
                                 for part, cache in (("vision", decoder._vision), ("text", decoder._text),
                                                     ("decode", decoder._decode))}
    return report


def count_ops(work, device: torch.device) -> dict:
    """CUDA kernels (on a GPU) or ATen operators (on the CPU) that one call of ``work`` launches."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        work()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    events = prof.events()
    counts = {"aten_ops": sum(1 for e in events if e.name.startswith("aten::")),
              "scalar_reads": sum(1 for e in events if e.name == "aten::_local_scalar_dense")}  # .item() & co
    if device.type == "cuda":
        counts["cuda_kernels"] = sum(1 for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
        counts["graph_launches"] = sum(1 for e in events if e.name == "cudaGraphLaunch")
        # the host waiting for the GPU (reads of device values, copies to pageable memory); the count
        # includes the one synchronize after the call
        counts["stream_syncs"] = sum(1 for e in events if e.name in ("cudaStreamSynchronize", "cudaDeviceSynchronize"))
    return counts


def bench_dtype(dtype_name: str, mode: ModelMode, device: torch.device, repeats: int, variants: list[str],
                compile_modes: list[str]) -> dict:
    dtype = getattr(torch, dtype_name)
    photo = load_image(Path(__import__("skimage").__file__).parent / "data" / "coffee.png")
    work = resize_rgb(photo.rgb, *fit_within(*photo.size, MAX_SIDE))
    started = time.perf_counter()
    settings = Sam3SegmentConfig(half_dtype=dtype_name if dtype != torch.float32 else "bfloat16")
    models = load_sam3_cached(mode, settings, device, dtype)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    report: dict = {"load_s": round(time.perf_counter() - started, 3),
                    "parameters_m": round(sum(p.numel() for p in models.model.parameters()) / 1e6, 1)}
    for name in variants:
        for compile_mode in compile_modes if VARIANTS[name][0] else [COMPILE_OFF]:  # plain: nothing to compile
            cell = cell_name(name, compile_mode != COMPILE_OFF)
            try:
                report[cell] = bench_variant(name, models, dtype_name, mode, device, repeats, photo, work,
                                             compile_mode)
            except Exception as exc:  # noqa: BLE001 - one variant failing must not lose the other's numbers
                traceback.print_exc()
                report[cell] = {"error": f"{type(exc).__name__}: {exc}"}
    return report


def summary(dtype_name: str, row: dict) -> str:
    lines = []
    for variant in [cell_name(v, c) for v in VARIANTS for c in (False, True)]:
        cell = row.get(variant)
        if cell is None:
            continue
        if "error" in cell:
            lines.append(f"{dtype_name} {variant}: {cell['error']}")
            continue
        ms = {k: cell[k]["median_s"] * 1e3 for k in ("first_prompt", "vision", "further_prompt", "repeated_prompt")}
        lines.append(f"{dtype_name} {variant}: first prompt {ms['first_prompt']:.1f} ms, vision {ms['vision']:.1f} ms, "
                     f"further prompt {ms['further_prompt']:.1f} ms, repeated prompt {ms['repeated_prompt']:.1f} ms, "
                     f"6 prompts {cell['six_prompts']['per_prompt_s'] * 1e3:.1f} ms each "
                     f"({cell['six_prompts']['further_in_batch_s'] * 1e3:.1f} ms each after the first), peak "
                     f"{cell['first_prompt']['peak_gpu_memory_mb']:.0f} MB, ops {cell['ops_further_prompt']}, cold first "
                     f"prompt {cell['first_prompt_cold_s']:.2f} s, compile {cell.get('compile')}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", choices=["tiny", "full-random"], default="full-random")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--dtypes", default="bfloat16,float16",
                        help="comma-separated: float32, float16, bfloat16 (the CPU always runs float32)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated: {', '.join(VARIANTS)}")
    parser.add_argument("--compile", default="off",
                        help="comma-separated on, off: the static variants with torch.compile (where CUDA and Triton "
                             "allow), without (the default, as users run them), or both (off,on)")
    parser.add_argument("--compile-mode", default=INDUCTOR_MODE,
                        choices=[m for m in COMPILE_MODES if m != COMPILE_OFF], help="inductor's mode with --compile on")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", default=None, help="JSON report")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    mode = ModelMode(args.models)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or args.repeats < 1:
        print(f"error: unknown variant(s) {unknown} (choose {', '.join(VARIANTS)}) or --repeats < 1", file=sys.stderr)
        return 2
    switches = [c.strip() for c in args.compile.split(",") if c.strip()]
    if not switches or any(c not in ("on", "off") for c in switches):
        print(f"error: --compile {args.compile!r}: choose on, off or both (off,on)", file=sys.stderr)
        return 2
    compile_modes = [args.compile_mode if c == "on" else COMPILE_OFF for c in dict.fromkeys(switches)]
    dtypes = ["float32"] if device.type == "cpu" else [d.strip() for d in args.dtypes.split(",") if d.strip()]
    report = {"models": mode.value, "device": str(device), "torch": torch.__version__,
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
              "targets": {"first_prompt_s": 0.040, "further_prompt_s": 0.005}, "repeats": args.repeats,
              "variants": {name: dict(zip(("static_decoding", "cuda_graphs"), VARIANTS[name], strict=True))
                           for name in variants},
              "compile_modes": compile_modes, "dtypes": {}}
    for name in dtypes:
        try:
            report["dtypes"][name] = bench_dtype(name, mode, device, args.repeats, variants, compile_modes)
        except Exception as exc:  # noqa: BLE001 - one dtype failing must not lose the others' numbers
            traceback.print_exc()
            report["dtypes"][name] = {"error": f"{type(exc).__name__}: {exc}"}
        clear_loaded_models()
        torch._dynamo.reset()  # compiled code of this dtype's model: each dtype starts with dynamo's cache empty
        gc.collect()  # the static decoder and its graphs hang off the model (a cycle): free them before the next
        if device.type == "cuda":
            torch.cuda.empty_cache()
        print(summary(name, report["dtypes"][name]))
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=2))

    def failed(row: dict) -> bool:
        return "error" in row or any(isinstance(cell, dict) and "error" in cell for cell in row.values())

    return 0 if not any(failed(row) for row in report["dtypes"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
