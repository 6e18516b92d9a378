"""Batch throughput: rows per minute and first-row time of ``python -m backend batch`` under several settings.

Rows are four scikit-image photos (coffee, chelsea, astronaut, rocket; public domain) times as many seeds as
``--rows`` needs. A setting is ``GxWxR``: G GPUs, W worker processes per GPU (Ray, ``--workers-per-gpu``), R rows
per process fitted together (``--rows-per-process``); ``2xbest`` is 2 GPUs with the W and R of the fastest
one-GPU setting measured before it. W = 1 on one GPU runs the plain local runner (no Ray). Each setting runs
``--runs`` times, every run a fresh process with an empty job cache (so nothing is reused between runs); the
medians are reported. Results are written after every run, so a run cut short still leaves what it measured.

On an H200 host (full-random models; the lead picks rows and settings to fit the GPU budget):

    python scripts/bench_batch.py --rows 48 --settings 1x1x1,1x1x4 --runs 2 --out bench_batch.json

On the CPU, to know it works (the test does this):

    IMAGE_TO_3D_MODELS=tiny python scripts/bench_batch.py --models tiny --device cpu --preset smoke --rows 4 \
        --settings 1x1x1,1x1x2 --runs 1 --out /tmp/bench_batch.json
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PHOTOS = (("coffee.png", "a coffee cup"), ("chelsea.png", "a cat"), ("astronaut.png", "an astronaut"),
          ("rocket.jpg", "a rocket"))
DEFAULT_SETTINGS = "1x1x1,1x2x1,1x4x1,1x1x2,1x1x4,1x1x8,2xbest"
BATCH_RAN = (0, 1, 6)  # batch's exit codes when every row ran (1, or 6 on newer main: some rows failed)
ROW_DONE = re.compile(r"^row (\d+) (done|failed|skipped) ")


@dataclass(frozen=True)
class Setting:
    gpus: int
    workers_per_gpu: int
    rows_per_process: int

    @property
    def name(self) -> str:
        return f"{self.gpus}x{self.workers_per_gpu}x{self.rows_per_process}"

    @property
    def processes(self) -> int:
        return self.gpus * self.workers_per_gpu

    @property
    def uses_ray(self) -> bool:
        return self.gpus > 1 or self.workers_per_gpu > 1


@dataclass(frozen=True)
class RunResult:
    setting: str
    run: int
    rows: int
    failed_rows: int
    seconds: float  # process start to exit: model loading, Ray's start and every row
    first_row_s: float  # process start to the first row finished
    rows_per_min: float
    steady_rows_per_min: float  # rows after the first group of R, from its end to the last row's end
    exit_code: int
    row_end_s: tuple[float, ...] = ()  # when each row finished, seconds from the process's start
    mid_run_rows_per_min: float = 0.0  # between the first and the last wave of groups (see mid_run_rows_per_min)
    groups: tuple[dict, ...] = ()  # every group of rows a process ran (group_records): its worker, end, stage seconds
    group_medians: dict = field(default_factory=dict)  # over the groups after each worker's first (group_medians)


def parse_setting(text: str, best: Setting | None) -> Setting:
    """``GxWxR`` or ``Gxbest`` (``best``: the fastest one-GPU setting so far)."""
    match = re.fullmatch(r"(\d+)x(?:(\d+)x(\d+)|best)", text.strip())
    if not match:
        raise SystemExit(f"bench_batch: a setting is GxWxR or Gxbest, got {text!r}")
    gpus = int(match.group(1))
    if match.group(2) is None:
        if best is None:
            raise SystemExit(f"bench_batch: {text!r} needs a one-GPU setting measured before it")
        return Setting(gpus, best.workers_per_gpu, best.rows_per_process)
    setting = Setting(gpus, int(match.group(2)), int(match.group(3)))
    if min(setting.gpus, setting.workers_per_gpu, setting.rows_per_process) < 1:
        raise SystemExit(f"bench_batch: every number in a setting must be at least 1, got {text!r}")
    return setting


def photo_rows(rows: int, first_seed: int = 0) -> list[tuple[Path, str, int]]:
    """``rows`` (image, prompt, seed): the four photos in turn, each with seeds ``first_seed``, +1, +2, …"""
    data = Path(importlib.util.find_spec("skimage").origin).parent / "data"
    return [(data / PHOTOS[i % len(PHOTOS)][0], PHOTOS[i % len(PHOTOS)][1], first_seed + i // len(PHOTOS))
            for i in range(rows)]


def write_rows(path: Path, rows: int, preset: str) -> None:
    """``rows`` rows of :func:`photo_rows`."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "prompt", "preset", "seed"])
        for image, prompt, seed in photo_rows(rows):
            writer.writerow([str(image), prompt, preset, seed])


def batch_command(args: argparse.Namespace, setting: Setting, rows_csv: Path, out: Path) -> list[str]:
    command = [sys.executable, "-m", "backend", "batch", "--csv", str(rows_csv), "--out", str(out), "--models",
               args.models, "--device", args.device, "--rows-per-process", str(setting.rows_per_process)]
    if args.compile_vae_encoder is not None:
        command += ["--compile-vae-encoder", args.compile_vae_encoder]
    if args.stagger_groups is not None:
        command += ["--stagger-groups" if args.stagger_groups == "on" else "--no-stagger-groups"]
    if setting.uses_ray:
        command += ["--ray", "auto", "--workers-per-gpu", str(setting.workers_per_gpu)]
        if args.device == "cpu":  # no GPUs to share: as many CPU workers as the setting has processes
            command += ["--workers", str(setting.gpus * setting.workers_per_gpu)]
    return command


def run_once(args: argparse.Namespace, setting: Setting, run: int, rows_csv: Path, work: Path) -> RunResult:
    """One fresh ``batch`` process; the times of its rows come from its ``row N done`` lines."""
    out = work / f"{setting.name}-run{run}"
    env = dict(os.environ, IMAGE_TO_3D_CACHE=str(work / f"cache-{setting.name}-{run}"), PYTHONUNBUFFERED="1")
    if args.device != "cpu":
        # The first G of the GPUs this script may use (an outer CUDA_VISIBLE_DEVICES lets two one-GPU benches
        # run side by side on a two-GPU host, one per GPU).
        visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        env["CUDA_VISIBLE_DEVICES"] = ",".join((visible or [str(i) for i in range(setting.gpus)])[:setting.gpus])
    row_ends: dict[int, float] = {}  # row index → when its "row N done" line came, in the order they came
    failed = 0
    start = time.perf_counter()
    process = subprocess.Popen(batch_command(args, setting, rows_csv, out), cwd=REPO, env=env, text=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    tail: list[str] = []

    def read_stderr():
        nonlocal failed
        for line in process.stderr:
            match = ROW_DONE.match(line)
            if match:
                row_ends[int(match.group(1))] = time.perf_counter() - start
                failed += match.group(2) == "failed"
            tail[:] = (tail + [line.rstrip()])[-5:]

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        code = process.wait(timeout=args.run_timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
    reader.join(timeout=10)
    seconds = time.perf_counter() - start
    finished = list(row_ends.values())
    groups = group_records(out, row_ends)
    if code not in BATCH_RAN or not finished:
        print(f"bench_batch: {setting.name} run {run} exited {code}: {' | '.join(tail)}", file=sys.stderr)
    return RunResult(setting.name, run, len(finished), failed, round(seconds, 2),
                     round(finished[0], 2) if finished else float("nan"),
                     round(len(finished) * 60.0 / seconds, 3),
                     round(steady_rows_per_min(finished, setting.processes * setting.rows_per_process), 3), code,
                     tuple(round(t, 2) for t in finished),
                     round(mid_run_rows_per_min(finished, setting.processes * setting.rows_per_process), 3),
                     tuple(groups), group_medians(groups))


SHARED_STAGES = ("stage1", "stage2")  # a group's rows share these; each row's other stages are its own


def group_records(out: Path, row_ends: dict[int, float]) -> list[dict]:
    """The groups of rows the run's processes ran, from each done row's job.json (its ``process`` and
    ``timings_s``) and when its line came: rows of one process whose lines came within a second are one group.
    Per group: the process, the GPUs it saw, its CPU threads, its rows, its end (seconds from the start), stage 1's
    and stage 2's seconds (the group's) and ``own_s``, the rest of its rows' stages summed (mask, mesh, UVs, bake,
    export: the CPU's share)."""
    rows = []
    for job_json in sorted(out.glob("*/job.json")):
        index = int(job_json.parent.name.split("-", 1)[0])
        if index not in row_ends:
            continue
        job = json.loads(job_json.read_text())
        rows.append((job.get("process", {}), row_ends[index], job.get("timings_s", {})))
    groups: list[dict] = []
    for process, end, timings in sorted(rows, key=lambda r: (r[0].get("pid", 0), r[1])):
        last = groups[-1] if groups else None
        if last is None or last["pid"] != process.get("pid") or end - last["end_s"] > 1.0:
            last = {"pid": process.get("pid"), "gpus": process.get("cuda_visible_devices"),
                    "torch_threads": process.get("torch_threads"), "rows": 0, "end_s": end,
                    **{f"{stage}_s": round(timings.get(stage, 0.0), 2) for stage in SHARED_STAGES}, "own_s": 0.0}
            groups.append(last)
        last["rows"] += 1
        last["end_s"] = round(max(last["end_s"], end), 2)
        last["own_s"] = round(last["own_s"] + sum(v for k, v in timings.items() if k not in SHARED_STAGES), 2)
    return sorted(groups, key=lambda g: g["end_s"])


def group_medians(groups: list[dict]) -> dict:
    """Over every worker's groups after its first (whose model builds and graph captures would weigh in): the
    median stage 1, stage 2 and ``own_s``; ``cycle_s``, the median time between one worker's group ends; and
    ``mate_offset_s``, the median time from a group's end to the nearest group end of another worker on the same
    GPUs (half a cycle when two workers sharing a GPU take turns at it, near 0 when they run in step)."""
    later, cycles, offsets = [], [], []
    last_end: dict = {}  # pid → the end of its group before, walking the groups in the order they ended
    for group in sorted(groups, key=lambda g: g["end_s"]):
        if group["pid"] in last_end:
            later.append(group)
            cycles.append(group["end_s"] - last_end[group["pid"]])
            mates = [abs(o["end_s"] - group["end_s"]) for o in groups
                     if o["pid"] != group["pid"] and o["gpus"] == group["gpus"]]
            if mates:
                offsets.append(min(mates))
        last_end[group["pid"]] = group["end_s"]
    if not later:
        return {}
    medians = {key: round(statistics.median(g[key] for g in later), 2) for key in ("stage1_s", "stage2_s", "own_s")}
    medians["cycle_s"] = round(statistics.median(cycles), 2)
    medians["mate_offset_s"] = round(statistics.median(offsets), 2) if offsets else None
    medians["torch_threads"] = sorted({g["torch_threads"] for g in groups if g["torch_threads"] is not None})
    return medians


def steady_rows_per_min(finished: list[float], first_rows: int) -> float:
    """Rows per minute once every process has finished its first group: the rows after the first
    ``first_rows`` (processes × rows per process), from the moment the last of those finished. 0 if none.

    Counting from the first group of any one process would credit a second process's first group, which ends
    moments later, to the steady state (a two-GPU run read 33 rows/min where its groups gave 27)."""
    ends = sorted(finished)
    if len(ends) <= first_rows or ends[-1] <= ends[first_rows - 1]:
        return 0.0
    return (len(ends) - first_rows) * 60.0 / (ends[-1] - ends[first_rows - 1])


def mid_run_rows_per_min(finished: list[float], wave_rows: int) -> float:
    """Rows per minute in the middle of a run: the rows after the first wave of ``wave_rows`` (processes × rows per
    process) up to the end of the last wave but one, over that time. 0 if no row is in between.

    The steady rate still counts the last wave, and a last group that runs alone (its process no longer sharing
    the GPU) ends sooner than its turn: with two workers taking turns at the GPU that read 27.0 rows/min where
    their groups' cadence gave 23.5 (docs/batch.md). A long catalogue runs at this middle rate."""
    ends = sorted(finished)
    rows = len(ends) - 2 * wave_rows
    if rows <= 0 or ends[-wave_rows - 1] <= ends[wave_rows - 1]:
        return 0.0
    return rows * 60.0 / (ends[-wave_rows - 1] - ends[wave_rows - 1])


def summarise(results: list[RunResult]) -> dict[str, dict]:
    """Per setting, the median of each figure over its runs."""
    table: dict[str, dict] = {}
    for name in dict.fromkeys(r.setting for r in results):
        runs = [r for r in results if r.setting == name]
        table[name] = {"runs": len(runs), "rows": runs[0].rows,
                       **{key: round(statistics.median(getattr(r, key) for r in runs), 2)
                          for key in ("rows_per_min", "steady_rows_per_min", "mid_run_rows_per_min", "first_row_s",
                                      "seconds")},
                       "failed_rows": max(r.failed_rows for r in runs)}
    return table


def markdown(table: dict[str, dict]) -> str:
    lines = ["| setting (GPUs × workers/GPU × rows/process) | runs | rows | rows/min | steady rows/min | "
             "mid-run rows/min | first row (s) | wall (s) |", "|---|---|---|---|---|---|---|---|"]
    for name, row in table.items():
        lines.append(f"| {name} | {row['runs']} | {row['rows']} | {row['rows_per_min']} | "
                     f"{row['steady_rows_per_min']} | {row['mid_run_rows_per_min']} | {row['first_row_s']} | "
                     f"{row['seconds']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=48, help="rows per run (four photos × seeds); default 48")
    parser.add_argument("--settings", default=DEFAULT_SETTINGS, help=f"comma-separated GxWxR; default {DEFAULT_SETTINGS}")
    parser.add_argument("--runs", type=int, default=2, help="runs per setting (the median is reported); default 2")
    parser.add_argument("--preset", default="draft")
    parser.add_argument("--models", default="full-random")
    parser.add_argument("--device", default="cuda", help="cuda or cpu")
    parser.add_argument("--run-timeout-s", type=float, default=None, help="kill a run after this long")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="start no new run after this many seconds (what was measured is still written)")
    parser.add_argument("--compile-vae-encoder", choices=["auto", "on", "off"], default=None,
                        help="passed to batch (default: batch's own, auto)")
    parser.add_argument("--stagger-groups", choices=["on", "off"], default=None,
                        help="passed to batch as --stagger-groups / --no-stagger-groups (default: batch's own, on)")
    parser.add_argument("--out", required=True, help="JSON file: every run and the medians")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.runs < 1:
        parser.error("--rows and --runs must be at least 1")

    results: list[RunResult] = []
    started = time.perf_counter()
    out_path = Path(args.out)
    with tempfile.TemporaryDirectory(prefix="bench_batch-") as tmp:
        work = Path(tmp)
        rows_csv = work / "rows.csv"
        write_rows(rows_csv, args.rows, args.preset)
        best: Setting | None = None
        for text in args.settings.split(","):
            setting = parse_setting(text, best)
            for run in range(1, args.runs + 1):
                if args.budget_s is not None and time.perf_counter() - started > args.budget_s:
                    print(f"bench_batch: budget of {args.budget_s:.0f} s spent; {setting.name} run {run} not started",
                          file=sys.stderr)
                    break
                result = run_once(args, setting, run, rows_csv, work)
                results.append(result)
                print(f"bench_batch: {json.dumps(asdict(result))}", file=sys.stderr)
                table = summarise(results)
                out_path.write_text(json.dumps({"rows": args.rows, "preset": args.preset, "models": args.models,
                                                "compile_vae_encoder": args.compile_vae_encoder,
                                                "stagger_groups": args.stagger_groups,
                                                "device": args.device, "runs": [asdict(r) for r in results],
                                                "medians": table}, indent=2))
            one_gpu = [Setting(*map(int, name.split("x"))) for name in summarise(results) if name.startswith("1x")]
            if one_gpu:
                table = summarise(results)
                best = max(one_gpu, key=lambda s: table[s.name]["rows_per_min"])
    print(markdown(summarise(results)))
    return 0 if results and all(r.exit_code in BATCH_RAN and r.rows == args.rows for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
