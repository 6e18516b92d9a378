"""The VAE encoder's forward + backward at a stage-1 batch, A/B: layout, CUDA graphs, cuDNN autotuning, dtype,
torch.compile (full-random Zero123 on a CUDA machine; issue 23: the encoder was ~24 of a 42 ms GPU step at 8 rows).

    python3 scripts/profile_vae_encoder.py [--batch 8] [--out vae.json]

Each variant: the mean of 30 calls of ``encode(images).sum().backward()`` after 5 warm-ups (compile time apart),
and the whole SDS step (``Zero123Guidance.sds_loss`` forward + backward) for the eager/graphed variants.
"""

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from profile_sds import timeit  # noqa: E402  (this folder: the mean of 30 calls after 5 warm-ups, ms)

from backend.guidance import GuidanceConfig, Zero123Guidance  # noqa: E402
from backend.models.mode import ModelMode  # noqa: E402
from backend.models.zero123 import load_zero123  # noqa: E402


def mean_ms(fn) -> float:
    return round(timeit(fn), 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    dev = torch.device("cuda")
    results: dict[str, object] = {}
    for dtype in (torch.float16, torch.bfloat16):
        models = load_zero123(ModelMode.FULL_RANDOM, dev, dtype=dtype)
        image = torch.rand(args.batch, 3, 256, 256, device=dev, requires_grad=True)
        z = torch.zeros(1, device=dev)
        for benchmark in (False, True):
            torch.backends.cudnn.benchmark = benchmark
            for layout in ("nchw", "channels_last"):
                models.vae.to(memory_format=torch.channels_last if layout == "channels_last"
                              else torch.contiguous_format)
                for graphs in (False, True):
                    name = f"{str(dtype)[6:]} cudnn.benchmark={benchmark} vae {layout} graphs={graphs}"
                    try:
                        guidance = Zero123Guidance(models, replace(GuidanceConfig(), cuda_graphs=graphs))
                        guidance.set_reference(torch.rand(1, 3, 256, 256, device=dev))

                        def encode(guidance=guidance, image=image):
                            image.grad = None
                            guidance._encode(image).sum().backward()

                        def step(guidance=guidance, image=image, z=z):
                            image.grad = None
                            guidance.sds_loss(image, z + 10, z + 30, z, 0.5).backward()

                        results[name] = {"encode_fwd_bwd_ms": mean_ms(encode), "sds_step_ms": mean_ms(step)}
                    except Exception as exc:  # one shot on the GPU: report and go on
                        results[name] = f"failed: {type(exc).__name__}: {str(exc)[:300]}"
                    print(name, results[name], flush=True)
        models.vae.to(memory_format=torch.contiguous_format)
        for layout in ("nchw", "channels_last"):
            torch.backends.cudnn.benchmark = True
            fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            models.vae.to(memory_format=fmt)
            name = f"{str(dtype)[6:]} torch.compile vae {layout}"
            try:
                vae = models.vae
                compiled = torch.compile(lambda x, vae=vae: vae.encode(x).latent_dist.mean)
                source = (image.to(dtype) * 2 - 1).contiguous(memory_format=fmt)

                def encode_compiled(compiled=compiled, source=source):
                    x = source.detach().requires_grad_(True)
                    compiled(x).float().sum().backward()

                start = time.perf_counter()
                encode_compiled()
                torch.cuda.synchronize()
                results[name] = {"compile_s": round(time.perf_counter() - start, 1),
                                 "encode_fwd_bwd_ms": mean_ms(encode_compiled)}
            except Exception as exc:  # noqa: BLE001
                results[name] = f"failed: {type(exc).__name__}: {str(exc)[:300]}"
            print(name, results[name], flush=True)
        models.vae.to(memory_format=torch.contiguous_format)
        del models
        torch.cuda.empty_cache()
    if args.out:
        Path(args.out).write_text(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                                              "batch": args.batch, "variants": results}, indent=2))


if __name__ == "__main__":
    main()
