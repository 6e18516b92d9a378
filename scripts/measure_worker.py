"""Worker process vs in-process vs CLI: the same photo → GLB job, timed on this machine.

    python scripts/measure_worker.py --image photo.png --prompt "a mug" [--preset draft] [--models real]
                                     [--device cuda] [--out measure-worker.json]
    python scripts/measure_worker.py --models tiny --device cpu --preset smoke      # quick check, any machine

Reports, in seconds:
- worker cold start: process start → hello (Python + torch imported);
- worker job 1 / job 2: request → done, the first job (pipeline imported, models loaded) and the next (warm);
- in-process job 1 / job 2: ``backend.generate.generate`` called twice in one fresh Python (the old add-on path);
- CLI: ``python -m backend generate`` as a whole process (what a user of the CLI waits for), run first (its time
  reported apart as ``cli_first_run_s``: a fresh machine's first process reads the CUDA libraries from disk) and
  again in turns with the worker (``--rounds``; ``cli_whole_s`` is their median, the one the worker is compared with).
The worker should match in-process job for job (same code, same process type) and its cold start + job 1
should be within a few % of the CLI's wall time. Without --image the script uses scikit-image's coffee photo.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

IN_PROCESS_SCRIPT = """
import json, sys, time
sys.path.insert(0, {root!r})
from backend.api import GenerateRequest, generate
times = []
for index in range(2):
    started = time.perf_counter()
    generate(GenerateRequest(image_path={image!r}, prompt={prompt!r}, out_dir={out!r} + f"/inproc-{{index}}",
                             preset={preset!r}, models={models!r}, device={device!r}, force=True))
    times.append(time.perf_counter() - started)
print("TIMES", json.dumps(times))
"""


def default_photo(folder: Path) -> str:
    import skimage
    from PIL import Image

    path = folder / "coffee.png"
    with Image.open(Path(skimage.__file__).parent / "data" / "coffee.png") as image:
        image.convert("RGB").resize((160, 120)).save(path)
    return str(path)


def time_worker(args, out: Path) -> dict[str, float]:
    from backend.api import GenerateRequest
    from backend.worker.client import WorkerProcess
    from backend.worker.messages import Done, ErrorEvent, GenerateJob, request_fields

    started = time.perf_counter()
    # the worker gets this process's extra import paths too, so it sees exactly the packages the CLI run sees
    inherited = [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep) if path]
    worker = WorkerProcess(sys.executable, extra_paths=inherited, args=["--models", args.models] if args.models else [])
    worker.wait_for_hello()
    result = {"worker_cold_start_s": time.perf_counter() - started}
    for index in range(2):
        begun = time.perf_counter()
        request = GenerateRequest(args.image, args.prompt, str(out / f"worker-{index}"), preset=args.preset,
                                  models=args.models, device=args.device, force=True)
        worker.send(GenerateJob(f"job-{index}", request_fields(request)))
        while True:
            event = worker.events.get(timeout=3600)
            if isinstance(event, (Done, ErrorEvent)) and event.id == f"job-{index}":
                break
        if isinstance(event, ErrorEvent):
            raise SystemExit(f"worker job failed: {event.message}")
        result[f"worker_job{index + 1}_s"] = time.perf_counter() - begun
    worker.stop()
    result["worker_cold_start_plus_job1_s"] = result["worker_cold_start_s"] + result["worker_job1_s"]
    return result


def time_in_process(args, out: Path) -> dict[str, float]:
    script = IN_PROCESS_SCRIPT.format(root=str(REPO_ROOT), image=args.image, prompt=args.prompt, out=str(out),
                                      preset=args.preset, models=args.models, device=args.device)
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT)
    total = time.perf_counter() - started
    line = next((x for x in run.stdout.splitlines() if x.startswith("TIMES")), None)
    if run.returncode or line is None:
        raise SystemExit(f"in-process run failed: {run.stderr[-800:]}")
    first, second = json.loads(line.split(" ", 1)[1])
    return {"in_process_job1_s": first, "in_process_job2_s": second, "in_process_whole_s": total}


def time_cli(args, out: Path) -> dict[str, float]:
    command = [sys.executable, "-m", "backend", "generate", args.image, "--prompt", args.prompt, "--out",
               str(out / "cli"), "--preset", args.preset, "--device", args.device, "--force", "-q"]
    if args.models:
        command += ["--models", args.models]
    started = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
    if run.returncode:
        raise SystemExit(f"CLI failed ({run.returncode}): {run.stderr[-800:]}")
    return {"cli_whole_s": time.perf_counter() - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default=None)
    parser.add_argument("--prompt", default="a coffee cup")
    parser.add_argument("--preset", default="draft", choices=["smoke", "draft", "standard", "high"])
    parser.add_argument("--models", default=None, choices=["real", "tiny", "full-random"])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--rounds", type=int, default=2, help="CLI and worker runs, taking turns; default 2")
    parser.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="measure_worker_") as scratch:
        scratch = Path(scratch)
        args.image = args.image or default_photo(scratch)
        # The first process of a fresh machine pays for reading the CUDA libraries from disk (cold page cache),
        # and a fresh process's first job varies by seconds with what else the CPUs do: the CLI and the worker
        # take turns, ``--rounds`` times each, after one CLI run reported apart; the medians are compared.
        first_cli = time_cli(args, scratch)["cli_whole_s"]
        rounds = [(time_cli(args, scratch), time_worker(args, scratch)) for _ in range(args.rounds)]
        numbers = {"cli_first_run_s": first_cli,
                   "cli_runs_s": [cli["cli_whole_s"] for cli, _ in rounds],
                   "worker_cold_start_plus_job1_runs_s": [w["worker_cold_start_plus_job1_s"] for _, w in rounds],
                   **{key: statistics.median(w[key] for _, w in rounds) for key in rounds[0][1]},
                   "cli_whole_s": statistics.median(cli["cli_whole_s"] for cli, _ in rounds),
                   **time_in_process(args, scratch)}
    numbers["worker_vs_cli"] = numbers["worker_cold_start_plus_job1_s"] / numbers["cli_whole_s"] - 1.0
    numbers["warm_worker_vs_in_process"] = numbers["worker_job2_s"] / numbers["in_process_job2_s"] - 1.0
    for key, value in numbers.items():
        if isinstance(value, list):
            print(f"{key:34} {', '.join(f'{v:.2f}' for v in value)}")
        else:
            print(f"{key:34} {value:+.1%}" if key.endswith(("_cli", "_process")) else f"{key:34} {value:8.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), **numbers}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
