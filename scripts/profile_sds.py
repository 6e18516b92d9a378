"""Where one SDS step's time goes on the GPU: eager vs CUDA-graphed UNet and VAE encoder (full-random Zero123).

    python3 scripts/profile_sds.py     (on a CUDA machine)
"""

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.cuda_graph import CudaGraph  # noqa: E402
from backend.guidance import GuidanceConfig, Zero123Guidance  # noqa: E402
from backend.models.mode import ModelMode  # noqa: E402
from backend.models.zero123 import load_zero123  # noqa: E402


def timeit(fn, n=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / n * 1000


def main():
    dev = torch.device("cuda")
    models = load_zero123(ModelMode.FULL_RANDOM, dev, dtype=torch.float16)
    guidance = Zero123Guidance(models, GuidanceConfig())
    guidance.set_reference(torch.rand(1, 3, 256, 256, device=dev))
    image = torch.rand(1, 3, 256, 256, device=dev, requires_grad=True)
    z = torch.zeros(1, device=dev)
    print(f"sds step eager: {timeit(lambda: guidance.sds_loss(image, z + 10, z + 30, z, 0.5).backward()):.2f} ms")

    unet, vae = models.unet, models.vae
    x = torch.randn(2, 8, 32, 32, device=dev, dtype=torch.float16).contiguous(memory_format=torch.channels_last)
    ts = torch.full((2,), 500, device=dev, dtype=torch.long)
    ctx = torch.randn(2, 1, 768, device=dev, dtype=torch.float16)
    with torch.no_grad():
        print(f"unet eager (batch 2): {timeit(lambda: unet(x, ts, encoder_hidden_states=ctx).sample):.2f} ms")

    def encode_backward():
        v = (image.half() * 2 - 1).contiguous(memory_format=torch.channels_last)
        vae.encode(v).latent_dist.mean.float().sum().backward()

    print(f"vae encode fwd+bwd eager: {timeit(encode_backward):.2f} ms")

    graph = CudaGraph(lambda s, t, c: unet(s, t, encoder_hidden_states=c).sample, (x, ts, ctx), warmup_runs=3)
    print(f"unet CUDA graph (batch 2): {timeit(graph.graph.replay):.2f} ms")

    encoder = lambda v: vae.encode(v).latent_dist.mean  # noqa: E731
    sample = torch.randn(1, 3, 256, 256, device=dev, dtype=torch.float16, requires_grad=True)
    sample = sample.contiguous(memory_format=torch.channels_last).detach().requires_grad_(True)
    graphed = torch.cuda.make_graphed_callables(encoder, (sample,))

    def graphed_backward():
        v = (image.half() * 2 - 1).contiguous(memory_format=torch.channels_last)
        graphed(v).float().sum().backward()

    print(f"vae encode fwd+bwd CUDA graph: {timeit(graphed_backward):.2f} ms")

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            guidance.sds_loss(image, z + 10, z + 30, z, 0.5).backward()
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12))


if __name__ == "__main__":
    main()
