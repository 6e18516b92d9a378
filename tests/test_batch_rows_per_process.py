"""batch --rows-per-process K|auto: auto is chosen once, before any row, from the device the rows run on and its
free memory (backend.batch.row_groups.choose_rows_per_process), and said in one line; K is kept as given.
CPU only: the GPU's free memory is a faked reading."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from backend import cli
from backend.batch import row_groups
from backend.batch.row_groups import (
    AUTO_WORKERS_PER_GPU,
    MAX_AUTO_ROWS_PER_PROCESS,
    ROW_GPU_MEMORY,
    FreeGpuMemory,
    choose_rows_per_process,
    choose_workers_per_gpu,
)
from backend.batch.rows import RowOutcome

GIB = 2**30


def _fake_free_memory(monkeypatch, free_bytes: int) -> list[tuple[str, bool]]:
    """Every reading of the GPU's free memory returns ``free_bytes`` on cuda:0; the list records what was asked."""
    asked = []

    def reading(device_choice: str, on_ray: bool) -> FreeGpuMemory:
        asked.append((device_choice, on_ray))
        return FreeGpuMemory("cuda:0", free_bytes)

    monkeypatch.setattr(row_groups, "measure_free_gpu_memory", reading)
    return asked


def _rows_csv(folder: Path, count: int) -> Path:
    """Rows whose images do not exist: each fails alone at once, so a batch over them runs no model."""
    path = folder / "rows.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "prompt", "preset"])
        writer.writerows([f"missing-{i}.png", "", "smoke"] for i in range(count))
    return path


def _record_groups(monkeypatch) -> list[int]:
    """run_row_group replaced by one that records each group's size and skips its rows."""
    sizes = []

    def run_row_group(rows, out_root, settings):
        sizes.append(len(rows))
        return [RowOutcome(row, "skipped", 0, "recorded", 0.0, str(out_root / row.folder_name)) for row in rows]

    monkeypatch.setattr(row_groups, "run_row_group", run_row_group)
    return sizes


def test_auto_on_the_cpu_is_one_row_per_process(monkeypatch):
    assert choose_rows_per_process("cpu").rows == 1
    assert choose_rows_per_process("cpu", on_ray=True).rows == 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    choice = choose_rows_per_process("auto")  # --device auto resolves to the CPU here
    assert choice.rows == 1 and "CPU" in choice.reason


def test_auto_under_ray_without_a_gpu_here_is_one_and_says_to_pass_k(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("auto", "cuda"):  # the cluster may have GPUs elsewhere: no error, 1 and how to choose more
        choice = choose_rows_per_process(device, workers_per_gpu=2, on_ray=True)
        assert choice.rows == 1 and "--rows-per-process K" in choice.reason


@pytest.mark.parametrize(("free_gib", "workers_per_gpu", "rows"), [
    (131, 1, 8),  # an idle H200: capped at the largest measured group
    (20, 1, 3),   # 20 GiB // 6 GiB
    (5, 1, 1),    # less than one row's worth still runs one row
    (131, 4, 5),  # 32.75 GiB for each of 4 workers
    (20, 2, 1),   # 10 GiB each
    (96, 2, 8),   # 48 GiB each: exactly 8 rows
])
def test_auto_on_a_gpu_fits_rows_in_free_memory_shared_by_its_workers(monkeypatch, free_gib, workers_per_gpu, rows):
    asked = _fake_free_memory(monkeypatch, free_gib * GIB)
    choice = choose_rows_per_process("auto", workers_per_gpu=workers_per_gpu, on_ray=workers_per_gpu > 1)
    assert choice.rows == rows == min(MAX_AUTO_ROWS_PER_PROCESS, max(1, free_gib * GIB // workers_per_gpu
                                                                       // ROW_GPU_MEMORY))
    assert f"{free_gib} GiB free on cuda:0" in choice.reason
    assert ("shared by" in choice.reason) == (workers_per_gpu > 1)
    assert asked == [("auto", workers_per_gpu > 1)]


def test_batch_says_what_auto_chose_before_the_first_row_and_groups_by_it(tmp_path, monkeypatch, capsys):
    _fake_free_memory(monkeypatch, 20 * GIB)
    sizes = _record_groups(monkeypatch)
    rows = _rows_csv(tmp_path, 7)
    assert cli.main(["batch", "--csv", str(rows), "--out", str(tmp_path / "out"), "-q"]) == 0
    assert sizes == [3, 3, 1]
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == ("batch: 3 rows per process (auto: 20 GiB free on cuda:0, 6 GiB a row, at most "
                        f"{MAX_AUTO_ROWS_PER_PROCESS})")
    assert lines[1].startswith("batch: stage 1's VAE encoder compiled (auto: rows run in groups of 3")
    assert lines[2].startswith("row 1 skipped") and len(lines) == 2 + 7 + 1  # the choices, the rows, the total


def test_batch_on_the_cpu_runs_rows_one_by_one_after_saying_so(tmp_path, monkeypatch, capsys):
    sizes = _record_groups(monkeypatch)
    rows = _rows_csv(tmp_path, 2)
    assert cli.main(["batch", "--csv", str(rows), "--out", str(tmp_path / "out"), "--device", "cpu", "-q"]) == 6
    assert sizes == []  # 1 row per process: the plain runner, no groups
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "batch: 1 row per process (auto: the rows run on the CPU)"
    assert lines[1].startswith("row 1 failed (exit 2") and lines[2].startswith("row 2 failed (exit 2")


def test_an_explicit_k_is_kept_and_nothing_is_measured(tmp_path, monkeypatch, capsys):
    asked = _fake_free_memory(monkeypatch, 131 * GIB)
    sizes = _record_groups(monkeypatch)
    rows = _rows_csv(tmp_path, 5)
    assert cli.main(["batch", "--csv", str(rows), "--out", str(tmp_path / "out"), "--rows-per-process", "2",
                     "-q"]) == 0
    assert sizes == [2, 2, 1] and asked == []
    assert "per process" not in capsys.readouterr().err


def test_auto_on_a_missing_cuda_device_fails_once_before_any_row(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rows = _rows_csv(tmp_path, 2)
    assert cli.main(["batch", "--csv", str(rows), "--out", str(tmp_path / "out"), "--device", "cuda", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no CUDA GPU" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("word", ["abc", "0", "-3", "2.5", "Auto"])
def test_a_k_that_is_neither_a_positive_int_nor_auto_is_one_usage_line(tmp_path, word, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["batch", "--csv", str(tmp_path / "rows.csv"), "--out", str(tmp_path / "out"),
                  "--rows-per-process", word])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "--rows-per-process" in err and repr(word).strip("'") in err


def test_help_states_the_default_and_the_rule_auto_follows(capsys):
    with pytest.raises(SystemExit):
        cli.main(["batch", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: auto)" in text
    assert f"one row per {ROW_GPU_MEMORY // GIB} GiB" in text and f"at most {MAX_AUTO_ROWS_PER_PROCESS}" in text


def test_under_ray_auto_is_chosen_after_ray_starts_and_shares_the_gpu_among_its_workers(tmp_path, monkeypatch,
                                                                                          capsys):
    from backend.batch import ray_runner

    events = []
    asked = _fake_free_memory(monkeypatch, 131 * GIB)
    monkeypatch.setattr(ray_runner, "connect_ray", lambda address, workers: events.append(("connect", address)))

    def run_rows_on_ray(rows, out_root, settings, **options):
        events.append(("run", options["rows_per_process"], options["workers_per_gpu"]))
        return []

    monkeypatch.setattr(ray_runner, "run_rows_on_ray", run_rows_on_ray)
    rows = _rows_csv(tmp_path, 2)
    command = ["batch", "--csv", str(rows), "--out", str(tmp_path / "out"), "--workers-per-gpu", "4", "-q"]
    assert cli.main([*command, "--ray", "auto"]) == 0
    assert events == [("connect", "auto"), ("run", 5, 4)]  # 131 GiB / 4 workers // 6 GiB
    assert asked == [("auto", True)]
    assert "131 GiB free on cuda:0 shared by 4 workers" in capsys.readouterr().err.splitlines()[0]

    # Without --ray, --workers-per-gpu shares nothing: the one process gets the GPU's memory.
    sizes = _record_groups(monkeypatch)
    assert cli.main(command) == 0
    assert sizes == [2] and asked[-1] == ("auto", False)


@pytest.mark.parametrize(("free_gib", "workers"), [(131, AUTO_WORKERS_PER_GPU), (12, AUTO_WORKERS_PER_GPU), (11, 1)])
def test_workers_per_gpu_auto_shares_a_gpu_only_where_each_worker_has_a_rows_room(monkeypatch, free_gib, workers):
    asked = _fake_free_memory(monkeypatch, free_gib * GIB)
    choice = choose_workers_per_gpu("auto")
    assert choice.workers == workers and f"{free_gib} GiB free on cuda:0" in choice.reason
    assert asked == [("auto", True)]  # the GPU Ray's workers would share, read as under Ray


def test_workers_per_gpu_auto_without_a_gpu_here_is_one(monkeypatch):
    assert choose_workers_per_gpu("cpu").workers == 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    choice = choose_workers_per_gpu("auto")  # a cluster's GPUs may be elsewhere: 1, and how to ask for more
    assert choice.workers == 1 and "--workers-per-gpu K" in choice.reason


def test_batch_under_ray_says_both_choices_and_sizes_rows_for_the_workers_sharing_a_gpu(tmp_path, monkeypatch,
                                                                                         capsys):
    from backend.batch import ray_runner

    _fake_free_memory(monkeypatch, 60 * GIB)
    given = {}
    monkeypatch.setattr(ray_runner, "connect_ray", lambda address, workers: None)

    def run_rows_on_ray(rows, out_root, settings, **options):
        given.update(options)
        return [RowOutcome(row, "skipped", 0, "recorded", 0.0, str(out_root / row.folder_name)) for row in rows]

    monkeypatch.setattr(ray_runner, "run_rows_on_ray", run_rows_on_ray)
    rows = _rows_csv(tmp_path, 3)
    assert cli.main(["batch", "--csv", str(rows), "--out", str(tmp_path / "out"), "--ray", "auto", "-q"]) == 0
    assert given["workers_per_gpu"] == AUTO_WORKERS_PER_GPU
    assert given["rows_per_process"] == min(MAX_AUTO_ROWS_PER_PROCESS, 60 * GIB // AUTO_WORKERS_PER_GPU // ROW_GPU_MEMORY)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"batch: {AUTO_WORKERS_PER_GPU} workers per GPU (auto: 60 GiB free on cuda:0")
    assert lines[1].startswith(f"batch: {given['rows_per_process']} rows per process (auto: 60 GiB free on cuda:0 "
                               f"shared by {AUTO_WORKERS_PER_GPU} workers")
    # a K given is kept, and nothing is said about it
    assert cli.main(["batch", "--csv", str(rows), "--out", str(tmp_path / "out2"), "--ray", "auto",
                     "--workers-per-gpu", "3", "--rows-per-process", "2", "-q"]) == 0
    assert given["workers_per_gpu"] == 3 and given["rows_per_process"] == 2
    assert not any("per GPU" in line or "per process" in line for line in capsys.readouterr().err.splitlines())


@pytest.mark.parametrize(("extra", "rows_per_process", "compiled", "staggered"), [
    ([], "auto", True, True),  # the defaults on a GPU with room for groups: both on, the compile said in one line
    (["--device", "cpu"], "3", False, True),  # the CPU never compiles by default
    ([], "1", False, True),  # one row per process: launch-bound, the CUDA graphs serve better
    (["--compile-vae-encoder", "on"], "1", True, True),
    (["--compile-vae-encoder", "off", "--no-stagger-groups"], "auto", False, False),
])
def test_batch_defaults_compile_the_vae_encoder_for_groups_and_stagger_them(tmp_path, monkeypatch, capsys, extra,
                                                                            rows_per_process, compiled, staggered):
    """--compile-vae-encoder auto|on|off and --stagger-groups / --no-stagger-groups reach the Ray runner (the
    measured defaults: docs/batch.md)."""
    from backend.batch import ray_runner

    _fake_free_memory(monkeypatch, 131 * GIB)
    given = {}
    monkeypatch.setattr(ray_runner, "connect_ray", lambda address, workers: None)

    def run_rows_on_ray(rows, out_root, settings, **options):
        given.update(options, settings=settings)
        return []

    monkeypatch.setattr(ray_runner, "run_rows_on_ray", run_rows_on_ray)
    rows = _rows_csv(tmp_path, 2)
    assert cli.main(["batch", "--csv", str(rows), "--out", str(tmp_path / "out"), "--ray", "auto", "-q",
                     "--rows-per-process", rows_per_process, *extra]) == 0
    assert given["settings"].compile_vae_encoder is compiled
    assert given["stagger_groups"] is staggered
    said = [line for line in capsys.readouterr().err.splitlines() if "VAE encoder compiled" in line]
    assert len(said) == (1 if compiled and "--compile-vae-encoder" not in extra else 0)
