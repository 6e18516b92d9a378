#!/usr/bin/env bash
# Run on the GPU machine (python3 there already has torch): installs the carried wheels (.whl/, made with
# `pip download` for Python 3.12 as docs/performance.md says), JIT-builds gsplat once, then runs the steps
# named as arguments: tests | bench | batchrate | generate | recon-fit | 'run:COMMAND'. Results go to $OUT (or ./gpu_out).
# recon-fit: `eval-recon --phase fit` on out/recon-full (rendered here first, carried; docs/eval_recon.md), each
# object's fit files packed as $OUT/fit-<object>.tar.gz (few files come back from the machine) to unpack into that folder.
set -uo pipefail
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16
export TORCH_EXTENSIONS_DIR=/tmp/torch_ext XDG_CACHE_HOME=/tmp/cache
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
python3 -c "import torch, transformers, diffusers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'diffusers', diffusers.__version__)" | tee -a "$OUT/device.txt"
start=$(date +%s)
python3 - <<'PY' 2>&1 | tail -3
import torch, gsplat
from gsplat.rendering import rasterization
m = torch.zeros(1, 3, device="cuda"); m[:, 2] = 3
q = torch.tensor([[1.0, 0, 0, 0]], device="cuda"); s = torch.full((1, 3), 0.1, device="cuda")
o = torch.ones(1, device="cuda"); c = torch.ones(1, 3, device="cuda")
K = torch.tensor([[[50.0, 0, 32], [0, 50, 32], [0, 0, 1]]], device="cuda")
img, alpha, _ = rasterization(m, q, s, o, c, torch.eye(4, device="cuda")[None], K, 64, 64)
print("gsplat ok", float(alpha.max()))
PY
echo "gsplat build+first call: $(( $(date +%s) - start )) s" | tee -a "$OUT/device.txt"
for step in "$@"; do
  case "$step" in
    run:*) eval "${step#run:}" ;;  # any command, with the environment above
    tests) python3 -m pytest -p no:cacheprovider -m gpu -s -q -rA tests/test_render.py tests/test_stage1.py \
             tests/test_zero123_gpu.py tests/test_mesh_gpu.py tests/test_segment_gpu.py tests/test_cuda_graph.py 2>&1 | tee "$OUT/gpu_tests.log" ;;
    batchrate)  # rows per minute of the local batch runner: full-random models, draft preset, 6 rows
      photo=$(python3 -c 'import skimage,os;print(os.path.join(os.path.dirname(skimage.__file__),"data","coffee.png"))')
      { echo "image,prompt,preset,seed"; for i in 0 1 2 3 4 5; do echo "$photo,a coffee cup,draft,$i"; done; } > /tmp/rows.csv
      t0=$(date +%s.%N); python3 -m backend batch --csv /tmp/rows.csv --out /tmp/batch_out --models full-random 2>&1 | tail -8
      t1=$(date +%s.%N); python3 -c "d=$t1-$t0; print(f'6 rows in {d:.1f} s (incl. model load): {6*60/d:.1f} rows/min')" | tee "$OUT/batch_rate.txt"
      cp /tmp/batch_out/summary.csv "$OUT/batch_summary.csv" ;;
    recon-fit) python3 -m backend eval-recon --phase fit --device cuda --out out/recon-full 2>&1 | tee "$OUT/recon_fit.log"
      for dir in out/recon-full/*/; do name=$(basename "$dir")
        tar -czf "$OUT/fit-$name.tar.gz" -C out/recon-full "$name/model.glb" "$name/model_surface.npz" "$name/fit.json" \
          $(cd out/recon-full && ls "$name/gaussian_views.npz" "$name/gaussians.safetensors" 2>/dev/null); done ;;
    bench) python3 -m backend bench --models full-random --out "$OUT/bench.json" 2>&1 | tee "$OUT/bench.log" ;;
    generate) python3 -m backend generate "$(python3 -c 'import skimage,os;print(os.path.join(os.path.dirname(skimage.__file__),"data","coffee.png"))')" \
             --prompt "a coffee cup" --models full-random --preset standard --out "$OUT/generate" -q 2>&1 | tee "$OUT/generate.log"
             cp "$OUT/generate/job.json" "$OUT/generate_job.json" 2>/dev/null; rm -rf "$OUT/generate" ;;
  esac
done
