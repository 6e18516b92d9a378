"""Where one further SAM 3 prompt spends its time: GPU time per part of the decoding, and the top kernels.

    python scripts/profile_sam3.py --models full-random --device cuda --dtype bfloat16 --out profile_sam3.json
    python scripts/profile_sam3.py --models tiny --device cpu --repeats 1        # smoke run
    python scripts/profile_sam3.py --models full-random --device cuda --compile on    # with torch.compile

Runs the static path without CUDA graphs (``static_eager``: the same kernels the graph replays, launched one by
one, so they can be timed) on scikit-image's coffee.png, after the photo's vision pass. Each named part (every
DETR encoder and decoder layer, the scoring head, the mask head's parts, the text encoder) gets a CUDA event
before and after it; the report gives each part's median GPU milliseconds over ``--repeats`` prompts, and the
``--top`` kernels by total GPU time from one ``torch.profiler`` run. On the CPU the events are wall clocks.

``--compile on`` compiles the one-prompt text encoder and decoding with ``torch.compile`` where CUDA and Triton
allow (``backend.segment.sam3_compile``; compiled before anything is timed; off by default, as users run it). Compiled, the parts are fused across module boundaries, so no part events are placed: the report gives
the wall time and the kernel table (Triton kernels by their fused names), and ``--host`` the host's share.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.device import resolve_device  # noqa: E402
from backend.images import fit_within, load_image, resize_rgb  # noqa: E402
from backend.models.mode import ModelMode  # noqa: E402
from backend.segment import sam3_static  # noqa: E402
from backend.segment.sam3_config import COMPILE_MODES, COMPILE_OFF, INDUCTOR_MODE, Sam3SegmentConfig  # noqa: E402
from backend.segment.sam3_segmenter import ConceptSegmenter, load_sam3_cached  # noqa: E402

MAX_SIDE = 1024


class PartClock:
    """Start/end marks around modules' forward calls: CUDA events on a GPU, perf_counter on the CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.marks: list[tuple[str, object, object]] = []
        self.open: dict[int, object] = {}

    def _mark(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def watch(self, name: str, module: torch.nn.Module) -> None:
        def before(mod, args):
            self.open[id(mod)] = self._mark()

        def after(mod, args, out):
            self.marks.append((name, self.open.pop(id(mod)), self._mark()))

        module.register_forward_pre_hook(before)
        module.register_forward_hook(after)

    def watch_function(self, name: str, owner, attribute: str) -> None:
        """Time a module-level function that callers look up at call time (``owner.attribute``)."""
        inner = getattr(owner, attribute)

        def timed(*args, **kwargs):
            start = self._mark()
            out = inner(*args, **kwargs)
            self.marks.append((name, start, self._mark()))
            return out

        setattr(owner, attribute, timed)

    def collect(self) -> dict[str, float]:
        if self.cuda:
            torch.cuda.synchronize()
        totals: dict[str, float] = {}
        for name, start, end in self.marks:
            ms = start.elapsed_time(end) if self.cuda else (end - start) * 1e3
            totals[name] = totals.get(name, 0.0) + ms
        self.marks.clear()
        return totals


def watch_parts(model: torch.nn.Module, clock: PartClock) -> None:
    for i, layer in enumerate(model.detr_encoder.layers):
        clock.watch(f"detr_encoder.layer{i}", layer)
    decoder = model.detr_decoder
    for i, layer in enumerate(decoder.layers):
        clock.watch(f"detr_decoder.layer{i}", layer)
    for name in ("ref_point_head", "box_rpb_embed_x", "box_rpb_embed_y", "box_head", "presence_head"):
        if hasattr(decoder, name):
            clock.watch(f"detr_decoder.{name}", getattr(decoder, name))
    clock.watch("dot_product_scoring", model.dot_product_scoring)
    head = model.mask_decoder
    for name in ("prompt_cross_attn", "mask_embedder", "instance_projection", "semantic_projection"):
        clock.watch(f"mask_decoder.{name}", getattr(head, name))
    # the static path runs the pixel decoder's convs and norms itself (sam3_static._pixel_embeddings), so its
    # forward is never called: time the function, and its group norms apart
    clock.watch_function("mask_decoder.pixel_decoder", sam3_static, "_pixel_embeddings")
    clock.watch_function("mask_decoder.pixel_decoder.group_norms", sam3_static, "group_norm")
    clock.watch("text_encoder", model.text_encoder)
    clock.watch("text_projection", model.text_projection)


def host_profile(segmenter: ConceptSegmenter, work, photo_size, device: torch.device, repeats: int, top: int,
                 out: str | None) -> int:
    """Where the wall time of a further prompt goes on the graphed path: cProfile of ``repeats`` new phrases and
    ``repeats`` cached ones (the GPU's share shows up as time in the calls that wait for it: copies to the host)."""
    import cProfile
    import io
    import pstats

    segmenter.set_image(work, photo_size)
    fresh = itertools.count()
    for _ in range(3):  # graphs captured, caches warm
        segmenter.segment([f"a coffee cup {next(fresh)}"])
    segmenter.segment(["a coffee cup"])
    report = io.StringIO()
    for name, phrase in (("new phrase", lambda: f"a coffee cup {next(fresh)}"), ("cached phrase", lambda: "a coffee cup")):
        walls = []
        profiler = cProfile.Profile()
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            profiler.enable()
            segmenter.segment([phrase()])
            profiler.disable()
            walls.append((time.perf_counter() - started) * 1e3)
        report.write(f"== {name}: wall median {statistics.median(walls):.2f} ms over {repeats}\n")
        for key in ("tottime", "cumulative"):
            stats = pstats.Stats(profiler, stream=report)
            stats.sort_stats(key).print_stats(top)
    print(report.getvalue())
    if out:
        Path(out).write_text(report.getvalue())
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", choices=["tiny", "full-random"], default="full-random")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--compile", choices=["on", "off"], default="off",
                        help="torch.compile of the one-prompt text encoder and decoding (on: where CUDA and Triton "
                             "allow; off, the default, as users run it)")
    parser.add_argument("--compile-mode", default=INDUCTOR_MODE,
                        choices=[m for m in COMPILE_MODES if m != COMPILE_OFF], help="inductor's mode with --compile on")
    parser.add_argument("--out", default=None)
    parser.add_argument("--host", action="store_true",
                        help="instead: the graphed static path (as users run it) under cProfile, new and cached "
                             "phrases, to see the host's share; writes --out as text")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    dtype = getattr(torch, args.dtype) if device.type == "cuda" else torch.float32
    settings = Sam3SegmentConfig(half_dtype=args.dtype if dtype != torch.float32 else "bfloat16",
                                 static_decoding=True,
                                 compile_mode=args.compile_mode if args.compile == "on" else COMPILE_OFF)
    models = load_sam3_cached(ModelMode(args.models), settings, device, dtype)
    photo = load_image(Path(__import__("skimage").__file__).parent / "data" / "coffee.png")
    work = resize_rgb(photo.rgb, *fit_within(*photo.size, MAX_SIDE))
    if args.host:
        return host_profile(ConceptSegmenter(models, settings, device, dtype, True), work, photo.size, device,
                            args.repeats, args.top, args.out)
    segmenter = ConceptSegmenter(models, settings, device, dtype, False)
    segmenter.set_image(work, photo.size)
    fresh = itertools.count()
    for _ in range(2):  # warm-up: cuDNN / cuBLAS choose their kernels, torch.compile compiles
        segmenter.segment([f"a coffee cup {next(fresh)}"])
    compiled = segmenter.static_decoder.compiled

    clock = PartClock(device)
    if not compiled:  # compiled code has no module boundaries to time (and hooks would break its graph)
        watch_parts(models.model, clock)
    per_part: dict[str, list[float]] = {}
    walls = []
    for _ in range(args.repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        segmenter.segment([f"a coffee cup {next(fresh)}"])
        if device.type == "cuda":
            torch.cuda.synchronize()
        walls.append((time.perf_counter() - started) * 1e3)
        for name, ms in clock.collect().items():
            per_part.setdefault(name, []).append(ms)
    parts = {name: round(statistics.median(values), 3) for name, values in per_part.items()}

    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=True) as prof:
        segmenter.segment([f"a coffee cup {next(fresh)}"])
        if device.type == "cuda":
            torch.cuda.synchronize()
    sort_key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    table = prof.key_averages(group_by_input_shape=device.type != "cuda").table(sort_by=sort_key,
                                                                                   row_limit=args.top)
    kernels = []
    if device.type == "cuda":
        for event in prof.key_averages():
            gpu_us = getattr(event, "device_time_total", None) or getattr(event, "cuda_time_total", 0)
            if event.device_type == torch.autograd.DeviceType.CUDA:
                kernels.append({"name": event.key[:160], "count": event.count, "total_ms": round(gpu_us / 1e3, 3)})
        kernels.sort(key=lambda k: -k["total_ms"])
    report = {"models": args.models, "device": str(device), "dtype": str(dtype).removeprefix("torch."),
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "compile": {call.name: {"compile_s": round(call.compile_seconds, 2), "failure": call.failure}
                          for call in compiled} or "not compiled (off, or not CUDA with Triton)",
              "wall_ms_median": round(statistics.median(walls), 3),
              "parts_ms_median": dict(sorted(parts.items(), key=lambda kv: -kv[1])),
              "parts_ms_sum": round(sum(parts.values()), 3),
              "top_kernels": kernels[:args.top]}
    print(json.dumps({k: v for k, v in report.items() if k != "top_kernels"}, indent=1))
    print(table)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
        Path(args.out).with_suffix(".txt").write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
