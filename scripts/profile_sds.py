"""Where one SDS step's time goes on the GPU: the VAE's memory layout and CUDA graphs, A/B (full-random Zero123).

    python3 scripts/profile_sds.py [--out sds.json]     (on a CUDA machine)

Each variant is timed as the mean of 30 SDS steps (forward + backward to the image) after 5 warm-up steps.
"""

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.guidance import GuidanceConfig, Zero123Guidance  # noqa: E402
from backend.models.mode import ModelMode  # noqa: E402
from backend.models.zero123 import load_zero123  # noqa: E402


def timeit(fn, n=30, warmup=5):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / n * 1000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    dev = torch.device("cuda")
    models = load_zero123(ModelMode.FULL_RANDOM, dev, dtype=torch.float16)
    image = torch.rand(1, 3, 256, 256, device=dev, requires_grad=True)
    z = torch.zeros(1, device=dev)
    results = {}
    for layout in ("nchw", "channels_last"):
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        models.vae.to(memory_format=fmt)
        for graphs in (False, True):
            name = f"vae {layout}, cuda graphs {'on' if graphs else 'off (UNet eager too)'}"
            try:
                guidance = Zero123Guidance(models, replace(GuidanceConfig(), cuda_graphs=graphs))
                guidance.set_reference(torch.rand(1, 3, 256, 256, device=dev))

                def step(guidance=guidance):
                    image.grad = None
                    guidance.sds_loss(image, z + 10, z + 30, z, 0.5).backward()

                results[name] = round(timeit(step), 2)
                encode = lambda guidance=guidance: guidance._encode(image).sum().backward()  # noqa: E731
                results[name + ": VAE encode fwd+bwd"] = round(timeit(encode), 2)
            except Exception as exc:  # one shot on the GPU: report and go on
                results[name] = f"failed: {type(exc).__name__}: {exc}"
            print(f"{name}: {results[name]}", flush=True)
    models.vae.to(memory_format=torch.contiguous_format)
    for key, value in results.items():
        print(f"{key:60s} {value}")
    if args.out:
        Path(args.out).write_text(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                                              "ms_per_sds_step": results}, indent=2))

    from torch.profiler import ProfilerActivity, profile

    guidance = Zero123Guidance(models, GuidanceConfig())
    guidance.set_reference(torch.rand(1, 3, 256, 256, device=dev))
    for _ in range(3):
        guidance.sds_loss(image, z + 10, z + 30, z, 0.5).backward()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            guidance.sds_loss(image, z + 10, z + 30, z, 0.5).backward()
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=15))


if __name__ == "__main__":
    main()
